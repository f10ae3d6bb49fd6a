"""Parsers for MovieLens ratings and side files.

The ratings file goes through pyarrow's multi-threaded CSV reader with explicit types,
then vectorised checks. Only when that fails do we walk the file line by line in Python,
to name the first bad line and what is wrong with it. Side files (movies, users) are at
most tens of thousands of lines, so they are parsed line by line, which gives precise
messages for free.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from movierec.serve_batch.errors import DataError
from movierec.train.data._layouts import Layout

#: Genre names of MovieLens 100K, in u.item's flag order; used when u.genre is absent.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

#: Occupation codes of MovieLens 1M's users.dat, as its README lists them.
ML1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)

_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_YEAR = re.compile(r"\((\d{4})\)(?:\s*\([^()]*\))*\s*$")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_BLOCK_SIZE = 1 << 24  # fewer, larger chunks parse faster than pyarrow's 1 MiB default
_SCAN_BLOCK = 1 << 20  # bytes per block when hunting for the bad line


# --- ratings ------------------------------------------------------------------------


def read_ratings(
    path: Path, layout: Layout, scale: tuple[float, float]
) -> tuple[pd.DataFrame, str]:
    """Parse a ratings file into ``user_id, movie_id, rating, timestamp``.

    Returns the frame (file order, float32 ratings) and the SHA-256 hex of the file.
    """
    data = _read_bytes(path)
    if not data.strip():
        raise DataError(
            f"{path} is empty; expected {layout.separator_words} lines "
            f"{layout.separator.join(layout.fields)}."
        )
    start = _check_header(data, path, layout)
    with ThreadPoolExecutor(max_workers=1) as pool:
        digest = pool.submit(lambda: hashlib.sha256(data).hexdigest())  # releases the GIL
        columns, _, _ = _parse_block(pa.py_buffer(data).slice(start), layout, scale)
        if columns is None:
            _raise_first_problem(data, start, path, layout, scale)
        frame = pd.DataFrame(
            {
                "user_id": columns[0],
                "movie_id": columns[1],
                "rating": columns[2].astype(np.float32),
                "timestamp": columns[3],
            },
            copy=False,
        )
        return frame, digest.result()


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"Could not read {path}: {exc.strerror or exc}.") from exc


def _check_header(data: bytes, path: Path, layout: Layout) -> int:
    """Check the header line, if the layout has one; return the offset of the data."""
    if layout.header is None:
        return 0
    end = data.find(b"\n")
    end = len(data) if end < 0 else end + 1
    found = data[:end].decode("utf-8-sig", errors="replace").strip("\r\n")
    if tuple(part.strip() for part in found.split(layout.separator)) != layout.header:
        raise DataError(
            f"{path} line 1: expected the header {layout.separator.join(layout.header)}, "
            f"found {found!r}."
        )
    if not data[end:].strip():
        raise DataError(f"{path} has a header but no ratings.")
    return end


def _parse_block(
    buffer: pa.Buffer, layout: Layout, scale: tuple[float, float], use_threads: bool = True
) -> tuple[list[np.ndarray] | None, int | None, str | None]:
    """Parse complete lines with pyarrow and check them.

    Returns ``(columns, None, None)`` when all is well, ``(None, None, reason)`` when
    pyarrow rejects the text, or ``(None, row, None)`` with the first data row (blank
    lines not counted) that holds an empty field or a rating off the scale.
    """
    names = ["user_id", "movie_id", "rating", "timestamp"]
    types: dict[str, pa.DataType] = {
        "user_id": pa.int64(),
        "movie_id": pa.int64(),
        "rating": pa.float64(),
        "timestamp": pa.int64(),
    }
    if len(layout.separator) == 2:
        # "a::b" split on ":" is "a", "", "b": read the empty gaps as null-typed
        # columns, so that anything between the two colons is a conversion error.
        gaps = [f"_gap{i}" for i in range(3)]
        types.update(dict.fromkeys(gaps, pa.null()))
        names = [names[0], gaps[0], names[1], gaps[1], names[2], gaps[2], names[3]]
    try:
        table = pacsv.read_csv(
            buffer,
            read_options=pacsv.ReadOptions(
                column_names=names, block_size=_BLOCK_SIZE, use_threads=use_threads
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=layout.separator[0],  # "\t", "," or the ":" of "::"
                quote_char=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types, null_values=[""], strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        return None, None, str(exc)[:200]
    first_empty = [
        int(np.flatnonzero(table.column(name).is_null())[0])
        for name in ("user_id", "movie_id", "rating", "timestamp")
        if table.column(name).null_count
    ]
    if first_empty:
        return None, min(first_empty), None
    columns = [table.column(name).to_numpy() for name in types if not name.startswith("_")]
    ratings = columns[2]
    lo, hi = scale
    doubled = ratings * 2
    bad = ~((ratings >= lo) & (ratings <= hi) & (doubled == np.round(doubled)))
    if bad.any():
        return None, int(np.argmax(bad)), None
    return columns, None, None


def _raise_first_problem(
    data: bytes, start: int, path: Path, layout: Layout, scale: tuple[float, float]
) -> NoReturn:
    """Find the first bad line and raise a DataError naming it.

    pyarrow parses 1 MiB blocks (about 35,000 lines) until one fails; only that block is
    walked line by line in Python, so this stays quick even for 25M-line files.
    """
    buffer = pa.py_buffer(data)
    lineno = 1 + data.count(b"\n", 0, start)
    pos = start
    while pos < len(data):
        end = data.find(b"\n", pos + _SCAN_BLOCK)
        end = len(data) if end < 0 else end + 1
        chunk = data[pos:end]
        if chunk.strip():
            _, row, error = _parse_block(buffer.slice(pos, end - pos), layout, scale, False)
            if row is not None or error is not None:
                for first_row in dict.fromkeys((row or 0, 0)):
                    for bad_line, problem in _scan(chunk, lineno, layout, scale, first_row):
                        raise DataError(f"{path} line {bad_line}: {problem}.")
                last = lineno + chunk.count(b"\n")
                raise DataError(  # pragma: no cover - the scan accepts less than pyarrow
                    f"{path} lines {lineno}-{last} could not be parsed as "
                    f"{layout.separator_words} lines ({error or 'a field is empty'})."
                )
        lineno += chunk.count(b"\n")
        pos = end
    raise DataError(  # pragma: no cover - only called after a failure
        f"{path} could not be parsed as {layout.separator_words} lines."
    )


def _scan(
    chunk: bytes, first_line: int, layout: Layout, scale: tuple[float, float], first_row: int
) -> Iterator[tuple[int, str]]:
    """Yield (line number, problem) for bad lines of ``chunk``, from data row ``first_row``."""
    text = io.TextIOWrapper(io.BytesIO(chunk), encoding="utf-8", errors="replace", newline=None)
    row = 0
    for lineno, line in enumerate(text, first_line):
        if line == "\n":  # pyarrow skips empty lines too
            continue
        if row >= first_row:
            problem = _line_problem(line.rstrip("\n"), layout, scale)
            if problem:
                yield lineno, problem
        row += 1


def _line_problem(line: str, layout: Layout, scale: tuple[float, float]) -> str | None:
    parts = line.split(layout.separator)
    if len(parts) != len(layout.fields):
        return (
            f"expected {len(layout.fields)} {layout.separator_words} fields "
            f"({', '.join(layout.fields)}), found {len(parts)}"
        )
    for index, (name, raw) in enumerate(zip(layout.fields, parts, strict=True)):
        value = raw.strip()
        if not value:
            return f"{name} is empty"
        if index == 2:
            if not _FLOAT.fullmatch(value):
                return f"{name} {value!r} is not a number"
            rating = float(value)
            lo, hi = scale
            if not lo <= rating <= hi:
                return f"{name} {value} is outside the rating scale {lo:g}..{hi:g}"
            if rating * 2 != math.floor(rating * 2):
                return f"{name} {value} is not a multiple of 0.5"
        elif not _INT.fullmatch(value):
            return f"{name} {value!r} is not an integer"
        elif not _INT64_MIN <= int(value) <= _INT64_MAX:
            return f"{name} {value} does not fit in 64 bits"
    return None


# --- side files -----------------------------------------------------------------------


def _decode(path: Path, encoding: str | None) -> str:
    """Decode a side file: ``encoding``, or UTF-8 falling back to latin-1 when None."""
    data = _read_bytes(path)
    if encoding is None:
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        lineno = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path} line {lineno}: not valid {encoding.upper()} text.") from exc


def _lines(path: Path, text: str) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) for the non-blank lines; split on \\n only, because
    latin-1 text may hold characters that str.splitlines takes for line breaks."""
    count = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if line.strip():
            count += 1
            yield lineno, line
    if not count:
        raise DataError(f"{path} is empty.")


