"""String IDs and the model's own ID columns (``id_types`` / ``columns`` of the mapping):
rec-score reads, matches and writes IDs of the model's type under the input's names.

The fakes (tests/serve_batch/conftest.py): ``fake_strings`` (string users and movies
under customer_id / sku, a rank head, a catalog graph, the exporter's compact mapping),
``fake_strings_plain`` (no rank head, no catalog graph, an indented mapping) and
``fake_mixed`` (integer users ``member`` with string movies ``sku``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movierec.serve_batch import (
    DataError,
    ScoreConfig,
    UsageError,
    contract,
    load_artifacts,
    load_model,
    score,
)
from movierec.serve_batch._mapping_json import IdTable, loads_mapping
from movierec.serve_batch.errors import ArtifactError
from tests.support import build_fake_artifacts, read_table, write_table

UNKNOWN_USERS = ["c-99999", "7 ", "07", "zz-new"]  # "7 " and "07" are not "7"
UNKNOWN_MOVIES = ["tt9999999", "42.0", "Ü"]


def side_ids(fake, side: str, unknown: bool) -> list:
    """Known IDs of ``side``, plus unknown ones of the side's type."""
    known = (fake.user_ids if side == "user" else fake.movie_ids).tolist()
    if not unknown:
        return known
    text = fake.id_types[0 if side == "user" else 1] == "string"
    extra = (UNKNOWN_USERS if side == "user" else UNKNOWN_MOVIES) if text else [1, 2, 99999]
    return known + extra


def arrow_ids(values: list) -> pa.Array:
    return pa.array(values, pa.string() if isinstance(values[0], str) else pa.int64())


def pairs_table(fake, n: int, seed: int, unknown: bool = True) -> pa.Table:
    """Random pairs under the fake's column names, with a note and a rating column."""
    rng = np.random.default_rng(seed)
    users = side_ids(fake, "user", unknown)
    movies = side_ids(fake, "movie", unknown)
    user_col, movie_col = fake.columns
    return pa.table(
        {
            "note": [f"row-{i}" for i in range(n)],
            user_col: arrow_ids([users[i] for i in rng.integers(0, len(users), n)]),
            movie_col: arrow_ids([movies[i] for i in rng.integers(0, len(movies), n)]),
            "rating": rng.integers(1, 6, n).astype(np.float64),
        }
    )


def run(run_cli, fake, *args) -> tuple[int, str]:
    return run_cli(*args, "--artifacts", fake.folder, artifacts=False)


def order_key(arts, side: str):
    """The documented table order of one side's IDs: integers by value; strings the model
    knows by code point, then unknown ones by code point."""
    idmap = arts.users if side == "user" else arts.movies
    if idmap.id_type == "int":
        return lambda v: (0, v)
    known = set(idmap.ids.to_pylist())
    return lambda v: (v not in known, v)


def reference_top_k(arts, users: list, movies: list, k: int) -> list[tuple]:
    """Pairs-mode top-k in Python from the scorer's own scores: (user, rank, movie)."""
    pred = arts.predict_ids(users, movies)
    ukey, mkey = order_key(arts, "user"), order_key(arts, "movie")
    best: dict = {}
    for u, m, s, c in zip(users, movies, pred.rank_scores, pred.cold_start, strict=True):
        best[(u, m)] = (bool(c), -float(s), mkey(m))
    rows = []
    for u in sorted({u for u, _ in best}, key=ukey):
        mine = sorted((key, m) for (uu, m), key in best.items() if uu == u)[:k]
        rows += [(u, rank, m) for rank, (_, m) in enumerate(mine, 1)]
    return rows


def reference_catalog(arts, users: list, excluded: set, k: int) -> list[tuple]:
    """Catalog top-k in Python: every movie of every user through predict_ids."""
    movies = arts.movies.ids.to_pylist() if arts.movies.id_type == "string" else None
    movies = movies if movies is not None else arts.movies.ids.tolist()
    mkey = order_key(arts, "movie")
    rows = []
    for u in sorted(set(users), key=order_key(arts, "user")):
        cands = [m for m in movies if (u, m) not in excluded]
        if not cands:
            continue
        pred = arts.predict_ids([u] * len(cands), cands)
        order = sorted(range(len(cands)), key=lambda i: (-pred.rank_scores[i], mkey(cands[i])))
        rows += [
            (u, rank, cands[i], bool(pred.cold_start[i])) for rank, i in enumerate(order[:k], 1)
        ]
    return rows


