"""The MovieLens folder layouts we read, and detection of which one a folder holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from movierec.serve_batch.errors import DataError

ML100K = "ml-100k"
ML1M = "ml-1m"
CSV = "csv"


@dataclass(frozen=True)
class Layout:
    """Everything the parsers need to know about one layout's ratings file."""

    name: str
    #: What a person calls the releases in this layout (used in messages).
    releases: str
    ratings_file: str
    #: The ratings file's field separator: one or two characters.
    separator: str
    #: How messages describe the separator ("tab-separated").
    separator_words: str
    #: Field names as the layout's README spells them (used in messages).
    fields: tuple[str, str, str, str]
    #: Header line of the ratings file, or None where it has none.
    header: tuple[str, ...] | None
    #: Optional side files; their presence alone hints at the layout.
    side_files: tuple[str, ...]
    #: Lowest and highest rating the layout allows (every rating is a multiple of 0.5).
    scale: tuple[float, float]


ML100K_LAYOUT = Layout(
    name=ML100K,
    releases="MovieLens 100K",
    ratings_file="u.data",
    separator="\t",
    separator_words="tab-separated",
    fields=("user_id", "movie_id", "rating", "timestamp"),
    header=None,
    side_files=("u.item", "u.user", "u.genre"),
    scale=(1.0, 5.0),
)

ML1M_LAYOUT = Layout(
    name=ML1M,
    releases="MovieLens 1M / 10M",
    ratings_file="ratings.dat",
    separator="::",
    separator_words="'::'-separated",
    fields=("UserID", "MovieID", "Rating", "Timestamp"),
    header=None,
    side_files=("movies.dat", "users.dat"),
    scale=(1.0, 5.0),
)

#: ml-10m uses the ``::`` layout too, with half stars and without users.dat.
ML10M_SCALE = (0.5, 5.0)

CSV_LAYOUT = Layout(
    name=CSV,
    releases="MovieLens latest-small / 20M / 25M / 32M",
    ratings_file="ratings.csv",
    separator=",",
    separator_words="comma-separated",
    fields=("userId", "movieId", "rating", "timestamp"),
    header=("userId", "movieId", "rating", "timestamp"),
    side_files=("movies.csv",),
    scale=(0.5, 5.0),
)

LAYOUTS = (ML100K_LAYOUT, ML1M_LAYOUT, CSV_LAYOUT)


def _expected() -> str:
    return "; ".join(f"{lay.ratings_file} ({lay.releases})" for lay in LAYOUTS)


def detect_layout(folder: Path) -> Layout:
    """Return the layout of ``folder`` from the ratings file it holds.

    Raises ``DataError`` when ``folder`` is missing or a file, holds no ratings file,
    or holds the ratings files of more than one layout.
    """
    if not folder.exists():
        raise DataError(
            f"MovieLens folder {folder} does not exist; expected a folder holding one of: "
            f"{_expected()}."
        )
    if not folder.is_dir():
        hint = " (unzip it first)" if folder.suffix.lower() == ".zip" else ""
        raise DataError(
            f"{folder} is a file{hint}; expected a MovieLens folder holding one of: {_expected()}."
        )
    found = [lay for lay in LAYOUTS if (folder / lay.ratings_file).is_file()]
    if len(found) > 1:
        names = ", ".join(lay.ratings_file for lay in found)
        raise DataError(
            f"{folder} holds the ratings files of more than one MovieLens layout ({names}); "
            f"expected exactly one of: {_expected()}."
        )
    if found:
        return found[0]
    # No ratings file: name the one that is missing where side files betray the layout.
    hinted = [lay for lay in LAYOUTS if any((folder / f).is_file() for f in lay.side_files)]
    if len(hinted) == 1:
        lay = hinted[0]
        present = ", ".join(f for f in lay.side_files if (folder / f).is_file())
        raise DataError(
            f"{folder / lay.ratings_file} not found: the folder looks like {lay.releases} "
            f"(it has {present}) but its ratings file {lay.ratings_file} is missing."
        )
    nested = sorted(
        sub.name
        for sub in folder.iterdir()
        if sub.is_dir() and any((sub / lay.ratings_file).is_file() for lay in LAYOUTS)
    )
    hint = f" (its subfolder {nested[0]}/ holds one: pass that folder)" if nested else ""
    raise DataError(f"No MovieLens ratings file in {folder}{hint}; expected one of: {_expected()}.")