def _fields(path: Path, lineno: int, line: str, sep: str, expected: tuple[str, ...]) -> list[str]:
    parts = line.split(sep)
    if len(parts) != len(expected):
        words = "tab" if sep == "\t" else repr(sep)
        raise DataError(
            f"{path} line {lineno}: expected {len(expected)} {words}-separated fields "
            f"({', '.join(expected)}), found {len(parts)}."
        )
    return parts


def _int(path: Path, lineno: int, name: str, value: str) -> int:
    value = value.strip()
    if not _INT.fullmatch(value) or not _INT64_MIN <= int(value) <= _INT64_MAX:
        raise DataError(f"{path} line {lineno}: {name} {value!r} is not an integer.")
    return int(value)


def _check_unique(path: Path, lineno: int, name: str, value: int, seen: dict[int, int]) -> None:
    if value in seen:
        raise DataError(
            f"{path} line {lineno}: {name} {value} already appeared on line {seen[value]}."
        )
    seen[value] = lineno


def _gender(path: Path, lineno: int, value: str) -> str:
    if value not in ("M", "F"):
        raise DataError(f"{path} line {lineno}: gender {value!r} is not 'M' or 'F'.")
    return value


def year_from_title(title: str) -> float:
    """The release year from a title's "(1995)" suffix; NaN where there is none."""
    match = _YEAR.search(title)
    return float(match.group(1)) if match else math.nan


