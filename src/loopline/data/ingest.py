"""Ingestion: any source of rows (a frame, a CSV or Parquet file of any size, a SQL query)
streamed in batches into one local Parquet file, hashed on the way, in constant memory.

CSV types are inferred from the first block (1 MB), as Arrow does; when a later block does not
fit (a column of integers meets "1.5"), that column is widened and the file read again,
so a large file never fails on a type guessed from its head.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loopline.core.datasets import DatasetVersion
from loopline.core.errors import InvalidInput
from loopline.profiling.fingerprint import TableHasher, canonical_schema, frame_to_arrow
from loopline.services import DataSource, Progress

BATCH_ROWS = 128 * 1024
CSV_BLOCK = 1 << 20  # Arrow reads a fixed number of blocks ahead: the block size bounds memory
SQL_CHUNK = 50_000
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
COMPRESSED = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}

# (done, total or None): bytes of a file, or rows of a query


@dataclass(frozen=True)
class StagedTable:
    path: Path  # a local Parquet file, ours to move
    digest: str
    rows: int
    schema: pa.Schema
    source: str


def stage_frame(frame: pd.DataFrame | pa.Table, target: Path) -> StagedTable:
    table = frame_to_arrow(frame) if isinstance(frame, pd.DataFrame) else frame
    _check_names(table.schema.names, "the frame")
    return _write(iter(table.to_batches(max_chunksize=BATCH_ROWS)), table.schema, target, "a DataFrame")


def stage_file(
    path: str | Path, target: Path, *, encoding: str = "utf-8", progress: Progress | None = None
) -> StagedTable:
    source = Path(path).expanduser()
    if not source.is_file():
        raise InvalidInput(f"{str(path)!r} is not a file")
    suffixes = [s.lower() for s in source.suffixes[-2:]]
    compression = COMPRESSED.get(suffixes[-1]) if suffixes else None
    kind = suffixes[-2] if compression and len(suffixes) == 2 else (suffixes[-1] if suffixes else "")
    if kind in PARQUET_SUFFIXES and not compression:
        return _stage_parquet(source, target, progress)
    if kind in CSV_SUFFIXES:
        delimiter = "\t" if kind == ".tsv" else ","
        return _stage_csv(source, target, compression, delimiter, encoding, progress)
    raise InvalidInput(
        f"{source.name}: cannot tell the format; "
        "name the file *.csv or *.tsv (optionally .gz, .bz2 or .zst) or *.parquet"
    )


def stage_query(query: str, url: str, target: Path, progress: Progress | None = None) -> StagedTable:
    """The rows of `query` on the database at `url` (a SQLAlchemy URL), streamed in chunks."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise InvalidInput(
            "the database URL is not a SQLAlchemy URL (dialect+driver://user@host/db)"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    engine = sa.create_engine(parsed)
    parts = target.with_suffix(".parts")
    parts.mkdir()
    try:
        files: list[Path] = []
        rows = 0
        with engine.connect() as conn:
            try:
                result = conn.execution_options(stream_results=True).execute(sa.text(query))
            except sa.exc.DBAPIError as exc:
                raise InvalidInput(f"the query failed on {shown}: {exc.orig}") from None
            names = list(result.keys())
            _check_names(names, "the query's result")
            # Each chunk keeps the types its values have; the parts are unified at the end,
            # so a column that starts out all NULL or integral still gets its final type.
            for number, chunk in enumerate(result.partitions(SQL_CHUNK)):
                columns = list(zip(*chunk, strict=True))
                table = pa.table({n: pa.array(c) for n, c in zip(names, columns, strict=True)})
                files.append(parts / f"{number:08d}.parquet")
                pq.write_table(table, files[-1])
                rows += len(chunk)
                if progress:
                    progress(rows, None)
        if not files:
            empty = pa.schema([pa.field(n, pa.null()) for n in names])
            return _write(iter([]), empty, target, f"query on {shown}")
        schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")

        def batches() -> Iterator[pa.RecordBatch]:
            for file in files:
                yield from pq.read_table(file).cast(schema).to_batches()

        return _write(batches(), schema, target, f"query on {shown}")
    finally:
        engine.dispose()
        for file in parts.glob("*.parquet"):
            file.unlink()
        parts.rmdir()


