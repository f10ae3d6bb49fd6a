"""``Columns``: which columns of a user's ratings table hold what (read once, at the entry)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from movierec.serve_batch.errors import UsageError

#: The canonical names the loaders give every ratings table, whatever the source called them.
USER, MOVIE, RATING, TIME = "user_id", "movie_id", "rating", "timestamp"


@dataclass(frozen=True)
class Columns:
    """The column names of a ratings table (and of its items table's title).

    Built by the command line from ``--user-col``, ``--movie-col``, ``--rating-col``,
    ``--time-col`` and ``--title-col`` (or by a Python caller), read where the data is read,
    recorded in ``metrics.json`` and the model's ``id_mapping.json``, and used to name the
    ID columns of every table written for this data. ``time`` None: the table has no time
    column (file order stands for time). A MovieLens folder ignores it: it has its own names.
    """

    user: str = USER
    movie: str = MOVIE
    rating: str = RATING
    time: str | None = TIME
    title: str = "title"

    def __post_init__(self) -> None:
        names = {"user": self.user, "movie": self.movie, "rating": self.rating}
        if self.time is not None:
            names["time"] = self.time
        for role, name in names.items():
            if not isinstance(name, str) or not name:
                raise UsageError(
                    f"{{{role}_col}} must name a column, got {name!r}", params=(f"{role}_col",)
                )
        seen: dict[str, str] = {}
        for role, name in names.items():
            if name in seen:
                raise UsageError(
                    f"{{{seen[name]}_col}} and {{{role}_col}} are both {name!r}: each role needs "
                    "a column of its own",
                    params=(f"{seen[name]}_col", f"{role}_col"),
                )
            seen[name] = role

    def to_dict(self) -> dict[str, str | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> Columns:
        """The value :meth:`to_dict` wrote; the defaults for anything missing (older files)."""
        known = {k: v for k, v in (values or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)