# --- the mapping ----------------------------------------------------------------------------


def test_id_types_and_columns_load_from_the_mapping(any_fake_strings, fake) -> None:
    string = any_fake_strings
    arts = load_artifacts(string.model_path, string.mapping_path, threads=1)
    want_types = dict(zip(("user", "movie"), string.id_types, strict=True))
    assert arts.id_types == want_types
    assert arts.columns == dict(zip(("user", "movie"), string.columns, strict=True))
    model = load_model(string.folder)
    assert model.id_types == want_types and model.columns == arts.columns
    for side, idmap, ids in (
        ("user", arts.users, string.user_ids),
        ("movie", arts.movies, string.movie_ids),
    ):
        assert idmap.id_type == want_types[side]
        got = idmap.ids.to_pylist() if idmap.id_type == "string" else idmap.ids.tolist()
        assert got == ids.tolist()  # sorted by code point, as the reference
    # an older mapping (no id_types, no columns): integer IDs under user_id / movie_id
    old = json.loads(fake.mapping_path.read_text())
    assert contract.MAPPING_ID_TYPES not in old and contract.MAPPING_COLUMNS not in old
    model = load_model(fake.folder)
    assert model.id_types == {"user": "int", "movie": "int"}
    assert model.columns == {"user": "user_id", "movie": "movie_id"}


def test_the_compact_string_mapping_takes_the_fast_reader(fake_strings) -> None:
    data = fake_strings.mapping_path.read_bytes()
    doc = loads_mapping(data)
    assert isinstance(doc[contract.MAPPING_USER_INDEX], IdTable)
    assert isinstance(doc[contract.MAPPING_FALLBACK][contract.FALLBACK_MOVIE_MEAN], IdTable)
    plain = json.loads(data)
    index = doc[contract.MAPPING_USER_INDEX]
    assert dict(index.items()) == plain[contract.MAPPING_USER_INDEX]
    assert index.keys_text().to_pylist() == list(plain[contract.MAPPING_USER_INDEX])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"id_types": {"user": "uuid", "movie": "int"}}, r"id_types\.user must be one of"),
        ({"id_types": ["int", "int"]}, "'id_types' must be an object"),
        ({"columns": {"user": "", "movie": "sku"}}, r"columns\.user must be a column name"),
        ({"columns": {"user": "x", "movie": "x"}}, "one column for both sides"),
        # the users are "c-00100" and such: read as integers, they are refused
        ({"id_types": {"user": "int", "movie": "int"}}, "invalid literal for an integer ID"),
    ],
)
def test_a_bad_id_types_or_columns_key_is_an_artifact_error(
    tmp_path: Path, edit: dict, message: str
) -> None:
    fake = build_fake_artifacts(tmp_path, id_types=("string", "int"), compact=True)
    mapping = json.loads(fake.mapping_path.read_text())
    mapping.update(edit)
    _rewrite_mapping(fake, json.dumps(mapping, ensure_ascii=False, separators=(",", ":")).encode())
    with pytest.raises(ArtifactError, match=message):
        load_artifacts(fake.model_path, fake.mapping_path)


def _rewrite_mapping(fake, data: bytes) -> None:
    """Replace the fake's mapping and record its hash in the model, as an export would."""
    import hashlib

    import onnx

    fake.mapping_path.write_bytes(data)
    model = onnx.load(str(fake.model_path))
    for prop in model.metadata_props:
        if prop.key == contract.META_MAPPING_SHA256:
            prop.value = hashlib.sha256(data).hexdigest()
    onnx.save(model, str(fake.model_path))


