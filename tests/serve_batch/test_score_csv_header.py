"""CSV outputs are the same bytes whether pyarrow can write a plain header (>= 22) or not."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from movierec.serve_batch import _io
from movierec.serve_batch._io import TableWriter


def rows_as_pyarrow_writes_them(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    return sink.getvalue().to_pybytes()


def write(path: Path, fmt: str, table: pa.Table) -> bytes:
    writer = TableWriter(path, fmt, table.schema)
    try:
        for batch in table.to_batches(max_chunksize=2):
            writer.write(batch)
    finally:
        writer.close()
    data = path.read_bytes()
    return gzip.decompress(data) if fmt == "csv.gz" else data


TABLE = pa.table(
    {
        "user_id": pa.array([1, 2, 3], pa.int64()),
        "predicted_rating": pa.array([3.25, 1.0000001, 5.0], pa.float32()),
        "cold_start": [True, False, False],
        "note": ["a,b", 'q"x', ""],
    }
)

HEADER = b"user_id,predicted_rating,cold_start,note\n"


@pytest.mark.parametrize("native", [True, False], ids=["quoting_header", "header_by_hand"])
@pytest.mark.parametrize("fmt", ["csv", "csv.gz"])
def test_plain_header_and_pyarrows_rows(native, fmt, tmp_path: Path, monkeypatch) -> None:
    if native and not _io._has_quoting_header():
        pytest.skip(f"pyarrow {pa.__version__} has no quoting_header")
    monkeypatch.setattr(_io, "_has_quoting_header", lambda: native)
    got = write(tmp_path / f"out.{fmt}", fmt, TABLE)
    assert got == HEADER + rows_as_pyarrow_writes_them(TABLE)
    types = pacsv.ConvertOptions(column_types=TABLE.schema, strings_can_be_null=False)
    assert pacsv.read_csv(pa.BufferReader(got), convert_options=types).equals(TABLE)

    empty = write(tmp_path / f"empty.{fmt}", fmt, TABLE.slice(0, 0))
    assert empty == HEADER


@pytest.mark.parametrize("native", [True, False], ids=["quoting_header", "header_by_hand"])
def test_a_name_that_needs_quotes_is_quoted(native, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_io, "_has_quoting_header", lambda: native)
    table = pa.table({"user_id": [1], 'odd,"name"': [2]})
    got = write(tmp_path / "out.csv", "csv", table)
    assert got.splitlines()[0] == b'"user_id","odd,""name"""'
    assert pacsv.read_csv(pa.BufferReader(got)).column_names == table.column_names
