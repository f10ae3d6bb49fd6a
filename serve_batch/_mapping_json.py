"""Read ``id_mapping.json`` in a time that does not grow with Python objects per ID.

``json.loads`` builds a str and a number per ID, and turning those dicts into arrays
costs as much again: about 1 s of one core for 162k users and 59k movies. The exporter
writes the mapping compactly (``separators=(",", ":")``, ``ensure_ascii=False``), so
each large flat object (``{"id":number,...}``: the two indexes and the two fallback-mean
tables) is cut out of the text and parsed by numpy in one pass, and ``json.loads``
reads only what is left. Integer keys (decimal strings) are read as numbers with the
values; any other keys without an escape (``\\``) in them are cut out of the text as
an Arrow string array, so string IDs load without a Python object per ID either. Text
in any other layout takes ``json.loads`` unchanged.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from movierec.serve_batch import contract

#: The flat objects parsed by numpy: (path of keys, the values' dtype).
FLAT_OBJECTS = (
    ((contract.MAPPING_USER_INDEX,), np.int64),
    ((contract.MAPPING_MOVIE_INDEX,), np.int64),
    ((contract.MAPPING_FALLBACK, contract.FALLBACK_USER_MEAN), np.float64),
    ((contract.MAPPING_FALLBACK, contract.FALLBACK_MOVIE_MEAN), np.float64),
)
_SEPARATORS = bytes.maketrans(b'":,', b"   ")
_DIGITS = b"0123456789"
_QUOTE, _COLON, _COMMA, _SPACE = (ord(c) for c in '":, ')


@dataclass(frozen=True, eq=False)  # holds arrays
class IdTable(Mapping):
    """A ``{"raw id": value}`` JSON object held as arrays (read-only ``Mapping`` whose keys
    are the JSON keys exactly as written)."""

    ids: np.ndarray | None  # int64 keys in file order; None where a key is not an integer
    values: np.ndarray  # in file order
    text: bytes = field(default=b"", repr=False)  # the object's body ``"key":value,...``
    _keys: list = field(default_factory=list, repr=False)  # cache of keys_text()

    def keys_text(self) -> pa.Array:
        """The keys as an Arrow string array, in file order, exactly as written."""
        if not self._keys:
            keys = _cut_keys(self.text, self.values.size)
            if keys is None:  # only for text that _parse_flat accepted: cannot happen
                raise ValueError("the keys of an ID table could not be read back")
            self._keys.append(keys)
        return self._keys[0]

    def __getitem__(self, key: str):
        hit = np.flatnonzero(np.asarray(self.keys_text().to_pylist(), dtype=object) == key)
        if not hit.size:
            raise KeyError(key)
        return self.values[hit[-1]].item()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys_text().to_pylist())

    def __len__(self) -> int:
        return int(self.values.size)


def loads_mapping(data: bytes) -> object:
    """``json.loads(data)``, with the large flat objects as :class:`IdTable` where the text
    is in the exporter's compact layout."""
    tables, rest, cursor = {}, [], 0
    for path, dtype in FLAT_OBJECTS:
        marker = b'"' + path[-1].encode() + b'":{'
        start = data.find(marker, cursor)
        if start < 0 or data.find(marker, start + 1) >= 0:
            return json.loads(data)
        body = start + len(marker)
        table, end = _parse_flat(data, body, dtype)
        if table is None:
            return json.loads(data)
        tables[path] = table
        rest += [data[cursor:body], b"}"]
        cursor = end + 1
    rest.append(data[cursor:])
    doc = json.loads(b"".join(rest))
    for path, table in tables.items():
        parent = doc
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or parent.get(path[-1]) != {}:
            return json.loads(data)  # the marker was not where the layout puts it
        parent[path[-1]] = table
    return doc


def _object_end(data: bytes, body: int) -> int:
    """Where the flat object starting at ``body`` ends: its first ``}`` outside a key.

    Keys may hold ``}`` (string IDs); without an escape in the object every ``"`` opens or
    closes a key, so a ``}`` after an even number of quotes ends it (-1: none).
    """
    end = data.find(b"}", body)
    while end >= 0 and data.count(b'"', body, end) % 2:
        end = data.find(b"}", end + 1)
    return end