# --- pairs mode -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_pairs_keep_the_input_names_and_the_model_types(
    any_fake_strings, run_cli, tmp_path: Path, fmt: str
) -> None:
    fake = any_fake_strings
    table = pairs_table(fake, 300, seed=1)
    inp = write_table(tmp_path / f"in.{fmt}", table)
    code, err = run(run_cli, fake, inp, tmp_path / f"out.{fmt}", "--batch-size", "64")
    assert code == 0, err
    got = read_table(tmp_path / f"out.{fmt}")
    user_col, movie_col = fake.columns
    assert got.column_names == [
        "note",
        user_col,
        movie_col,
        "rating",
        "predicted_rating",
        "cold_start",
    ]
    if fmt == "parquet":
        for col, side in ((user_col, 0), (movie_col, 1)):
            want = pa.string() if fake.id_types[side] == "string" else pa.int64()
            assert got.schema.field(col).type == want
    users, movies = table.column(user_col).to_pylist(), table.column(movie_col).to_pylist()
    if fmt == "parquet":  # CSV reads "007" back as 7: Parquet keeps the text as it was
        assert got.column(user_col).to_pylist() == users
        assert got.column(movie_col).to_pylist() == movies
    expected, cold = fake.expected(users, movies)
    np.testing.assert_allclose(got.column("predicted_rating").to_numpy(), expected, atol=1e-5)
    assert got.column("cold_start").to_pylist() == cold.tolist()
    manifest = json.loads((tmp_path / f"out.{fmt}.manifest.json").read_text())
    assert manifest["config"]["job"]["user_col"] == user_col  # resolved from the model
    assert manifest["metrics"]["rows"] == 300


def test_csv_string_ids_are_read_as_written(fake_strings, run_cli, tmp_path: Path) -> None:
    """A CSV ID column holding "007", "7" and " 7" keeps each as written (no trimming, no
    number parsing): only "7" and "007" are known users."""
    m = fake_strings.movie_ids[4]
    csv = tmp_path / "in.csv"
    csv.write_text(f'customer_id,sku\n007,{m}\n7,{m}\n" 7",{m}\n07,{m}\n')
    code, err = run(run_cli, fake_strings, csv, tmp_path / "out.parquet")
    assert code == 0, err
    got = pq.read_table(tmp_path / "out.parquet")
    assert got.column("customer_id").to_pylist() == ["007", "7", " 7", "07"]
    assert got.column("cold_start").to_pylist() == [False, False, True, True]
    expected, _ = fake_strings.expected(["007", "7", " 7", "07"], [m] * 4)
    np.testing.assert_allclose(got.column("predicted_rating").to_numpy(), expected, atol=1e-5)


def test_integer_and_dictionary_columns_read_as_string_ids(
    fake_mixed, run_cli, tmp_path: Path
) -> None:
    """Users are integers, movies strings: an int32 user column and a dictionary-encoded
    movie column are taken; a string model reads an integer column as its decimal text."""
    table = pairs_table(fake_mixed, 120, seed=3)
    table = table.set_column(1, "member", pc.cast(table.column("member"), pa.int32()))
    table = table.set_column(2, "sku", pc.dictionary_encode(table.column("sku")))
    inp = write_table(tmp_path / "in.parquet", table)
    code, err = run(run_cli, fake_mixed, inp, tmp_path / "out.parquet")
    assert code == 0, err
    got = pq.read_table(tmp_path / "out.parquet")
    assert got.schema.field("member").type == pa.int64()
    assert got.schema.field("sku").type == pa.string()
    assert got.column("sku").to_pylist() == table.column("sku").to_pylist()
    # movie "42" of the mapping, given as the integer 42 in a string-movie model
    assert "42" in fake_mixed.movie_ids.tolist()
    ints = write_table(
        tmp_path / "ints.parquet", {"member": fake_mixed.user_ids[:2], "sku": [42, 42]}
    )
    code, err = run(run_cli, fake_mixed, ints, tmp_path / "ints_out.parquet")
    assert code == 0, err
    out = pq.read_table(tmp_path / "ints_out.parquet")
    assert out.column("sku").to_pylist() == ["42", "42"]
    assert out.column("cold_start").to_pylist() == [False, False]