def _stage_parquet(source: Path, target: Path, progress: Progress | None) -> StagedTable:
    try:
        parquet = pq.ParquetFile(source, pre_buffer=False)  # pre-buffering holds every row group read
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{source.name} is not a readable Parquet file: {exc}") from None
    total = parquet.metadata.num_rows
    _check_names(parquet.schema_arrow.names, source.name)

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        try:
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                yield batch
                done += batch.num_rows
                if progress:
                    progress(done, total)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InvalidInput(f"{source.name} is corrupt after row {done}: {exc}") from None

    return _write(batches(), parquet.schema_arrow, target, f"file {source.name}")


# "In CSV column #3: CSV conversion error to int64: invalid value 'x'"
_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to (\S+?): (.*)", re.S)
_WIDER = {"null": pa.int64(), "int64": pa.float64()}


def _stage_csv(
    source: Path,
    target: Path,
    compression: str | None,
    delimiter: str,
    encoding: str,
    progress: Progress | None,
) -> StagedTable:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InvalidInput(f"{encoding!r} is not a text encoding Python knows") from None
    types: dict[str, pa.DataType] = {}
    while True:  # once more per column whose type had to be widened
        try:
            with source.open("rb") as raw:
                reader = _open_csv(raw, compression, encoding, delimiter, types)
                _check_names(reader.schema.names, source.name)
                if binary := [f.name for f in reader.schema if pa.types.is_binary(f.type)]:
                    raise InvalidInput(
                        f"{source.name}: column {binary[0]!r} is not {encoding} text; "
                        "give the file's encoding (e.g. encoding='latin-1')"
                    )
                total = source.stat().st_size

                def batches(
                    reader: Any = reader, raw: BinaryIO = raw, total: int = total
                ) -> Iterator[pa.RecordBatch]:
                    for batch in reader:
                        yield batch
                        if progress:
                            progress(min(raw.tell(), total), total)

                return _write(batches(), reader.schema, target, f"file {source.name}")
        except pa.ArrowInvalid as exc:
            _widen_or_explain(exc, source, delimiter, encoding, compression, types)


def _open_csv(
    raw: BinaryIO, compression: str | None, encoding: str, delimiter: str, types: dict[str, pa.DataType]
) -> pacsv.CSVStreamingReader:
    stream: Any = pa.PythonFile(raw, mode="r")
    if compression:
        stream = pa.CompressedInputStream(stream, compression)
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK, encoding=encoding),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )


def _widen_or_explain(
    exc: pa.ArrowInvalid,
    source: Path,
    delimiter: str,
    encoding: str,
    compression: str | None,
    types: dict[str, pa.DataType],
) -> None:
    message = str(exc)
    if message.startswith("Empty CSV file"):
        raise InvalidInput(f"{source.name} is empty: not even a header row") from None
    match = _CONVERSION.match(message)
    if match is None:
        if "CSV parse error" in message:
            raise InvalidInput(
                f"{source.name}: {_ragged_row(source, delimiter, encoding, compression)}"
            ) from None
        raise InvalidInput(f"{source.name} cannot be read as CSV: {message}") from None
    with source.open("rb") as raw:
        names = _open_csv(raw, compression, encoding, delimiter, types).schema.names
    name, was = names[int(match.group(1))], match.group(2)
    if was == "string" or "UTF8" in match.group(3):
        raise InvalidInput(
            f"{source.name}: column {name!r} holds text that is not {encoding}; "
            "give the file's encoding (e.g. encoding='latin-1')"
        ) from None
    types[name] = _WIDER.get(was, pa.string())