def _movies_frame(ids: list[int], titles: list[str], genres: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "movie_id": np.array(ids, dtype=np.int64),
            "title": titles,
            "year": np.array([year_from_title(t) for t in titles], dtype=np.float64),
            "genres": genres,
        }
    )


def _users_frame(
    ids: list[int], ages: list[int], genders: list[str], occupations: list[str]
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": np.array(ids, dtype=np.int64),
            "age": np.array(ages, dtype=np.int64),
            "gender": genders,
            "occupation": occupations,
        }
    )


def read_ml100k_genres(path: Path) -> tuple[str, ...]:
    """u.genre: ``name|index`` lines, indexes 0..n-1 in u.item's flag order."""
    by_index: dict[int, str] = {}
    seen: dict[int, int] = {}
    for lineno, line in _lines(path, _decode(path, "latin-1")):
        name, index = _fields(path, lineno, line, "|", ("genre name", "index"))
        number = _int(path, lineno, "index", index)
        _check_unique(path, lineno, "index", number, seen)
        by_index[number] = name.strip()
    if sorted(by_index) != list(range(len(by_index))):
        raise DataError(
            f"{path}: genre indexes must run 0..{len(by_index) - 1}, found "
            f"{', '.join(map(str, sorted(by_index)))}."
        )
    return tuple(by_index[i] for i in range(len(by_index)))


def read_ml100k_movies(path: Path, genre_names: tuple[str, ...]) -> pd.DataFrame:
    """u.item: id|title|release date|video release date|IMDb URL|one 0/1 flag per genre."""
    expected = (
        "movie id",
        "title",
        "release date",
        "video release date",
        "IMDb URL",
        f"{len(genre_names)} genre flags",
    )
    ids: list[int] = []
    titles: list[str] = []
    genres: list[str] = []
    seen: dict[int, int] = {}
    for lineno, line in _lines(path, _decode(path, "latin-1")):
        parts = line.split("|")
        if len(parts) != 5 + len(genre_names):
            raise DataError(
                f"{path} line {lineno}: expected {5 + len(genre_names)} '|'-separated fields "
                f"({', '.join(expected)}), found {len(parts)}."
            )
        movie_id = _int(path, lineno, "movie id", parts[0])
        _check_unique(path, lineno, "movie id", movie_id, seen)
        flags = parts[5:]
        if any(flag not in ("0", "1") for flag in flags):
            bad = next(flag for flag in flags if flag not in ("0", "1"))
            raise DataError(f"{path} line {lineno}: genre flag {bad!r} is not 0 or 1.")
        ids.append(movie_id)
        titles.append(parts[1].strip())
        genres.append(
            "|".join(g for g, flag in zip(genre_names, flags, strict=True) if flag == "1")
        )
    return _movies_frame(ids, titles, genres)