@pytest.mark.parametrize("policy", ["fallback", "skip", "error"])
def test_unknown_string_ids_follow_the_policy_and_are_shown_quoted(
    fake_strings, run_cli, tmp_path: Path, policy: str
) -> None:
    table = pairs_table(fake_strings, 200, seed=4)
    inp = write_table(tmp_path / "in.parquet", table)
    out = tmp_path / "out.parquet"
    code, err = run(run_cli, fake_strings, inp, out, "--unknown", policy, "--batch-size", "50")
    users, movies = table.column("customer_id").to_pylist(), table.column("sku").to_pylist()
    bad = [
        u not in fake_strings.user_ids or m not in fake_strings.movie_ids
        for u, m in zip(users, movies, strict=True)
    ]
    first_bad_user = next(u for u in users if u in UNKNOWN_USERS)
    if policy == "error":
        assert code == 2 and not out.exists()
        line = err.strip().splitlines()[-1]
        assert f"{sum(bad)} of 200 rows have IDs missing" in line
        assert repr(first_bad_user) in line and f"first at row {bad.index(True)}" in line
        return
    assert code == 0, err
    manifest = json.loads((tmp_path / "out.parquet.manifest.json").read_text())
    unknown = manifest["unknown"]
    assert unknown["rows_with_unknown_id"] == sum(bad)
    assert unknown["distinct_unknown_users"] == len({u for u in users if u in UNKNOWN_USERS})
    assert unknown["first_unknown_users"][0] == first_bad_user  # a JSON string
    assert set(unknown["first_unknown_movies"]) <= set(UNKNOWN_MOVIES)
    got = pq.read_table(out)
    assert got.num_rows == (200 if policy == "fallback" else 200 - sum(bad))
    if policy == "skip":
        assert got.column("note").to_pylist() == [f"row-{i}" for i in range(200) if not bad[i]]


@pytest.mark.parametrize(
    ("values", "row", "what"),
    [
        (["c-00100", None, "x"], 1, "got a null"),
        (["c-00100", "x", ""], 2, "got an empty string"),
    ],
)
def test_null_and_empty_string_ids_name_file_column_and_row(
    fake_strings, run_cli, tmp_path: Path, values: list, row: int, what: str
) -> None:
    n = 70_000  # the bad value sits in the second block of 65,536 rows
    users = pa.array(["c-00100"] * (n - 3) + values, pa.string())
    inp = write_table(tmp_path / "in.parquet", {"customer_id": users, "sku": ["42"] * n})
    out = tmp_path / "out.parquet"
    code, err = run(run_cli, fake_strings, inp, out)
    assert code == 2 and not out.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0] == (
        f"Error: {inp}: column 'customer_id' row {n - 3 + row} (0-based data row): "
        f"expected a string user ID, {what}" + (" (missing) value" if "null" in what else "")
    )


def test_a_float_column_is_refused_for_string_ids(fake_strings, run_cli, tmp_path: Path) -> None:
    inp = write_table(tmp_path / "in.parquet", {"customer_id": [1.0, 2.0], "sku": ["42", "ü"]})
    code, err = run(run_cli, fake_strings, inp, tmp_path / "out.parquet")
    assert code == 2
    assert "column 'customer_id': expected string user IDs, but the column has type double" in err


def test_columns_default_to_the_models_and_can_be_renamed(
    fake_strings, run_cli, tmp_path: Path
) -> None:
    table = pairs_table(fake_strings, 40, seed=5, unknown=False)
    renamed = table.rename_columns(["note", "who", "what", "rating"])
    inp = write_table(tmp_path / "in.parquet", renamed)
    # the model's columns are the default: a file without them gets one clear line
    code, err = run(run_cli, fake_strings, inp, tmp_path / "out.parquet")
    assert code == 2
    assert "no column 'customer_id'; columns found: note, who, what, rating" in err
    code, err = run(
        run_cli,
        fake_strings,
        inp,
        tmp_path / "out.parquet",
        "--user-col",
        "who",
        "--movie-col",
        "what",
        "--top-k",
        "2",
    )
    assert code == 0, err
    assert pq.read_table(tmp_path / "out.parquet").column_names[:3] == ["note", "who", "what"]
    top = pq.read_table(tmp_path / "out.topk.parquet")
    assert top.column_names == ["who", "rank", "what", "predicted_rating", "score", "cold_start"]
    # one given column equal to the model's other one
    code, err = run(run_cli, fake_strings, inp, tmp_path / "x.parquet", "--user-col", "sku")
    assert code == 2 and "--user-col and --movie-col are both 'sku'" in err


