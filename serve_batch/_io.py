"""Streaming Parquet/CSV reading and writing, and all-or-nothing output files.

Input is read as record batches and output written batch by batch, so memory does
not grow with the number of rows. Every output goes to a hidden temporary file in
the target's folder and is renamed into place only when the whole run succeeded, so
a failed or killed run never leaves a half-written OUTPUT (a previous one survives).
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from movierec.serve_batch._arrow import from_numpy
from movierec.serve_batch._id_schema import IdSchema
from movierec.serve_batch._ids import convert_ids
from movierec.serve_batch._idvalues import is_text
from movierec.serve_batch.errors import DataError, UsageError

#: Supported file name endings -> format (checked longest first).
FORMATS = {".csv.gz": "csv.gz", ".parquet": "parquet", ".csv": "csv"}
#: CSV bytes parsed per record batch (pyarrow batches CSV by bytes, not rows): about
#: this many bytes per ``--batch-size`` row, within the bounds below.
CSV_BYTES_PER_ROW = 32
CSV_BLOCK_BOUNDS = (16 << 10, 64 << 20)


def detect_format(path: Path, role: str) -> str:
    """Format from the file name ending; ``UsageError`` listing the supported ones."""
    name = Path(path).name.lower()
    for ending, fmt in FORMATS.items():
        if name.endswith(ending) and len(name) > len(ending):
            return fmt
    raise UsageError(
        f"{path}: unsupported {role} file type; use one of {', '.join(sorted(FORMATS))}",
        params=role_params(role),
    )


def role_params(role: str) -> tuple[str, ...]:
    """The parameters a role names, e.g. ``"{input}"`` (the CLI shows ``INPUT``)."""
    return tuple(re.findall(r"\{(\w+)\}", role))


def insert_before_extension(path: Path, tag: str) -> Path:
    """``out.csv.gz`` + ``topk`` -> ``out.topk.csv.gz``."""
    path = Path(path)
    fmt = detect_format(path, "output")
    ending = next(e for e, f in FORMATS.items() if f == fmt)
    stem = path.name[: -len(ending)]
    return path.with_name(f"{stem}.{tag}{path.name[-len(ending) :]}")


def check_input_file(path: Path, role: str) -> None:
    """Clear errors for a missing, non-regular or 0-byte input."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: {role} file not found", params=role_params(role))
    if not path.is_file():
        raise DataError(f"{path}: {role} is not a regular file", params=role_params(role))
    if path.stat().st_size == 0:
        raise DataError(f"{path}: {role} file is empty (0 bytes)", params=role_params(role))


def check_distinct_paths(inputs: list[Path | None], outputs: list[Path | None]) -> None:
    """Refuse writing onto an input, two outputs onto one path, or an output inside an
    input folder (or the reverse)."""
    read = {Path(p).resolve() for p in inputs if p is not None}
    written: set[Path] = set()
    for p in outputs:
        if p is None:
            continue
        key = Path(p).resolve()
        if key in read:
            raise UsageError(f"{p}: an output path cannot be one of the input files")
        if key in written:
            raise UsageError(f"{p}: two outputs would be written to this one path")
        if any(a in key.parents or key in a.parents for a in read):
            raise UsageError(f"{p}: an output cannot be inside an input folder, or hold one")
        written.add(key)


@dataclass
class TableReader:
    """An opened input: its schema, row count when known, and a batch iterator."""

    path: Path
    schema: pa.Schema
    num_rows: int | None
    _batches: Iterator[pa.RecordBatch]

    def iter_batches(self) -> Iterator[pa.RecordBatch]:
        """Yield record batches; Arrow read errors become ``DataError`` naming the file."""
        try:
            yield from self._batches
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError, EOFError) as exc:
            raise DataError(f"{self.path}: cannot read the file ({_first_line(exc)})") from exc