def _parse_flat(data: bytes, body: int, dtype: type) -> tuple[IdTable | None, int]:
    """The flat object ``"id":value,...}`` at ``data[body:]`` -> (:class:`IdTable`, the
    index of its ``}``), or ``(None, -1)`` where the text is anything else."""
    end = data.find(b"}", body)  # integer keys hold no "}": the first one ends the object
    if end < 0:
        return None, -1
    if end == body:
        return IdTable(np.zeros(0, np.int64), np.zeros(0, dtype), b""), end
    table = _parse_integer_keys(data[body:end], dtype)
    if table is None:
        end = _object_end(data, body)
        table = _parse_text_keys(data[body:end], dtype) if end >= 0 else None
    return table, end


def _parse_integer_keys(body: bytes, dtype: type) -> IdTable | None:
    """Decimal keys: the whole body is numbers and separators, parsed in one pass."""
    allowed = b'":,' + _DIGITS + (b".-+eE" if dtype is np.float64 else b"-")
    pairs = body.count(b":")
    if (
        body.translate(None, allowed)
        or body.count(b",") != pairs - 1
        or body.count(b'"') != 2 * pairs
        or not body.startswith(b'"')
        or body.count(b'":') != pairs
    ):
        return None
    numbers = _numbers(body.translate(_SEPARATORS), dtype)
    if numbers is None or numbers.size != 2 * pairs:
        return None
    keys = numbers[0::2]
    ids = keys.astype(np.int64)
    if dtype is np.float64 and not np.array_equal(ids, keys):
        return _parse_text_keys(body, dtype)  # e.g. "1.5" or "1e3": keys, but not integers
    return IdTable(ids, numbers[1::2], body)


def _parse_text_keys(body: bytes, dtype: type) -> IdTable | None:
    """Keys of any text without escapes: the bytes inside quotes are blanked out and the
    values parsed as above; the keys are cut out by :func:`_cut_keys` when asked for."""
    if b"\\" in body or not body.startswith(b'"'):
        return None
    raw = np.frombuffer(body, np.uint8)
    quote = raw == _QUOTE
    inside = (np.cumsum(quote) % 2 == 1) | quote  # key bytes and their quotes
    at = np.flatnonzero(quote)
    opens, closes = at[0::2], at[1::2]
    pairs = closes.size
    if opens.size != pairs or closes[-1] + 1 >= raw.size or (raw[opens[1:] - 1] != _COMMA).any():
        return None
    rest = raw.copy()
    rest[inside] = _SPACE
    # every key is followed by ':', every value but the last by ',' and a key
    after = raw[closes + 1]
    separators = (rest == _COLON) | (rest == _COMMA)
    if (
        (after != _COLON).any()
        or int((rest == _COLON).sum()) != pairs
        or int((rest == _COMMA).sum()) != pairs - 1
        or (raw[inside & ~quote] < 0x20).any()  # raw control bytes: not JSON
    ):
        return None
    rest[separators] = _SPACE
    if rest[~inside & ~separators].tobytes().translate(None, _DIGITS + b".-+eE"):
        return None
    values = _numbers(rest.tobytes(), dtype)
    if values is None or values.size != pairs:
        return None
    table = IdTable(None, values, body)
    keys = _cut_keys(body, pairs)
    if keys is None:
        return None
    table._keys.append(keys)
    return table


def _numbers(text: bytes, dtype: type) -> np.ndarray | None:
    """Space-separated numbers of ``text``; None where something else stops the read
    (a key such as "E" passes the character check of the float tables)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy < 2 warns on a short read: the count tells
        try:
            return np.fromstring(text, dtype=dtype, sep=" ")
        except ValueError:  # numpy >= 2 raises instead
            return None


def _cut_keys(body: bytes, pairs: int) -> pa.Array | None:
    """The quoted keys of ``body`` (no escapes in it) as an Arrow string array; None where
    they are not valid UTF-8."""
    raw = np.frombuffer(body, np.uint8)
    quote = raw == _QUOTE
    at = np.flatnonzero(quote)
    if at.size != 2 * pairs:
        return None
    starts, ends = at[0::2] + 1, at[1::2]
    key_bytes = (np.cumsum(quote) % 2 == 1) & ~quote
    offsets = np.zeros(pairs + 1, dtype=np.int32)
    np.cumsum(ends - starts, out=offsets[1:])
    data = pa.py_buffer(raw[key_bytes].tobytes())
    keys = pa.Array.from_buffers(pa.string(), pairs, [None, pa.py_buffer(offsets), data])
    try:
        keys.validate(full=True)
    except pa.ArrowInvalid:
        return None
    return keys
