"""Raw ID -> row lookup: dense table and binary search agree with a plain dict."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.serve_batch._idmap import build_idmap
from movierec.serve_batch._string_index import WINDOW, StringIndex, hash_strings

INT64 = st.integers(-(2**63), 2**63 - 1)


def reference(index: dict[int, int], raw: list[int]) -> tuple[list[int], list[bool]]:
    return [index.get(r, -1) for r in raw], [r in index for r in raw]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-50, 5000), min_size=1, max_size=60, unique=True),
    st.lists(st.one_of(st.integers(-60, 5010), INT64), max_size=80),
    st.randoms(use_true_random=False),
)
def test_lookup_matches_a_dict(ids: list[int], raw: list[int], rnd) -> None:
    rows = list(range(len(ids)))
    rnd.shuffle(rows)
    index = dict(zip(ids, rows, strict=True))
    idmap = build_idmap({str(k): v for k, v in index.items()}, {}, 3.0)
    assert idmap.dense is not None  # compact range: the fast path is what runs
    want_rows, want_known = reference(index, raw)
    arr = np.array(raw, dtype=np.int64)
    for got_rows, known, pos in (idmap.lookup(arr), idmap.lookup_sorted(arr)):
        assert known.tolist() == want_known
        assert [r if k else -1 for r, k in zip(got_rows.tolist(), known, strict=True)] == want_rows
        assert (idmap.ids[pos][known] == arr[known]).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(INT64, min_size=1, max_size=40, unique=True), st.lists(INT64, max_size=40))
def test_sparse_ids_use_binary_search(ids: list[int], raw: list[int]) -> None:
    index = {v: i for i, v in enumerate(ids)}
    idmap = build_idmap({str(k): v for k, v in index.items()}, {}, 3.0)
    probe = np.array(raw + ids, dtype=np.int64)
    rows, known, _ = idmap.lookup(probe)
    want_rows, want_known = reference(index, probe.tolist())
    assert known.tolist() == want_known
    assert rows[known].tolist() == [r for r in want_rows if r >= 0]


def test_fallback_means_follow_ids_and_default() -> None:
    idmap = build_idmap({"30": 0, "10": 1, "20": 2}, {"10": 4.5, "30": 2.0, "99": 1.0}, 3.25)
    assert idmap.ids.tolist() == [10, 20, 30]
    assert idmap.rows.tolist() == [1, 2, 0]
    assert idmap.means.tolist() == [4.5, 3.25, 2.0]


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ({"1": 0, "01": 1}, "appears twice"),
        ({"1": 0, "2": 0}, "share one embedding row"),
        ({"1": -1}, "negative embedding row"),
        ({"x": 0}, "invalid literal"),
    ],
)
def test_bad_index_is_refused(index: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_idmap(index, {}, 3.0)


# --- string IDs -----------------------------------------------------------------------------

TEXT = st.one_of(st.text(max_size=6), st.sampled_from(["7", "007", "07", " 7", "7 ", "Ω", "ω"]))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(TEXT.filter(bool), min_size=1, max_size=40, unique=True),
    st.lists(TEXT.filter(bool), max_size=60),
    st.randoms(use_true_random=False),
)
def test_string_lookup_matches_a_dict_exactly(ids: list[str], raw: list[str], rnd) -> None:
    rows = list(range(len(ids)))
    rnd.shuffle(rows)
    index = dict(zip(ids, rows, strict=True))
    means = {k: float(i) for i, k in enumerate(ids[::2])}
    idmap = build_idmap(index, means, 3.0, id_type="string")
    assert idmap.ids.to_pylist() == sorted(ids)  # code point order, as Python sorts str
    probe = raw + ids
    got_rows, known, pos = idmap.lookup(pa.array(probe, pa.string()))
    want_rows, want_known = reference(index, probe)
    assert known.tolist() == want_known
    assert [r if k else -1 for r, k in zip(got_rows.tolist(), known, strict=True)] == want_rows
    assert [idmap.ids[int(p)].as_py() for p in pos[known]] == [p for p in probe if p in index]
    assert idmap.means.tolist() == [means.get(k, 3.0) for k in sorted(ids)]
    # the table order: known IDs by code point, then unknown ones by code point
    codes = idmap.sort_codes(pa.array(probe, pa.string()), known, pos)
    by_code = [p for _, p in sorted(zip(codes.tolist(), probe, strict=True))]
    want = sorted(probe, key=lambda p: (p not in index, p))
    assert by_code == want
    assert len(set(codes.tolist())) == len(set(probe))  # equal codes <=> equal IDs


def test_string_maps_refuse_duplicates_and_keep_leading_zeros() -> None:
    idmap = build_idmap({"007": 0, "7": 1}, {}, 3.0, id_type="string")
    rows, known, _ = idmap.lookup(pa.array(["7", "007", "07"]))
    assert rows[known].tolist() == [1, 0] and known.tolist() == [True, True, False]
    with pytest.raises(ValueError, match="share one embedding row"):
        build_idmap({"a": 0, "b": 0}, {}, 3.0, id_type="string")
    with pytest.raises(ValueError, match="invalid literal"):
        build_idmap({"a": 0}, {}, 3.0)  # read as integer IDs


# --- the string index (index_in, or a hash table built once) ------------------------------


@settings(max_examples=150, deadline=None)
@given(
    st.lists(TEXT, min_size=1, max_size=50, unique=True),
    st.lists(TEXT, max_size=60),
    st.booleans(),
    st.sampled_from(["string", "large_string", "sliced"]),
)
def test_string_index_finds_exactly_what_a_dict_finds(
    ids: list[str], probe: list[str], table: bool, layout: str
) -> None:
    """Both ways (``index_in``; the hash table, forced with table_from=1) give each
    probe's position in ``ids``, or none: "" and "\\x00" included, any layout."""
    index = StringIndex(pa.array(ids, pa.string()), table_from=1 if table else 10**9)
    assert index.hashed == table
    values = probe + ids
    arr = pa.array(values, pa.large_string() if layout == "large_string" else pa.string())
    if layout == "sliced":  # offsets that do not start at 0
        arr = pa.array(["pad", *values], pa.string()).slice(1)
    pos, known = index.positions(arr)
    where = {k: i for i, k in enumerate(ids)}
    assert known.tolist() == [v in where for v in values]
    assert pos.tolist() == [where.get(v, 0) for v in values]