def open_table(
    path: Path,
    fmt: str,
    *,
    columns: Sequence[str],
    batch_size: int,
    only_columns: bool = False,
) -> TableReader:
    """Open ``path`` for streaming; ``columns`` must exist (``DataError`` lists what does).

    ``columns`` are the ID columns: CSV reads them as text so that ``convert_id_column``
    can name a bad row. With ``only_columns`` the other columns are not read at all.
    """
    path = Path(path)
    try:
        if fmt == "parquet":
            pf = pq.ParquetFile(path)
            schema = pf.schema_arrow
            _check_columns(path, schema, columns)
            batches = pf.iter_batches(
                batch_size=batch_size, columns=list(columns) if only_columns else None
            )
            if only_columns:
                schema = pa.schema([schema.field(c) for c in columns])
            return TableReader(path, schema, pf.metadata.num_rows, batches)
        source = pa.input_stream(str(path), compression="gzip" if fmt == "csv.gz" else None)
        convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in columns})
        if only_columns:
            probe = pacsv.open_csv(
                source, read_options=pacsv.ReadOptions(block_size=1 << 16)
            ).schema
            source.close()
            _check_columns(path, probe, columns)
            convert.include_columns = list(columns)
            source = pa.input_stream(str(path), compression="gzip" if fmt == "csv.gz" else None)
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=_csv_block_bytes(batch_size)),
            convert_options=convert,
        )
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError, EOFError) as exc:
        what = "Parquet" if fmt == "parquet" else "CSV"
        raise DataError(f"{path}: not a readable {what} file ({_first_line(exc)})") from exc
    _check_columns(path, reader.schema, columns)
    return TableReader(path, reader.schema, None, iter(reader))


def _csv_block_bytes(batch_size: int) -> int:
    low, high = CSV_BLOCK_BOUNDS
    return int(min(max(batch_size * CSV_BYTES_PER_ROW, low), high))


