"""The README's "Use from Python" examples run, in order, as written (tiny data)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.synthetic import make_ratings, write_ml100k

README = Path(__file__).resolve().parents[1] / "README.md"


def python_examples(section: str = "Use from Python") -> list[str]:
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_section_has_examples() -> None:
    blocks = python_examples()
    assert len(blocks) >= 4
    joined = "\n".join(blocks)
    for call in ("train(", "export(", "load_model(", ".predict(", ".recommend(", "score("):
        assert call in joined, call


def test_readme_python_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    pytest.importorskip("torch")
    write_ml100k(
        tmp_path / "ml-100k", make_ratings(n_users=60, n_movies=80, n_ratings=3000, seed=4)
    )
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for block in python_examples():
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "k must be at least 1, got 0" in out
    recs, pairs = namespace["recs"], namespace["pairs"]
    assert list(recs.columns) == [
        "user_id",
        "rank",
        "movie_id",
        "predicted_rating",
        "score",
        "cold_start",
    ]
    assert set(recs.user_id) <= set(pairs.user_id) and recs["rank"].max() == 10
    # no movie any user rated, in any part of the split
    from movierec.train.data import load_movielens

    ratings = load_movielens(tmp_path / "ml-100k").ratings
    rated = set(zip(ratings.user_id, ratings.movie_id, strict=True))
    assert not any((u, m) in rated for u, m in zip(recs.user_id, recs.movie_id, strict=True))
    assert (tmp_path / "scores.topk.parquet").is_file()
    assert namespace["manifest"]["rows_written"] == len(pairs)
