"""ID arrays of either type, handled alike: int64 numpy arrays for integer IDs, Arrow
``string`` arrays for string IDs (kept as Arrow from the file to the output, never a
Python object per ID).

The functions here take either kind and give back the same kind, so the scoring code
carries a side's IDs without asking which type they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from movierec.serve_batch import contract
from movierec.serve_batch._arrow import from_numpy, strings_from_list, to_numpy
from movierec.serve_batch._sorting import sorted_unique

#: Either kind of ID array.
Ids = np.ndarray | pa.Array
#: How many characters of a string ID a message shows.
SHOW_CHARS = 40


def is_text(ids: Ids) -> bool:
    """Whether ``ids`` are string IDs (an Arrow array), not integers (numpy)."""
    return isinstance(ids, (pa.Array, pa.ChunkedArray))


def column_ids(column: pa.Array) -> Ids:
    """An ID column already converted to the model's type (``movierec.serve_batch._ids``)
    as the scorer holds IDs: int64 numpy (a view of the Arrow buffer), or the Arrow string
    array itself."""
    return column if pa.types.is_string(column.type) else to_numpy(column)


def empty_ids(id_type: str) -> Ids:
    if id_type == contract.ID_TYPE_STRING:
        return strings_from_list([])
    return np.empty(0, dtype=np.int64)


def take(ids: Ids, index: np.ndarray) -> Ids:
    """``ids[index]`` for an integer index array."""
    if is_text(ids):
        return ids.take(from_numpy(np.asarray(index, dtype=np.int64)))
    return ids[index]


def keep(ids: Ids, mask: np.ndarray) -> Ids:
    """``ids[mask]`` for a boolean mask."""
    if is_text(ids):
        return ids.filter(from_numpy(np.asarray(mask, dtype=bool)))
    return ids[mask]


def concat(parts: Sequence[Ids], id_type: str = contract.ID_TYPE_INT) -> Ids:
    """The parts one after another (``id_type`` gives the kind when there are none)."""
    if not parts:
        return empty_ids(id_type)
    if is_text(parts[0]):
        chunks = [c for p in parts for c in (p.chunks if isinstance(p, pa.ChunkedArray) else [p])]
        return pa.concat_arrays(chunks) if len(chunks) != 1 else chunks[0]
    return np.concatenate(parts)


def to_arrow(ids: Ids) -> pa.Array:
    """The IDs as the Arrow column of a table: int64 or string."""
    if is_text(ids):
        return ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    return from_numpy(ids, np.int64)


def to_python(ids: Ids) -> list:
    """Python ints or strs (for a manifest; a few values only)."""
    return ids.to_pylist() if is_text(ids) else [int(v) for v in ids]


def show(value: Any) -> str:
    """One ID as a message shows it: ``42``, or ``'c-00042'`` quoted (long ones cut)."""
    if isinstance(value, str):
        return repr(value if len(value) <= SHOW_CHARS else value[:SHOW_CHARS] + "...")
    return str(int(value))


def first_distinct(ids: Ids, count: int) -> list:
    """The first ``count`` distinct IDs in order of appearance, as Python values."""
    if len(ids) == 0:
        return []
    if is_text(ids):
        return pc.unique(ids)[:count].to_pylist()  # unique() keeps first appearance order
    _, first = np.unique(ids, return_index=True)
    return [int(v) for v in ids[np.sort(first)[:count]]]


def distinct(ids: Ids) -> Ids:
    """Distinct IDs, in no particular order for strings (ascending for integers)."""
    return pc.unique(ids) if is_text(ids) else sorted_unique(ids)


def as_arrow_strings(values: pa.Array) -> pa.Array:
    """A string, large_string or dictionary<string> Arrow array as plain ``string``."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    return values


def strings(values: Sequence[str]) -> pa.Array:
    """Python strings as an Arrow string array (without pyarrow's pandas probe)."""
    return strings_from_list(list(values))