def read_ml100k_users(path: Path) -> pd.DataFrame:
    """u.user: user id|age|gender|occupation|zip code."""
    expected = ("user id", "age", "gender", "occupation", "zip code")
    ids: list[int] = []
    ages: list[int] = []
    genders: list[str] = []
    occupations: list[str] = []
    seen: dict[int, int] = {}
    for lineno, line in _lines(path, _decode(path, "latin-1")):
        user, age, gender, occupation, _zip = _fields(path, lineno, line, "|", expected)
        user_id = _int(path, lineno, "user id", user)
        _check_unique(path, lineno, "user id", user_id, seen)
        ids.append(user_id)
        ages.append(_int(path, lineno, "age", age))
        genders.append(_gender(path, lineno, gender.strip()))
        if not occupation.strip():
            raise DataError(f"{path} line {lineno}: occupation is empty.")
        occupations.append(occupation.strip())
    return _users_frame(ids, ages, genders, occupations)


def read_dat_movies(path: Path) -> pd.DataFrame:
    """movies.dat: MovieID::Title::Genres (latin-1 in ml-1m, UTF-8 in later releases)."""
    ids: list[int] = []
    titles: list[str] = []
    genres: list[str] = []
    seen: dict[int, int] = {}
    for lineno, line in _lines(path, _decode(path, None)):
        # Split on the first and the last "::", so that a title may hold colons.
        head, sep, rest = line.partition("::")
        title, sep2, genre = rest.rpartition("::")
        if not (sep and sep2):
            found = 1 + line.count("::")
            raise DataError(
                f"{path} line {lineno}: expected 3 '::'-separated fields "
                f"(MovieID, Title, Genres), found {found}."
            )
        movie_id = _int(path, lineno, "MovieID", head)
        _check_unique(path, lineno, "MovieID", movie_id, seen)
        ids.append(movie_id)
        titles.append(title.strip())
        genres.append(genre.strip())
    return _movies_frame(ids, titles, genres)


def read_dat_users(path: Path) -> pd.DataFrame:
    """users.dat: UserID::Gender::Age::Occupation::Zip-code (age and occupation are codes)."""
    expected = ("UserID", "Gender", "Age", "Occupation", "Zip-code")
    ids: list[int] = []
    ages: list[int] = []
    genders: list[str] = []
    occupations: list[str] = []
    seen: dict[int, int] = {}
    for lineno, line in _lines(path, _decode(path, None)):
        user, gender, age, occupation, _zip = _fields(path, lineno, line, "::", expected)
        user_id = _int(path, lineno, "UserID", user)
        _check_unique(path, lineno, "UserID", user_id, seen)
        code = _int(path, lineno, "Occupation", occupation)
        if not 0 <= code < len(ML1M_OCCUPATIONS):
            raise DataError(
                f"{path} line {lineno}: Occupation code {code} is not one of "
                f"0..{len(ML1M_OCCUPATIONS) - 1}."
            )
        ids.append(user_id)
        genders.append(_gender(path, lineno, gender.strip()))
        ages.append(_int(path, lineno, "Age", age))
        occupations.append(ML1M_OCCUPATIONS[code])
    return _users_frame(ids, ages, genders, occupations)


def read_csv_movies(path: Path) -> pd.DataFrame:
    """movies.csv: header movieId,title,genres or movieId,title (a catalog without
    genres: each movie's genres are then empty); CSV quoting; UTF-8."""
    text = _decode(path, "utf-8").removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    headers = (("movieId", "title", "genres"), ("movieId", "title"))
    header = headers[0]
    ids: list[int] = []
    titles: list[str] = []
    genres: list[str] = []
    seen: dict[int, int] = {}
    header_seen = False
    try:
        for row in reader:
            lineno = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if not header_seen:
                header = tuple(cell.strip() for cell in row)
                if header not in headers:
                    raise DataError(
                        f"{path} line {lineno}: expected the header {','.join(headers[0])} "
                        f"(or {','.join(headers[1])}), found {','.join(row)!r}."
                    )
                header_seen = True
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path} line {lineno}: expected {len(header)} comma-separated fields "
                    f"({', '.join(header)}), found {len(row)}."
                )
            movie_id = _int(path, lineno, "movieId", row[0])
            _check_unique(path, lineno, "movieId", movie_id, seen)
            ids.append(movie_id)
            titles.append(row[1].strip())
            genres.append(row[2].strip() if len(row) > 2 else "")
    except csv.Error as exc:
        raise DataError(f"{path} line {reader.line_num}: {exc}.") from exc
    if not header_seen:
        raise DataError(f"{path} is empty.")
    return _movies_frame(ids, titles, genres)