def _check_columns(path: Path, schema: pa.Schema, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise DataError(
            f"{path}: no column {missing[0]!r}; columns found: {', '.join(schema.names)} "
            "(choose the ID columns with {user_col} / {movie_col})",
            params=("user_col", "movie_col"),
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: Rows per Parquet row group: batches are gathered up to this many before they are
#: encoded (one row group per small batch makes files slower to write and to read).
ROW_GROUP_ROWS = 1 << 20


def begin_csv(sink: pa.NativeFile, names: Sequence[str]) -> pacsv.WriteOptions:
    """The write options of a CSV file whose header is plain (``user_id,movie_id,...``;
    quoted only where a name holds a comma, a quote or a line break).

    pyarrow >= 22 writes such a header itself (``quoting_header="none"``). Older
    versions always quote header names, so there the header line is written to ``sink``
    here and pyarrow writes only the rows: the same bytes on every pyarrow version.
    """
    if any(set(n) & set(',"\r\n') for n in names):
        return pacsv.WriteOptions()  # every version quotes each header name
    if _has_quoting_header():
        return pacsv.WriteOptions(quoting_header="none")
    sink.write((",".join(names) + "\n").encode())
    return pacsv.WriteOptions(include_header=False)


def _has_quoting_header() -> bool:
    return hasattr(pacsv.WriteOptions(), "quoting_header")


class TableWriter:
    """Write record batches of a declared schema to Parquet, CSV or gzip CSV.

    Parquet: row groups of about ``ROW_GROUP_ROWS`` rows, snappy, dictionary-encoded
    columns except those in ``plain_columns`` (high-cardinality floats such as
    predictions, where a dictionary costs time and saves nothing).
    """

    def __init__(
        self, path: Path, fmt: str, schema: pa.Schema, plain_columns: Sequence[str] = ()
    ) -> None:
        self.schema = schema
        self.rows = 0
        self._sink = None
        self._parquet = fmt == "parquet"
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        if self._parquet:
            dictionary = [n for n in schema.names if n not in plain_columns]
            self._writer = pq.ParquetWriter(
                str(path),
                schema,
                compression="snappy",
                use_dictionary=dictionary if plain_columns else True,
            )
        else:
            if fmt == "csv.gz":
                self._sink = pa.CompressedOutputStream(str(path), "gzip")
            else:
                self._sink = pa.OSFile(str(path), "wb")
            options = begin_csv(self._sink, schema.names)
            self._writer = pacsv.CSVWriter(self._sink, schema, write_options=options)

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        self.rows += batch.num_rows
        if self._parquet:
            self._pending.extend(batch.to_batches() if isinstance(batch, pa.Table) else [batch])
            self._pending_rows += batch.num_rows
            if self._pending_rows >= ROW_GROUP_ROWS:
                self._flush()
        elif isinstance(batch, pa.Table):
            self._writer.write_table(batch)
        else:
            self._writer.write_batch(batch)

    def _flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending, schema=self.schema)
            self._pending, self._pending_rows = [], 0
            self._writer.write_table(table, row_group_size=max(table.num_rows, 1))

    def close(self) -> None:
        try:
            if self._parquet:
                self._flush()
        finally:
            try:
                self._writer.close()
            finally:
                if self._sink is not None:
                    self._sink.close()


class BackgroundWriter:
    """Hand batches to a ``TableWriter`` on a thread of its own, so that encoding and
    writing one batch overlaps scoring the next (both release the GIL).

    At most ``depth`` batches wait. An error of the writer thread is raised by the next
    :meth:`write` or by :meth:`close`; :meth:`abort` stops it without writing the rest.
    """

    _DONE = object()

    def __init__(self, writer: TableWriter, depth: int = 2) -> None:
        self._writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="movierec-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is self._DONE:
                return
            if self._error is None and not self._stop:
                try:
                    self._writer.write(batch)
                except BaseException as exc:  # re-raised in the caller's thread
                    self._error = exc

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        self._raise_error()
        self._queue.put(batch)

    def close(self) -> None:
        """Wait until every batch is written; raise the writer thread's error if any."""
        self._queue.put(self._DONE)
        self._thread.join()
        self._raise_error()

    def abort(self) -> None:
        self._stop = True
        with contextlib.suppress(queue.Empty):
            while True:  # drop what waits, then stop the thread
                self._queue.get_nowait()
        self._queue.put(self._DONE)
        self._thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error


class Prefetch:
    """Iterate ``items`` on a thread of its own, up to ``depth`` items ahead, so that
    reading and decoding the next batch overlaps scoring this one (Arrow releases the
    GIL). An error of the producer is raised where the consumer reaches it; ``close``
    stops the producer early."""

    _END = object()

    def __init__(self, items: Iterator, depth: int = 2) -> None:
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, name="movierec-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for item in self._items:
                if not self._put((item, None)):
                    return
        except BaseException as exc:  # re-raised in the consumer's thread
            self._put((None, exc))
            return
        self._put((self._END, None))

    def _put(self, entry: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Prefetch:
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        item, error = self._queue.get()
        if error is not None:
            self._done = True
            raise error
        if item is self._END:
            self._done = True
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join()


# --- inputs: a file, a folder of Parquet files, or a table in memory --------------------


@dataclass(frozen=True)
class InputFile:
    path: Path
    fmt: str
    rows: int | None  # None: a CSV file (unknown until read)


@dataclass(frozen=True)
class Block:
    """Rows of an input, ID columns converted to the model's ID types (int64 or string),
    and the input row of the first."""

    table: pa.RecordBatch | pa.Table
    first_row: int


@dataclass(frozen=True)
class FilePart:
    """Some rows of one file: the whole file, or a run of its Parquet row groups."""

    path: Path
    fmt: str
    row_groups: tuple[int, ...] | None  # None: the whole file
    file_row: int  # row in the file of the part's first row (for error messages)
    input_row: int  # row in the whole input of the part's first row
    rows: int | None


@dataclass(frozen=True)
class TablePart:
    """A table held in memory (the Python API's input)."""

    table: pa.Table
    label: str
    input_row: int = 0

    @property
    def rows(self) -> int:
        return self.table.num_rows


@dataclass(frozen=True)
class Input:
    """An opened input: its columns, its parts in order, and its row count if known."""

    label: str
    schema: pa.Schema
    parts: tuple[FilePart | TablePart, ...]
    files: tuple[InputFile, ...] = ()

    @property
    def num_rows(self) -> int | None:
        rows = [p.rows for p in self.parts]
        return None if any(r is None for r in rows) else sum(rows)

    def locate(self, row: int | None) -> str:
        """For a folder: which file holds input row ``row`` (empty otherwise)."""
        if row is None or len(self.files) < 2:
            return ""
        start = 0
        for f in self.files:
            if f.rows is not None and row < start + f.rows:
                return f" (that is {f.path} row {row - start})"
            start += f.rows or 0
        return ""


def input_files(path: Path, role: str) -> list[InputFile]:
    """A file (Parquet or CSV, by its ending), or a folder's ``*.parquet`` files (below it
    too, hidden and ``_``-prefixed names skipped) in name order."""
    path = Path(path)
    if not path.is_dir():
        fmt = detect_format(path, role)
        check_input_file(path, role)
        return [InputFile(path, fmt, _parquet_rows(path) if fmt == "parquet" else None)]
    found = sorted(
        p
        for p in path.rglob("*.parquet")
        if p.is_file() and not any(s.startswith((".", "_")) for s in p.relative_to(path).parts)
    )
    if not found:
        raise DataError(f"{path}: {role} folder holds no .parquet files", params=role_params(role))
    return [InputFile(p, "parquet", _parquet_rows(p)) for p in found]


def open_input(
    path: Path,
    role: str,
    columns: Sequence[str],
    *,
    part_rows: int | None = None,
    only_columns: bool = False,
) -> Input:
    """Open a file or folder INPUT: check that ``columns`` exist and that every file of a
    folder has the first one's columns and types (ID columns may differ: they become the
    model's ID type). ``part_rows``: cut Parquet files into runs of row groups of about
    that many rows (one per worker task); None: one part per file."""
    files = input_files(path, role)
    first = files[0]
    reader = open_table(first.path, first.fmt, columns=columns, batch_size=1024)
    schema = reader.schema
    if only_columns:
        schema = pa.schema([schema.field(c) for c in columns])
    else:
        _check_same_schema(files, schema, columns)
    parts: list[FilePart] = []
    input_row = 0
    for f in files:
        if f.fmt != "parquet" or part_rows is None:
            parts.append(FilePart(f.path, f.fmt, None, 0, input_row, f.rows))
        else:
            parts += _row_group_parts(f, part_rows, input_row)
        input_row += f.rows or 0
    return Input(str(path), schema, tuple(parts), tuple(files))


def table_input(table: pa.Table, label: str, columns: Sequence[str]) -> Input:
    """An in-memory table as an input (``label`` names it in error messages)."""
    _check_columns(Path(label), table.schema, columns)
    return Input(label, table.schema, (TablePart(table, label),))


def read_blocks(
    part: FilePart | TablePart,
    ids: IdSchema,
    sides: Sequence[str],
    batch_size: int,
    *,
    only_columns: bool = False,
) -> Iterator[Block]:
    """The part's rows in blocks of at most ``batch_size``, each ID column of ``sides``
    ("user", "movie"; named and typed by ``ids``) checked and converted to the model's ID
    type; errors name the file (or table), the column and the row."""
    columns = [ids.column_of(side) for side in sides]
    if isinstance(part, TablePart):
        table = part.table.select(list(columns)) if only_columns else part.table
        source, file_row = part.label, part.input_row
        batches: Iterator[pa.RecordBatch] = iter(
            table.combine_chunks().to_batches(max_chunksize=batch_size)
        )
    else:
        source, file_row = str(part.path), part.file_row
        if part.row_groups is None:
            reader = open_table(
                part.path,
                part.fmt,
                columns=columns,
                batch_size=batch_size,
                only_columns=only_columns,
            )
        else:
            pf = pq.ParquetFile(part.path)
            batches = pf.iter_batches(
                batch_size=batch_size,
                row_groups=list(part.row_groups),
                columns=list(columns) if only_columns else None,
            )
            reader = TableReader(part.path, pf.schema_arrow, part.rows, batches)
        batches = reader.iter_batches()
    done = 0
    for batch in batches:
        n = batch.num_rows
        if n == 0:
            continue
        arrays, fields = batch.columns, list(batch.schema)
        for name, side in zip(columns, sides, strict=True):
            i = batch.schema.get_field_index(name)
            values = convert_ids(
                arrays[i],
                ids.type_of(side),
                source=source,
                name=name,
                kind=side,
                row_offset=file_row + done,
            )
            arrays[i] = values if is_text(values) else _int64_column(arrays[i], values)
            fields[i] = ids.field(side)
        yield Block(
            pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)), part.input_row + done
        )
        done += n


