"""Read ``id_mapping.json`` in a time that does not grow with Python objects per ID.

``json.loads`` builds a str and a number per ID, and turning those dicts into arrays
costs as much again: about 1 s of one core for 162k users and 59k movies. The exporter
writes the mapping compactly (``separators=(",", ":")``, keys as decimal strings), so
each large flat object (``{"id":number,...}``: the two indexes and the two fallback-mean
tables) is cut out of the text and parsed by numpy in one pass, and ``json.loads``
reads only what is left. Text in any other layout takes ``json.loads`` unchanged.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

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


@dataclass(frozen=True, eq=False)  # holds arrays
class IdTable(Mapping):
    """A ``{"raw id": value}`` JSON object held as arrays (read-only ``Mapping``)."""

    ids: np.ndarray  # int64, in file order
    values: np.ndarray

    def __getitem__(self, key: str):
        hit = np.flatnonzero(self.ids == int(key))
        if not hit.size:
            raise KeyError(key)
        return self.values[hit[0]].item()

    def __iter__(self) -> Iterator[str]:
        return (str(i) for i in self.ids.tolist())

    def __len__(self) -> int:
        return int(self.ids.size)


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
        end = data.find(b"}", body)
        table = _parse_flat(data[body:end], dtype) if end >= 0 else None
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


def _parse_flat(body: bytes, dtype: type) -> IdTable | None:
    """``"id":value,...`` -> :class:`IdTable`, or None where the text is anything else."""
    if not body:
        return IdTable(np.zeros(0, np.int64), np.zeros(0, dtype))
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short read is caught by the count below
        numbers = np.fromstring(body.translate(_SEPARATORS), dtype=dtype, sep=" ")
    if numbers.size != 2 * pairs:
        return None
    keys = numbers[0::2]
    ids = keys.astype(np.int64)
    if dtype is np.float64 and not np.array_equal(ids, keys):
        return None
    return IdTable(ids, numbers[1::2])