def test_top_k_matches_the_documented_order(fake_strings, tmp_path: Path) -> None:
    """Random pairs with unknown IDs, repeats and twin movies (exact ties), in blocks of
    97 rows: the top-k table equals the order computed in Python from the scorer's scores."""
    fake = fake_strings
    rng = np.random.default_rng(6)
    users = side_ids(fake, "user", True)
    movies = side_ids(fake, "movie", True)
    u = [users[i] for i in rng.integers(0, len(users), 400)]
    m = [movies[i] for i in rng.integers(0, len(movies), 400)]
    inp = write_table(tmp_path / "in.parquet", {"customer_id": u, "sku": m})
    manifest = score(
        ScoreConfig.build(
            inp, tmp_path / "out.parquet", artifacts=fake.folder, top_k=6, batch_size=97, quiet=True
        )
    )
    top = pq.read_table(tmp_path / "out.topk.parquet")
    arts = load_artifacts(fake.model_path, fake.mapping_path)
    got = list(
        zip(*(top.column(c).to_pylist() for c in ("customer_id", "rank", "sku")), strict=True)
    )
    assert got == reference_top_k(arts, u, m, 6)
    assert manifest["top_k"]["users"] == len(set(u))


def test_top_k_puts_unknown_string_ids_after_known_ones(fake_strings, tmp_path: Path) -> None:
    """Users the model knows by code point ("007" < "Ω"), then cold-start users by code
    point; a known user's unknown movies all tie at its fallback mean, and sort by code
    point ("42.0" < "tt9999999" < "Ü")."""
    u = ["zz-b", "Ω", "Ω", "Ω", "zz-a", "007", "Ω"]
    m = ["42", "tt9999999", "Ü", "42.0", "42", "42", "Ü"]
    inp = write_table(tmp_path / "in.parquet", {"customer_id": u, "sku": m})
    score(
        ScoreConfig.build(
            inp, tmp_path / "out.parquet", artifacts=fake_strings.folder, top_k=3, quiet=True
        )
    )
    top = pq.read_table(tmp_path / "out.topk.parquet")
    got = list(
        zip(*(top.column(c).to_pylist() for c in ("customer_id", "rank", "sku")), strict=True)
    )
    assert got == [
        ("007", 1, "42"),
        ("Ω", 1, "42.0"),
        ("Ω", 2, "tt9999999"),
        ("Ω", 3, "Ü"),
        ("zz-a", 1, "42"),
        ("zz-b", 1, "42"),
    ]
    assert top.column("cold_start").to_pylist() == [False, True, True, True, True, True]


# --- catalog mode ---------------------------------------------------------------------------


