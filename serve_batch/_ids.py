"""Validate an ID column and turn it into the model's ID type, or say exactly which row
is wrong.

Integer IDs (:func:`convert_id_column`), accepted: integer Arrow types; floats whose
values are all integral (CSV and pandas often give those); strings holding a decimal
integer, optionally with a ``.0`` suffix and surrounding spaces (CSV ID columns are read
as strings so that a bad value deep in the file is reported with its row instead of
failing type inference). Anything
else, and any null, is a ``DataError`` naming the file, column and 0-based row.

String IDs (:func:`convert_string_id_column`): string columns of any Arrow layout, and
integer columns as their decimal text; nulls and empty strings are refused the same way.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from movierec.serve_batch import contract
from movierec.serve_batch._arrow import null_mask, string_lengths, to_numpy
from movierec.serve_batch._idvalues import Ids, as_arrow_strings
from movierec.serve_batch.errors import DataError

#: A decimal integer as text: optional sign, digits, optional ``.000`` and spaces.
INTEGER_TEXT = r"^\s*[+-]?[0-9]+(\.0*)?\s*$"
_INT64_MAX = np.iinfo(np.int64).max
_FLOAT_LIMIT = 2.0**63


def convert_ids(
    column: pa.Array | pa.ChunkedArray,
    id_type: str,
    *,
    source: str,
    name: str,
    kind: str,
    row_offset: int = 0,
) -> Ids:
    """The column as IDs of ``id_type``: int64 numpy for integer IDs (:func:`convert_id_column`),
    an Arrow string array for string IDs (:func:`convert_string_id_column`)."""
    convert = convert_string_id_column if id_type == contract.ID_TYPE_STRING else convert_id_column
    return convert(column, source=source, name=name, kind=kind, row_offset=row_offset)


def convert_id_column(
    column: pa.Array | pa.ChunkedArray,
    *,
    source: str,
    name: str,
    kind: str,
    row_offset: int = 0,
) -> np.ndarray:
    """Return the column as a contiguous int64 array (``kind``: "user" or "movie").

    ``row_offset`` is the input row of the column's first value, so errors give the row
    number in the whole file.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    where = f"{source}: column {name!r}"

    def fail(row: int, got: str) -> DataError:
        return DataError(
            f"{where} row {row_offset + row} (0-based data row): expected an integer "
            f"{kind} ID, got {got}"
        )

    if column.null_count:
        row = int(np.flatnonzero(null_mask(column))[0])
        raise fail(row, "a null (missing) value")
    t = column.type
    if pa.types.is_integer(t):
        values = to_numpy(column)
        if pa.types.is_uint64(t) and values.size and values.max() > _INT64_MAX:
            row = int(np.argmax(values > _INT64_MAX))
            raise fail(row, f"{values[row]} (larger than int64)")
        return np.ascontiguousarray(values, dtype=np.int64)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = to_numpy(column.cast(pa.float64()))
        return _convert_floats(values, fail)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _convert_strings(column, fail)
    raise DataError(
        f"{where}: expected integer {kind} IDs, but the column has type {t} "
        f"(accepted: integers, integral floats, or text holding integers)"
    )


def _convert_floats(values: np.ndarray, fail) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (values != np.trunc(values)) | (np.abs(values) >= _FLOAT_LIMIT)
    if bad.any():
        row = int(np.argmax(bad))
        raise fail(row, repr(float(values[row])))
    return values.astype(np.int64)


def _convert_strings(column: pa.Array, fail) -> np.ndarray:
    # fast path: only ASCII digits (Arrow's cast alone would also take "0x10")
    if pc.all(pc.ascii_is_decimal(column)).as_py():
        try:
            return np.ascontiguousarray(to_numpy(pc.cast(column, pa.int64())), dtype=np.int64)
        except pa.ArrowInvalid:
            pass  # overflow: reported below
    ok = to_numpy(pc.match_substring_regex(column, INTEGER_TEXT))
    if not ok.all():
        row = int(np.argmax(~ok))
        value = column[row].as_py()
        raise fail(row, "an empty value" if not value.strip() else _show(value))
    cleaned = pc.replace_substring_regex(column, r"^\s*\+?|(\.0*)?\s*$", "")
    try:
        return np.ascontiguousarray(to_numpy(pc.cast(cleaned, pa.int64())), dtype=np.int64)
    except pa.ArrowInvalid:  # only overflow is left: find it in Python (error path only)
        for row, text in enumerate(cleaned.to_pylist()):
            if not -_INT64_MAX - 1 <= int(text) <= _INT64_MAX:
                raise fail(row, f"{_show(column[row].as_py())} (outside int64)") from None
        raise


def _show(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def convert_string_id_column(
    column: pa.Array | pa.ChunkedArray,
    *,
    source: str,
    name: str,
    kind: str,
    row_offset: int = 0,
) -> pa.Array:
    """Return the column as an Arrow ``string`` array of string IDs, kept exactly (no
    trimming, case kept).

    Accepted: string, large_string and dictionary<string> columns, and integer columns
    (read as their decimal text). Nulls and empty strings are a ``DataError`` naming the
    file, column and 0-based row, as is any other type.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    where = f"{source}: column {name!r}"
    t = column.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)):
        raise DataError(
            f"{where}: expected string {kind} IDs, but the column has type {column.type} "
            "(accepted: strings, or integers read as their decimal text)"
        )
    values = as_arrow_strings(column)  # a dictionary's null values become nulls here
    if values.null_count:
        row = int(np.flatnonzero(null_mask(values))[0])
        raise DataError(
            f"{where} row {row_offset + row} (0-based data row): expected a string {kind} ID, "
            "got a null (missing) value"
        )
    empty = string_lengths(values) == 0
    if empty.any():
        row = int(np.argmax(empty))
        raise DataError(
            f"{where} row {row_offset + row} (0-based data row): expected a string {kind} ID, "
            "got an empty string"
        )
    return values