def _int64_column(original: pa.Array, values) -> pa.Array:
    """``values`` as an Arrow int64 column; the original itself where it already is one."""
    if original.type == pa.int64() and original.null_count == 0:
        return original
    return from_numpy(values, "int64")


def _row_group_parts(f: InputFile, part_rows: int, input_row: int) -> list[FilePart]:
    meta = pq.ParquetFile(f.path).metadata
    sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    parts, groups = [], []
    start = rows = 0  # first row in the file and rows of the part being formed
    for g, n in enumerate(sizes):
        if n:
            groups.append(g)
            rows += n
        if groups and (rows >= part_rows or g == len(sizes) - 1):
            parts.append(FilePart(f.path, "parquet", tuple(groups), start, input_row + start, rows))
            start, groups, rows = start + rows, [], 0
    return parts


def _parquet_rows(path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from exc


def _check_same_schema(files: list[InputFile], schema: pa.Schema, ids: Sequence[str]) -> None:
    want = [(f.name, None if f.name in ids else f.type) for f in schema]
    for f in files[1:]:
        got = [
            (x.name, None if x.name in ids else x.type) for x in pq.ParquetFile(f.path).schema_arrow
        ]
        if got != want:
            diff = next(
                (f"{a} vs {b}" for a, b in zip(want, got, strict=False) if a != b),
                f"{len(want)} vs {len(got)} columns",
            )
            raise DataError(
                f"{f.path}: its columns differ from {files[0].path} ({diff}); every Parquet "
                "file of a folder needs the same columns and types"
            )
