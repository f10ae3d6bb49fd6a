"""Arrow <-> numpy for the scorer's columns without pyarrow's pandas probe.

Where pandas is installed, pyarrow imports it the first time ``Array.to_numpy``,
``pa.array(ndarray)`` or ``pa.scalar`` runs (its lazy pandas shim checks whether a value
is a pandas type): 0.5-0.8 s and about 30 MiB of every rec-score run, for nothing the
scorer uses (`bench/score_lean.py`). The scorer's columns are fixed-width numbers and
booleans, so they go through their buffers instead, as Arrow's columnar format lays
them out: an optional validity bitmap and a values buffer, booleans packed eight to a
byte, least significant bit first.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_NUMPY_DTYPES = {
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.uint8(): np.uint8,
    pa.uint16(): np.uint16,
    pa.uint32(): np.uint32,
    pa.uint64(): np.uint64,
    pa.float16(): np.float16,
    pa.float32(): np.float32,
    pa.float64(): np.float64,
}


def to_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A numeric or boolean column as a 1-D numpy array; nulls become NaN in a float
    column. Numbers without nulls are a read-only view of the Arrow buffer (no copy).

    Raises ``TypeError`` for other types and ``ValueError`` for nulls in a column that
    is not floating point: callers check both before converting.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    t = values.type
    n, offset = len(values), values.offset
    if pa.types.is_boolean(t):
        out = _unpack_bits(values.buffers()[1], offset, n)
    elif t in _NUMPY_DTYPES:
        dtype = np.dtype(_NUMPY_DTYPES[t])
        buffer = values.buffers()[1]
        if n == 0 or buffer is None:
            out = np.empty(0, dtype)
        else:
            out = np.frombuffer(buffer, dtype, count=n, offset=offset * dtype.itemsize)
    else:
        raise TypeError(f"expected a numeric or boolean Arrow column, got {t}")
    if values.null_count:
        if not pa.types.is_floating(t):
            raise ValueError(f"a {t} column with {values.null_count} null(s) has no numpy form")
        valid = _unpack_bits(values.buffers()[0], offset, n)
        out = np.where(valid, out, np.nan).astype(out.dtype, copy=False)
    return out


def indices_with_nulls(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """An integer Arrow array that may hold nulls (e.g. ``pc.index_in``'s answer) as int64
    values (0 where null) and a mask of the valid entries."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    n, offset = len(values), values.offset
    dtype = np.dtype(_NUMPY_DTYPES[values.type])
    buffer = values.buffers()[1]
    if n == 0 or buffer is None:
        return np.zeros(n, np.int64), np.ones(n, bool)
    raw = np.frombuffer(buffer, dtype, count=n, offset=offset * dtype.itemsize)
    out = raw.astype(np.int64)
    if not values.null_count:
        return out, np.ones(n, bool)
    valid = _unpack_bits(values.buffers()[0], offset, n)
    out[~valid] = 0
    return out, valid


def string_lengths(values: pa.Array) -> np.ndarray:
    """Byte lengths of a ``string`` or ``large_string`` array's values, from its offsets
    (``pc.binary_length`` compared with a Python number would probe for pandas)."""
    wide = pa.types.is_large_string(values.type)
    dtype = np.int64 if wide else np.int32
    n = len(values)
    if n == 0:
        return np.zeros(0, np.int64)
    offsets = np.frombuffer(
        values.buffers()[1], dtype, count=n + 1, offset=values.offset * (8 if wide else 4)
    )
    return np.diff(offsets).astype(np.int64)


def null_mask(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """True where ``values`` is null, as a numpy bool array."""
    return to_numpy(values.is_null())


def from_numpy(values: np.ndarray, dtype: np.dtype | type | None = None) -> pa.Array:
    """A 1-D numpy array of numbers or booleans (converted to ``dtype`` if given) as an
    Arrow array without nulls; numbers share the numpy memory."""
    array = np.ascontiguousarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"expected a 1-D array, got shape {array.shape}")
    if array.dtype == np.bool_:
        bits = np.packbits(array, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), array.size, [None, pa.py_buffer(bits)])
    arrow_type = pa.from_numpy_dtype(array.dtype)
    if arrow_type not in _NUMPY_DTYPES:
        raise TypeError(f"expected numbers or booleans, got dtype {array.dtype}")
    return pa.Array.from_buffers(arrow_type, array.size, [None, pa.py_buffer(array)])


def strings_from_list(values: list[str]) -> pa.Array:
    """A list of Python strings as an Arrow ``string`` array, built from its offsets and
    UTF-8 bytes (``pa.array`` of a list probes for pandas too)."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    data = pa.py_buffer(b"".join(encoded))
    return pa.Array.from_buffers(pa.string(), len(encoded), [None, pa.py_buffer(offsets), data])


def _unpack_bits(buffer: pa.Buffer | None, offset: int, n: int) -> np.ndarray:
    if n == 0 or buffer is None:
        return np.zeros(n, dtype=np.bool_)
    bits = np.frombuffer(buffer, np.uint8)
    return np.unpackbits(bits, count=offset + n, bitorder="little")[offset:].view(np.bool_)


#: The one column of :func:`pickled_table`.
PICKLED_COL = "pickled"


def pickled_table(items: list) -> pa.Table:
    """Python objects as a table of one binary cell each (how the Ray engine moves blocks
    and results of any type through Ray Data; Arrow tables pickle as their buffers)."""
    import pickle

    data = [pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL) for item in items]
    offsets = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in data], out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
    column = pa.Array.from_buffers(pa.large_binary(), len(data), buffers)
    return pa.Table.from_arrays([column], names=[PICKLED_COL])


def unpickled(table: pa.Table) -> list:
    """The objects of :func:`pickled_table`, in order."""
    import pickle

    column = table.column(PICKLED_COL).combine_chunks()
    offsets = np.frombuffer(column.buffers()[1], np.int64, len(column) + 1, column.offset * 8)
    data = column.buffers()[2]
    ends = zip(offsets[:-1], offsets[1:], strict=True)
    return [pickle.loads(data[int(a) : int(b)]) for a, b in ends]
