"""The fast reader of id_mapping.json equals json.loads, and falls back to it."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from movierec.serve_batch import contract
from movierec.serve_batch._idmap import build_idmap
from movierec.serve_batch._mapping_json import IdTable, loads_mapping


def _mapping(user_ids, movie_ids, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    users = [str(u) for u in user_ids]
    movies = [str(m) for m in movie_ids]
    return {
        contract.MAPPING_FORMAT_VERSION: contract.FORMAT_VERSION,
        contract.MAPPING_RATING_SCALE: {"min": 0.5, "max": 5.0},
        contract.MAPPING_USER_INDEX: {k: i for i, k in enumerate(users)},
        contract.MAPPING_MOVIE_INDEX: {k: i for i, k in enumerate(movies)},
        contract.MAPPING_FALLBACK: {
            contract.FALLBACK_GLOBAL_MEAN: 3.5,
            contract.FALLBACK_USER_MEAN: {k: round(float(rng.random() * 4 + 1), 6) for k in users},
            contract.FALLBACK_MOVIE_MEAN: {k: float(rng.random()) * 1e-7 for k in movies},
            contract.FALLBACK_DAMPING: 5.0,
        },
        contract.MAPPING_TITLES: {k: f'Movie "{k}", user_mean":{{' for k in movies},
    }


def _plain(obj):
    """IdTables as the dicts json.loads gives."""
    if isinstance(obj, IdTable):
        return dict(obj.items())
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=30, unique=True),
    st.lists(st.integers(0, 2**31), min_size=1, max_size=30, unique=True),
)
def test_compact_layout_reads_as_json_does(user_ids, movie_ids):
    mapping = _mapping(user_ids, movie_ids)
    data = (json.dumps(mapping, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    got = loads_mapping(data)
    assert isinstance(got[contract.MAPPING_USER_INDEX], IdTable)
    assert isinstance(got[contract.MAPPING_FALLBACK][contract.FALLBACK_MOVIE_MEAN], IdTable)
    assert _plain(got) == json.loads(data)
    fallback = got[contract.MAPPING_FALLBACK]
    fast = build_idmap(got[contract.MAPPING_USER_INDEX], fallback[contract.FALLBACK_USER_MEAN], 3.5)
    ref = json.loads(data)
    slow = build_idmap(
        ref[contract.MAPPING_USER_INDEX],
        ref[contract.MAPPING_FALLBACK][contract.FALLBACK_USER_MEAN],
        3.5,
    )
    for field in ("ids", "rows", "means"):
        assert np.array_equal(getattr(fast, field), getattr(slow, field))


@pytest.mark.parametrize(
    "text",
    [
        # pretty-printed, a non-integer key, a string value, an empty index, nested braces
        json.dumps(_mapping([1, 2], [3]), indent=1),
        json.dumps(_mapping([1, 2], [3])).replace('"1": 0', '"1.5": 0'),
        json.dumps(_mapping([1, 2], [3]), separators=(",", ":")).replace('"2":1', '"2":"1"'),
        '{"user_index":{},"movie_index":{"1":0},"fallback":{"user_mean":{},"movie_mean":{}}}',
        '{"user_index":{"1":{"x":1}},"movie_index":{},"fallback":{"user_mean":{},"movie_mean":{}}}',
    ],
)
def test_other_layouts_read_exactly_as_json_does(text):
    assert _plain(loads_mapping(text.encode())) == json.loads(text)


def test_bad_json_still_raises_json_errors():
    with pytest.raises(json.JSONDecodeError):
        loads_mapping(b'{"user_index":{"1":0},"movie_index":{"1":0},"fallback":{"user_mean":{}')


KEY = st.one_of(
    st.text(max_size=6),
    st.sampled_from(["7", "007", "1.5", "1e3", "-0", "a}b", 'q"uote', "back\\slash", "}", ":,"]),
)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(KEY, min_size=1, max_size=25, unique=True),
    st.lists(KEY, min_size=1, max_size=25, unique=True),
)
def test_string_keys_read_exactly_as_json_does(user_ids, movie_ids):
    """Keys of any text in the exporter's layout: those without an escape take the fast
    reader (keys cut out of the text as Arrow strings), any other falls back; both equal
    json.loads, and the string ID maps built from either are the same."""
    mapping = _mapping(user_ids, movie_ids)
    mapping[contract.MAPPING_ID_TYPES] = {"user": "string", "movie": "string"}
    data = (json.dumps(mapping, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    got = loads_mapping(data)
    ref = json.loads(data)
    assert _plain(got) == ref
    escaped = any(json.dumps(k, ensure_ascii=False) != f'"{k}"' for k in user_ids + movie_ids)
    assert isinstance(got[contract.MAPPING_USER_INDEX], IdTable) == (not escaped)
    for index_key, mean_key in (
        (contract.MAPPING_USER_INDEX, contract.FALLBACK_USER_MEAN),
        (contract.MAPPING_MOVIE_INDEX, contract.FALLBACK_MOVIE_MEAN),
    ):
        fast = build_idmap(
            got[index_key], got[contract.MAPPING_FALLBACK][mean_key], 3.5, id_type="string"
        )
        slow = build_idmap(
            ref[index_key], ref[contract.MAPPING_FALLBACK][mean_key], 3.5, id_type="string"
        )
        assert fast.ids.equals(slow.ids)
        assert np.array_equal(fast.rows, slow.rows) and np.array_equal(fast.means, slow.means)
