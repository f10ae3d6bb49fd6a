"""Check and convert the columns of a user's ratings table, vectorised, naming the bad row.

Each column is converted whole by pyarrow; only when that fails is the first bad row
looked for, by halving the column (a conversion of each half, never a loop over rows),
so a 25M-row table costs a few conversions even on the error path.

- IDs: integers stay integers (int64); text stays text (Arrow strings, matched exactly),
  except that a text column read from CSV whose every value is a plain decimal integer
  (no sign but "-", no leading zero) is read as integers, as a typed file would hold them.
  Integral floats are integers. Nulls and empty strings are errors.
- Ratings: any number (text from CSV is parsed); nulls, NaN and infinities are errors.
- Times: integer (or float) Unix seconds, a timestamp of any unit and time zone, a date,
  or ISO 8601 text; stored as int64 Unix seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from movierec.serve_batch.errors import DataError

#: Text that is read as an integer ID: a plain decimal integer (``-12``, ``0``, ``42``).
PLAIN_INTEGER = r"^-?(0|[1-9][0-9]{0,17})$"
_INT64 = np.iinfo(np.int64)


@dataclass(frozen=True)
class Where:
    """Where a column came from, for error messages: the file (or table) and column name,
    and the 0-based data row of the column's first value within that file."""

    source: str
    column: str
    first_row: int = 0

    def row(self, row: int, problem: str) -> DataError:
        return DataError(
            f"{self.source}: column {self.column!r} row {self.first_row + row} "
            f"(0-based data row): {problem}"
        )

    def whole(self, problem: str) -> DataError:
        return DataError(f"{self.source}: column {self.column!r}: {problem}")


def _combined(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return column


def _first_failing(column: pa.Array, convert: Callable[[pa.Array], object]) -> int:
    """The first row of ``column`` whose conversion fails (``column`` as a whole fails)."""
    lo, hi = 0, len(column)  # the failure lies in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(column.slice(lo, mid - lo))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OverflowError):
            hi = mid
        else:
            lo = mid
    return lo


def _check_nulls(column: pa.Array, where: Where, what: str) -> None:
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise where.row(row, f"expected {what}, got a null (missing) value")


def _show(value: object, limit: int = 40) -> str:
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def convert_ids(
    column: pa.Array | pa.ChunkedArray, where: Where, kind: str, text_may_be_int: bool
) -> pa.Array:
    """An ID column as int64 or as strings (see the module docstring).

    ``kind``: "user" or "movie", for messages; ``text_may_be_int``: the column came from CSV,
    where nothing but the text says whether IDs are integers.
    """
    column = _combined(column)
    what = f"a {kind} ID"
    _check_nulls(column, where, what)
    t = column.type
    if pa.types.is_integer(t):
        if pa.types.is_uint64(t) and len(column) and pc.max(column).as_py() > _INT64.max:
            row = int(np.argmax(column.to_numpy() > _INT64.max))
            raise where.row(row, f"{column[row].as_py()} does not fit in 64 bits")
        return column.cast(pa.int64())
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = column.cast(pa.float64()).to_numpy()
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values != np.trunc(values)) | (np.abs(values) >= 2**63)
        if bad.any():
            row = int(np.argmax(bad))
            raise where.row(row, f"expected an integer {kind} ID, got {float(values[row])}")
        return pa.array(values.astype(np.int64), type=pa.int64())
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        empty = pc.equal(pc.utf8_length(column), 0)
        if pc.any(empty).as_py():
            row = int(np.flatnonzero(empty.to_numpy(zero_copy_only=False))[0])
            raise where.row(row, f"expected {what}, got an empty value")
        if (
            text_may_be_int
            and len(column)
            and pc.all(pc.match_substring_regex(column, PLAIN_INTEGER)).as_py()
        ):
            return column.cast(pa.int64())
        return column.cast(pa.string())
    raise where.whole(f"expected {kind} IDs (integers or text), but the column has type {t}")


def convert_ratings(column: pa.Array | pa.ChunkedArray, where: Where) -> np.ndarray:
    """Ratings as float64, every one a finite number."""
    column = _combined(column)
    _check_nulls(column, where, "a rating")
    t = column.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):

        def parse(c: pa.Array) -> pa.Array:
            return pc.cast(pc.utf8_trim_whitespace(c), pa.float64())

        try:
            column = parse(column)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            row = _first_failing(column, parse)
            raise where.row(
                row, f"expected a number (the rating), got {_show(column[row])}"
            ) from None
    elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        raise where.whole(f"expected numbers (ratings), but the column has type {t}")
    values = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False))
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad))
        raise where.row(row, f"expected a finite rating, got {float(values[row])}")
    return values


_TIME_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def convert_times(column: pa.Array | pa.ChunkedArray, where: Where) -> np.ndarray:
    """Rating times as int64 Unix seconds (floored; time zones only say how the wall clock
    read, the instant is the same)."""
    column = _combined(column)
    _check_nulls(column, where, "a time")
    t = column.type
    if pa.types.is_integer(t):
        return np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)
    if pa.types.is_floating(t):
        values = column.to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise where.row(row, f"expected a time (Unix seconds), got {float(values[row])}")
        return np.floor(values).astype(np.int64)
    if pa.types.is_timestamp(t):
        raw = np.asarray(column.cast(pa.int64()).to_numpy(), dtype=np.int64)
        return raw // _TIME_UNITS[t.unit]
    if pa.types.is_date(t):
        seconds = column.cast(pa.timestamp("s")).cast(pa.int64())
        return np.asarray(seconds.to_numpy(), dtype=np.int64)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _text_times(column, where)
    raise where.whole(
        f"expected times (Unix seconds, a timestamp, a date or ISO 8601 text), but the "
        f"column has type {t}"
    )


def _text_times(column: pa.Array, where: Where) -> np.ndarray:
    """ISO 8601 text (with a zone offset, or without one: read as UTC), or decimal seconds."""
    trimmed = pc.utf8_trim_whitespace(column)
    if len(trimmed) and pc.all(pc.match_substring_regex(trimmed, r"^-?[0-9]+$")).as_py():
        return np.asarray(trimmed.cast(pa.int64()).to_numpy(), dtype=np.int64)

    def with_zone(c: pa.Array) -> pa.Array:
        return pc.cast(c, pa.timestamp("us", tz="UTC"))

    def without_zone(c: pa.Array) -> pa.Array:
        return pc.cast(c, pa.timestamp("us"))

    parsed = None
    for parse in (with_zone, without_zone):
        try:
            parsed = parse(trimmed)
            break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    if parsed is None:
        row = _first_failing(trimmed, without_zone)
        raise where.row(
            row,
            f"expected a time (Unix seconds or ISO 8601 such as 2024-05-01T12:00:00Z), got "
            f"{_show(column[row])}",
        )
    micros = np.asarray(parsed.cast(pa.int64()).to_numpy(), dtype=np.int64)
    return micros // 1_000_000