@pytest.mark.parametrize("use_catalog", [True, False])
def test_catalog_with_exclusions_matches_brute_force(
    any_fake_strings, tmp_path: Path, use_catalog: bool
) -> None:
    fake = any_fake_strings
    user_col, movie_col = fake.columns
    users = side_ids(fake, "user", True)
    rng = np.random.default_rng(8)
    chosen = [users[i] for i in rng.integers(0, len(users), 14)]
    ex_users = [users[i] for i in rng.integers(0, len(users), 80)]
    movies = side_ids(fake, "movie", True)
    ex_movies = [movies[i] for i in rng.integers(0, len(movies), 80)]
    users_path = write_table(tmp_path / "users.csv", {user_col: arrow_ids(chosen)})
    ex_path = write_table(
        tmp_path / "seen.parquet", {user_col: arrow_ids(ex_users), movie_col: arrow_ids(ex_movies)}
    )
    artifacts = fake.folder
    if not use_catalog:  # the same export without catalog.onnx
        artifacts = tmp_path / "no_catalog"
        artifacts.mkdir()
        for name in (contract.MODEL_FILE, contract.MAPPING_FILE):
            (artifacts / name).write_bytes((fake.folder / name).read_bytes())
    out = tmp_path / "top.parquet"
    manifest = score(
        ScoreConfig.build(
            users_path,
            out,
            artifacts=artifacts,
            all_movies=True,
            exclude=ex_path,
            top_k=4,
            batch_size=40,
            titles=True,
            quiet=True,
        )
    )
    top = pq.read_table(out)
    assert top.column_names == [
        user_col,
        "rank",
        movie_col,
        "predicted_rating",
        "score",
        "cold_start",
        "title",
    ]
    for col, side in ((user_col, 0), (movie_col, 1)):
        want = pa.string() if fake.id_types[side] == "string" else pa.int64()
        assert top.schema.field(col).type == want
    arts = load_artifacts(fake.model_path, fake.mapping_path)
    # CSV read the user IDs as text: an integer-typed side reads them back as integers
    if fake.id_types[0] == "int":
        chosen = [int(v) for v in chosen]
    want = reference_catalog(arts, chosen, set(zip(ex_users, ex_movies, strict=True)), 4)
    got = list(
        zip(
            *(top.column(c).to_pylist() for c in (user_col, "rank", movie_col, "cold_start")),
            strict=True,
        )
    )
    assert got == want
    assert top.column("title").to_pylist() == [f"Movie {m} (1999)" for _, _, m, _ in want]
    graph = fake.folder / contract.CATALOG_FILE
    assert manifest["catalog_graph"] == (str(graph) if use_catalog and graph.exists() else None)
    unknown = [u for u in dict.fromkeys(chosen) if u not in fake.user_ids.tolist()]
    assert manifest["users"]["first_unknown"] == unknown[:5]


def test_catalog_unknown_users_error_names_them_quoted(
    fake_strings, run_cli, tmp_path: Path
) -> None:
    users = write_table(tmp_path / "users.parquet", {"customer_id": ["007", "zz-new", "7 "]})
    code, err = run(
        run_cli, fake_strings, users, tmp_path / "top.parquet", "--all-movies", "--unknown", "error"
    )
    assert code == 2
    assert (
        "2 of 3 distinct users are missing from the ID mapping (2 distinct, first: 'zz-new', '7 ')"
        in err
    )


# --- the Python API -------------------------------------------------------------------------


def test_predict_and_recommend_take_and_give_string_ids(
    fake_strings, run_cli, tmp_path: Path
) -> None:
    fake = fake_strings
    model = load_model(fake.folder, batch_size=32)
    table = pairs_table(fake, 150, seed=9)
    inp = write_table(tmp_path / "in.parquet", table)
    code, err = run(run_cli, fake, inp, tmp_path / "out.parquet", "--batch-size", "32")
    assert code == 0, err
    written = pq.read_table(tmp_path / "out.parquet")
    assert model.predict(table).equals(written)
    frame = model.predict(table.to_pandas())
    assert frame.customer_id.tolist() == table.column("customer_id").to_pylist()
    np.testing.assert_array_equal(
        frame.predicted_rating.to_numpy(), written.column("predicted_rating").to_numpy()
    )
    # ID lists of str, Arrow arrays and pandas Series for recommend; strings come back
    users = ["Ω", "007", "zz-new", "007"]
    seen = pd.DataFrame({"customer_id": ["007", "Ω"], "sku": ["42", "ü"]})
    recs = model.recommend(users, k=3, exclude=pa.Table.from_pandas(seen))
    assert recs.column_names[:3] == ["customer_id", "rank", "sku"]
    assert recs.column("customer_id").to_pylist() == ["007"] * 3 + ["Ω"] * 3 + ["zz-new"] * 3
    excluded = set(zip(seen.customer_id, seen.sku, strict=True))
    got = set(
        zip(recs.column("customer_id").to_pylist(), recs.column("sku").to_pylist(), strict=True)
    )
    assert not got & excluded
    assert model.recommend(pa.array(users), k=3, exclude=seen).equals(recs.to_pandas())
    assert model.recommend(pd.Series(users), k=3, exclude=seen).equals(recs.to_pandas())
    arts = model.artifacts
    pred = arts.predict_ids(np.array(["007", "7"]), ["42", "nope"])
    assert pred.cold_start.tolist() == [False, True]
    with pytest.raises(DataError, match="user_ids must hold string user IDs"):
        arts.predict_ids(np.array([1.5]), ["42"])
    with pytest.raises(DataError, match="got an empty string"):
        arts.predict_ids([""], ["42"])


