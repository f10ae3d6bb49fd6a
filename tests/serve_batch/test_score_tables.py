"""What every top-k table and manifest holds: the score column the ranking sorts by,
titles, empty inputs, named rates; and the scorer's second look at a mid-export mapping."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from movierec.serve_batch import ScoreConfig, contract, load_artifacts, score_catalog, score_file
from movierec.serve_batch._id_schema import IdSchema
from movierec.serve_batch._topk import TOPK_SCHEMA, TitleLookup, topk_schema
from tests.support import read_table, write_table

FORMATS = ["parquet", "csv"]
TOPK = ["user_id", "rank", "movie_id", "predicted_rating", "score", "cold_start"]


def catalog_config(fake, users: Path, out: Path, **kw) -> ScoreConfig:
    return ScoreConfig.build(
        input=users, output=out, artifacts=fake.folder, all_movies=True, quiet=True, **kw
    )


def test_catalog_score_is_what_ranks_and_differs_from_the_rating(fake_ranked, tmp_path) -> None:
    fake = fake_ranked
    users = write_table(tmp_path / "users.parquet", {"user_id": fake.user_ids})
    out = tmp_path / "top.parquet"
    score_catalog(catalog_config(fake, users, out, top_k=5))
    table = read_table(out).to_pandas()
    assert list(table.columns) == TOPK
    want = fake.expected_rank(table.user_id.to_numpy(), table.movie_id.to_numpy())
    np.testing.assert_allclose(table.score.to_numpy(), want, atol=1e-5)
    for _, rows in table.groupby("user_id"):
        assert (np.diff(rows.score.to_numpy()) <= 0).all()  # rank 1 has the highest score
    # the ranking head makes the score differ from predicted_rating (why the column exists)
    assert not np.allclose(table.score, table.predicted_rating)


def test_without_a_ranking_head_the_score_is_the_rating(fake, tmp_path: Path) -> None:
    users = write_table(tmp_path / "users.parquet", {"user_id": fake.user_ids[:4]})
    out = tmp_path / "top.parquet"
    score_catalog(catalog_config(fake, users, out, top_k=3))
    table = read_table(out)
    assert table.column("score").equals(table.column("predicted_rating"))


@pytest.mark.parametrize("mode", ["pairs", "catalog"])
def test_titles_come_from_the_mapping(fake, make_pairs, tmp_path: Path, mode: str) -> None:
    titles = json.loads((fake.folder / contract.MAPPING_FILE).read_text())["titles"]
    if mode == "pairs":
        inp = write_table(tmp_path / "in.parquet", make_pairs(200))
        score_file(
            ScoreConfig.build(
                input=inp,
                output=tmp_path / "o.parquet",
                artifacts=fake.folder,
                top_k=3,
                titles=True,
                quiet=True,
            )
        )
        out = tmp_path / "o.topk.parquet"
    else:
        inp = write_table(tmp_path / "users.csv", {"user_id": fake.user_ids[:3]})
        out = tmp_path / "top.csv"
        score_catalog(catalog_config(fake, inp, out, top_k=3, titles=True))
    table = read_table(out).to_pandas()
    assert list(table.columns) == [*TOPK, "title"]
    assert table.title.tolist() == [titles[str(m)] for m in table.movie_id]


def test_title_lookup_leaves_null_where_the_data_had_none() -> None:
    lookup = TitleLookup({7: "Seven (1995)", 3: "Three"})
    got = lookup.lookup(np.array([3, 5, 7, 99, 3]))
    assert got.to_pylist() == ["Three", None, "Seven (1995)", None, "Three"]
    assert TitleLookup({}).lookup(np.array([1, 2])).to_pylist() == [None, None]
    by_text = TitleLookup({"tt7": "Seven", "007": "Bond", "7": "Seven again"}, "string")
    got = by_text.lookup(pa.array(["7", "007", "07", "tt7", "TT7"]))
    assert got.to_pylist() == ["Seven again", "Bond", None, "Seven", None]
    assert TitleLookup({}, "string").lookup(pa.array(["a"])).to_pylist() == [None]


def test_titles_need_a_top_k_table_in_pairs_mode(fake, make_pairs, tmp_path: Path) -> None:
    from movierec.serve_batch.errors import UsageError

    inp = write_table(tmp_path / "in.parquet", make_pairs(5))
    with pytest.raises(UsageError, match="titles .* needs top_k"):
        score_file(
            ScoreConfig.build(
                input=inp, output=tmp_path / "o.parquet", artifacts=fake.folder, titles=True
            )
        )


@pytest.mark.parametrize("fmt", FORMATS)
def test_pairs_input_with_only_a_header_gives_empty_outputs(
    fake, tmp_path: Path, fmt: str, caplog
) -> None:
    empty = pa.table(
        {
            "user_id": pa.array([], pa.int64()),
            "movie_id": pa.array([], pa.int64()),
            "note": pa.array([], pa.string()),
        }
    )
    inp = write_table(tmp_path / f"in.{fmt}", empty)
    out = tmp_path / "out" / f"scores.{fmt}"
    with caplog.at_level(logging.WARNING):
        manifest = score_file(
            ScoreConfig.build(input=inp, output=out, artifacts=fake.folder, top_k=3, titles=True)
        )
    assert "has a header but no rows" in caplog.text
    scores = read_table(out)
    assert scores.num_rows == 0
    assert scores.column_names == ["user_id", "movie_id", "note", "predicted_rating", "cold_start"]
    topk = read_table(out.with_name(f"scores.topk.{fmt}"))
    assert topk.num_rows == 0 and topk.column_names == [*TOPK, "title"]
    assert manifest["rows_read"] == manifest["rows_written"] == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_catalog_users_with_only_a_header_give_an_empty_table(
    fake, tmp_path: Path, fmt: str, caplog
) -> None:
    inp = write_table(tmp_path / f"users.{fmt}", {"user_id": pa.array([], pa.int64())})
    out = tmp_path / f"top.{fmt}"
    with caplog.at_level(logging.WARNING):
        manifest = score_catalog(catalog_config(fake, inp, out, top_k=3))
    assert "has a header but no rows" in caplog.text
    table = read_table(out)
    assert table.num_rows == 0 and table.column_names == TOPK
    if fmt == "parquet":
        assert table.schema.equals(TOPK_SCHEMA)
    assert manifest["users"]["scored"] == 0


def test_empty_users_exit_0_through_the_cli(run_cli, tmp_path: Path) -> None:
    inp = tmp_path / "users.csv"
    inp.write_text("user_id\n")
    code, err = run_cli(inp, tmp_path / "new" / "top.parquet", "--all-movies")
    assert code == 0
    assert err.count("\n") == 1 and "has a header but no rows" in err
    assert read_table(tmp_path / "new" / "top.parquet").num_rows == 0


def test_manifest_rates_name_what_they_count(fake, make_pairs, tmp_path: Path) -> None:
    users = write_table(tmp_path / "users.parquet", {"user_id": fake.user_ids})
    catalog = score_catalog(catalog_config(fake, users, tmp_path / "top.parquet"))
    assert "rows_per_second" not in catalog
    assert catalog["users_per_second"] > 0
    assert catalog["candidate_pairs_per_second"] == pytest.approx(
        catalog["users_per_second"] * len(fake.movie_ids), rel=1e-3
    )
    inp = write_table(tmp_path / "in.parquet", make_pairs(50))
    pairs = score_file(
        ScoreConfig.build(input=inp, output=tmp_path / "o.parquet", artifacts=fake.folder)
    )
    assert "rows_per_second" not in pairs and pairs["pairs_per_second"] > 0


def test_topk_schema_is_the_one_contract() -> None:
    assert tuple(TOPK_SCHEMA.names) == contract.TOPK_COLUMNS
    assert topk_schema(titles=True).names == [*contract.TOPK_COLUMNS, contract.TITLE_COL]
    ids = IdSchema("customer_id", "sku", "int", "string")
    schema = topk_schema(ids, titles=True)
    assert schema.names == ["customer_id", *contract.TOPK_COLUMNS[1:2], "sku"] + [
        *contract.TOPK_COLUMNS[3:],
        contract.TITLE_COL,
    ]
    assert schema.field("customer_id").type == pa.int64()
    assert schema.field("sku").type == pa.string()


def test_a_mapping_replaced_mid_export_is_read_again(fake, tmp_path: Path, monkeypatch) -> None:
    """rec-export renames the new mapping before the new model: a scorer starting between
    the two renames sees a pair that does not match, and looks again."""
    import movierec.serve_batch._artifacts as artifacts_module

    arts = tmp_path / "arts"
    shutil.copytree(fake.folder, arts)
    mapping = arts / contract.MAPPING_FILE
    good = mapping.read_bytes()
    mapping.write_bytes(good.replace(b'"damping": 5.0', b'"damping": 6.0'))  # "the new one"
    waits = []

    def export_finishes(seconds: float) -> None:
        waits.append(seconds)
        mapping.write_bytes(good)  # the model that belongs to it lands

    monkeypatch.setattr(artifacts_module.time, "sleep", export_finishes)
    loaded = load_artifacts(arts / contract.MODEL_FILE, mapping)
    assert waits == [artifacts_module.MISMATCH_RETRY_SECONDS]
    assert len(loaded.users) == len(fake.user_ids)
