"""Batch scoring: a file in, the same rows with predictions out, in chunks of bounded
size (constant memory), locally or over a Ray cluster.

Parquet is read by row group batches, CSV by a streaming reader; the output is written
chunk by chunk to a temporary file that replaces the target only when complete.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from loopline.compute.ray_cluster import connect_ray
from loopline.core.errors import InvalidInput
from loopline.data.ingest import PARQUET_SUFFIXES
from loopline.models import LoadedModel, load_model_dir
from loopline.models.flavors import LoadOptions
from loopline.models.package import METADATA_FILE
from loopline.services import Registry

MAX_IN_FLIGHT_PER_CPU = 2  # chunks queued on a Ray cluster: enough to keep it busy, few enough for memory


@dataclass(frozen=True)
class BatchSummary:
    model: str
    rows: int
    seconds: float


def _chunks(path: Path, rows: int) -> tuple[Iterator[pd.DataFrame], int | None]:
    """DataFrames of at most `rows` rows, and the total when the format tells it."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InvalidInput(f"input {path} does not exist")
    if suffix in (".parquet", ".pq"):
        file = pq.ParquetFile(path)
        return (batch.to_pandas() for batch in file.iter_batches(batch_size=rows)), file.metadata.num_rows
    if suffix == ".csv":
        import pyarrow.csv as pacsv

        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 22))

        def batches() -> Iterator[pd.DataFrame]:
            pending: list[pd.DataFrame] = []
            size = 0
            for batch in reader:
                pending.append(batch.to_pandas())
                size += batch.num_rows
                if size >= rows:
                    joined = pd.concat(pending, ignore_index=True)
                    yield joined.iloc[:rows]
                    pending, size = [joined.iloc[rows:]], len(joined) - rows
            if size:
                yield pd.concat(pending, ignore_index=True)

        return batches(), None
    raise InvalidInput(f"input {path}: use .parquet or .csv")


def score_frame(model: LoadedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with `prediction` (and `proba.<class>`) columns added."""
    names = model.signature.input_names if model.signature is not None else list(frame.columns)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise InvalidInput(f"the input lacks columns the model needs: {missing}")
    predicted, proba, _ = model.score(frame[names])
    scored = frame.assign(prediction=predicted)
    if proba is not None and model.classes is not None:
        scored = scored.assign(**{f"proba.{label}": proba[:, i] for i, label in enumerate(model.classes)})
    return scored


def score_file(
    registry: Registry,
    uri: str,
    source: Path,
    target: Path,
    *,
    chunk_rows: int = 50_000,
    ray_address: str | None = None,
    trust: bool = False,
    progress: bool = True,
) -> BatchSummary:
    if target.suffix.lower() not in (*PARQUET_SUFFIXES, ".csv"):
        raise InvalidInput(f"output {target}: write .parquet or .csv")
    if chunk_rows < 1:
        raise InvalidInput("chunk_rows must be at least 1")
    chunks, total = _chunks(source, chunk_rows)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="loopline-batch-") as tmp:
        version = registry.download(uri, Path(tmp))
        options = LoadOptions(trust=trust)
        if ray_address is None:
            model = load_model_dir(Path(tmp), options)
            scored: Iterator[pd.DataFrame] = (score_frame(model, chunk) for chunk in chunks)
        else:
            files = {
                p.relative_to(tmp).as_posix(): p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()
            }
            scored = _on_ray(ray_address, files, options, chunks)
        rows = _write(scored, target, total, progress, version.uri)
    return BatchSummary(version.uri, rows, time.perf_counter() - started)


def _write(
    scored: Iterator[pd.DataFrame], target: Path, total: int | None, progress: bool, label: str
) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.partial")
    as_csv = target.suffix.lower() == ".csv"
    writer: pq.ParquetWriter | pa_csv.CSVWriter | None = None
    schema: pa.Schema | None = None  # the first chunk's: every later one is cast to it
    rows = 0
    columns = [
        TextColumn("scoring with {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    try:
        with Progress(*columns, disable=not progress, transient=True) as bar:
            task = bar.add_task(label, total=total)
            for frame in scored:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                if writer is None:
                    schema = table.schema
                    opened = pa_csv.CSVWriter if as_csv else pq.ParquetWriter
                    writer = opened(temporary, schema)
                writer.write_table(table.cast(schema))
                rows += len(frame)
                bar.update(task, advance=len(frame))
        if writer is None:  # no rows at all: still a valid, empty file
            (pa_csv.write_csv if as_csv else pq.write_table)(pa.table({}), temporary)
        else:
            writer.close()
            writer = None
        os.replace(temporary, target)
    finally:
        if writer is not None:
            writer.close()
        temporary.unlink(missing_ok=True)
    return rows


def _on_ray(
    address: str, files: dict[str, bytes], options: LoadOptions, chunks: Iterator[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    """Score chunks on Ray workers, in order, with a bounded number in flight."""
    started_here = connect_ray(address, "scoring")
    import ray

    try:
        model_ref = ray.put(files)
        score = ray.remote(_score_remote)
        cpus = ray.cluster_resources().get("CPU", 1)  # type: ignore[no-untyped-call]
        window = max(1, int(cpus) * MAX_IN_FLIGHT_PER_CPU)
        pending: list[Any] = []
        for chunk in chunks:
            pending.append(score.remote(model_ref, options, chunk))
            if len(pending) >= window:
                yield ray.get(pending.pop(0))
        for ref in pending:
            yield ray.get(ref)
    finally:
        if started_here:
            ray.shutdown()


_worker_models: dict[str, LoadedModel] = {}  # per Ray worker process: load each model once


def _score_remote(files: dict[str, bytes], options: LoadOptions, chunk: pd.DataFrame) -> pd.DataFrame:
    key = hashlib.sha256(files[METADATA_FILE]).hexdigest()  # the version's content hash
    model = _worker_models.get(key)
    if model is None:
        with tempfile.TemporaryDirectory(prefix="loopline-ray-") as tmp:
            for name, data in files.items():
                path = Path(tmp, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            model = load_model_dir(Path(tmp), options)  # verifies every file's sha256
        _worker_models[key] = model
    return score_frame(model, chunk)