def test_hashes_depend_on_every_byte_and_the_length() -> None:
    values = ["", "\x00", "\x00\x00", "a", "a\x00", "b", "ab", "ba", "é", "e\u0301"]
    h = hash_strings(pa.array(values))
    assert len(set(h.tolist())) == len(values)
    # the same string hashes alike wherever it sits in the data
    again = hash_strings(pa.array(["x" * 7, *values]).slice(1))
    assert again.tolist() == h.tolist()


def test_strings_longer_than_a_window_hash_in_pieces() -> None:
    long = "z" * (WINDOW + 123)
    ids = pa.array(["a", long, long[:-1] + "y", long + "z"])
    index = StringIndex(ids, table_from=1)
    pos, known = index.positions(pa.array([long, long[:-1] + "y", long[:-1], "a"]))
    assert known.tolist() == [True, True, False, True]
    assert pos.tolist() == [1, 2, 0, 0]


def test_a_hash_collision_among_the_ids_keeps_index_in(monkeypatch) -> None:
    import movierec.serve_batch._string_index as module

    def collide(self, values):
        return np.zeros(len(values), np.uint64)

    monkeypatch.setattr(module.StringHasher, "__call__", collide)
    index = StringIndex(pa.array(["a", "b"]), table_from=1)
    assert not index.hashed
    pos, known = index.positions(pa.array(["b", "c"]))
    assert pos.tolist() == [1, 0] and known.tolist() == [True, False]