def test_score_config_build_takes_the_models_columns(fake_mixed, tmp_path: Path) -> None:
    table = pairs_table(fake_mixed, 30, seed=10)
    inp = write_table(tmp_path / "in.parquet", table)
    manifest = score(
        ScoreConfig.build(
            inp, tmp_path / "out.parquet", artifacts=fake_mixed.folder, top_k=2, quiet=True
        )
    )
    assert manifest["config"]["job"]["user_col"] == "member"
    assert manifest["config"]["job"]["movie_col"] == "sku"
    top = pq.read_table(tmp_path / "out.topk.parquet")
    assert (
        top.schema.field("member").type == pa.int64()
        and top.schema.field("sku").type == pa.string()
    )
    with pytest.raises(UsageError, match="user_col and movie_col are both 'x'"):
        ScoreConfig.build(inp, tmp_path / "o.parquet", user_col="x", movie_col="x")


# --- any string, round trip -----------------------------------------------------------------

#: Any text (no surrogates), and text that looks like integers: "7" and "007" are two IDs.
ID_TEXT = st.text(min_size=1, max_size=8)
INTEGER_LIKE = st.sampled_from(["7", "007", "-7", "+7", "7.0", " 7", "0", "٧"])
KEYS = st.lists(st.one_of(ID_TEXT, INTEGER_LIKE), min_size=1, max_size=10, unique=True)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(users=KEYS, movies=KEYS, compact=st.booleans(), data=st.data())
def test_any_string_ids_round_trip(
    tmp_path_factory, users: list, movies: list, compact: bool, data
) -> None:
    """A model whose IDs are arbitrary strings (under user_id / movie_id: the mapping has
    id_types but no columns): every ID comes back exactly as given, matched exactly."""
    folder = tmp_path_factory.mktemp("any")
    fake = build_fake_artifacts(
        folder,
        id_types=("string", "string"),
        user_keys=users,
        movie_keys=movies,
        compact=compact,
    )
    n = data.draw(st.integers(1, 25), label="n")
    u = data.draw(
        st.lists(st.one_of(st.sampled_from(users), ID_TEXT, INTEGER_LIKE), min_size=n, max_size=n)
    )
    m = data.draw(
        st.lists(st.one_of(st.sampled_from(movies), ID_TEXT, INTEGER_LIKE), min_size=n, max_size=n)
    )
    model = load_model(folder, threads=1)
    assert model.columns == {"user": "user_id", "movie": "movie_id"}
    out = model.predict(pa.table({"user_id": u, "movie_id": m}))
    assert out.column("user_id").to_pylist() == u and out.column("movie_id").to_pylist() == m
    expected, cold = fake.expected(u, m)
    assert out.column("cold_start").to_pylist() == cold.tolist()
    assert cold.tolist() == [not (a in users and b in movies) for a, b in zip(u, m, strict=True)]
    np.testing.assert_allclose(out.column("predicted_rating").to_numpy(), expected, atol=1e-5)
    recs = model.recommend(u, k=2)
    known_first = sorted({x for x in u if x in users}) + sorted({x for x in u if x not in users})
    assert list(dict.fromkeys(recs.column("user_id").to_pylist())) == known_first
    assert set(recs.column("movie_id").to_pylist()) <= set(movies)