def _ragged_row(source: Path, delimiter: str, encoding: str, compression: str | None) -> str:
    """Find the first row whose field count differs from the header's, for the message."""
    import bz2
    import gzip

    opener: Any = {"gzip": gzip.open, "bz2": bz2.open}.get(compression or "", open)
    if compression == "zstd":
        return "a row has a different number of fields than the header"
    with opener(source, "rt", encoding=encoding, errors="replace", newline="") as handle:
        rows = csv.reader(handle, delimiter=delimiter)
        header = next(rows, [])
        for row in rows:
            if len(row) != len(header):
                return (
                    f"line {rows.line_num} has {len(row)} fields where the header has {len(header)}: "
                    f"{delimiter.join(row)[:200]!r}"
                )
    return "a row has a different number of fields than the header"


def _check_names(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if not name or not name.strip():
            raise InvalidInput(f"{where}: a column has no name")
        if name in seen:
            raise InvalidInput(f"{where}: column {name!r} appears twice")
        seen.add(name)


def _write(batches: Iterator[pa.RecordBatch], schema: pa.Schema, target: Path, source: str) -> StagedTable:
    schema = canonical_schema(schema)
    hasher = TableHasher(schema)
    # Dictionary encoding pays for text; on numbers it is tried and dropped, at 4x the cost.
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]
    with pq.ParquetWriter(target, schema, compression="zstd", use_dictionary=text) as writer:
        pending: list[pa.RecordBatch] = []  # small batches gathered into full row groups
        for batch in batches:
            # types or nullability: a file DuckDB wrote marks some columns not null
            batch = batch.cast(schema) if batch.schema != schema else batch
            hasher.update(batch)
            pending.append(batch)
            if sum(b.num_rows for b in pending) >= BATCH_ROWS:
                writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=BATCH_ROWS)
                pending = []
        if pending:
            writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=BATCH_ROWS)
    return StagedTable(target, hasher.hexdigest(), hasher.rows, schema, source)


def rewrite(staged: StagedTable, target: Path, transform: Callable[[pa.Table], pa.Table]) -> StagedTable:
    """`staged` written again to `target`, each batch through `transform` (which may change
    column types, the same way for every batch), with the digest of what it wrote."""
    parquet = pq.ParquetFile(staged.path, pre_buffer=False)
    schema = transform(staged.schema.empty_table()).schema

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            yield from transform(pa.Table.from_batches([batch])).to_batches()

    return _write(batches(), schema, target, staged.source)


def stage(
    data: DataSource, target: Path, sql_url: str | None = None, encoding: str = "utf-8",
    progress: Progress | None = None,
) -> StagedTable:  # fmt: skip
    """Write `data` (a frame, an Arrow table, a CSV or Parquet file, or with `sql_url` a SQL
    query) to the Parquet file `target`, with its digest and row count."""
    if sql_url is not None:
        if not isinstance(data, str):
            raise InvalidInput("with sql_url, the data must be the text of a SQL query")
        return stage_query(data, sql_url, target, progress)
    if isinstance(data, pd.DataFrame | pa.Table):
        return stage_frame(data, target)
    if isinstance(data, str | Path):
        return stage_file(data, target, encoding=encoding, progress=progress)
    raise InvalidInput(
        f"cannot register a {type(data).__name__}: give a DataFrame, an Arrow table, "
        "a CSV or Parquet path, or a SQL query with sql_url"
    )


def read_version(path: Path, version: DatasetVersion, columns: Sequence[str] | None = None) -> pa.Table:
    """The rows of dataset `version`, stored at `path` (or some of its columns)."""
    unknown = [c for c in columns or () if c not in version.schema]
    if unknown:
        raise InvalidInput(f"{version.uri} has no columns {unknown}; it has {list(version.schema)}")
    return pq.read_table(path, columns=list(columns) if columns else None)
