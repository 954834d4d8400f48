"""A feature view's source as a DuckDB relation: a Parquet or CSV file (or a glob of them),
a stored dataset version, or the rows of a SQL query through SQLAlchemy (staged as Parquet)."""

from __future__ import annotations

import contextlib
import glob
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loopline.core.errors import InvalidInput
from loopline.core.features import RegisteredView, is_sql_source
from loopline.data.ingest import stage_query
from loopline.feature_store.offline import OpenSource
from loopline.services import Datasets

DATASET_PREFIX = "datasets:/"


@contextlib.contextmanager
def source_opener(datasets: Datasets | None) -> Iterator[OpenSource]:
    """Opens sources with `datasets` resolving `datasets:/NAME@VERSION`; a SQL source's rows
    are staged as Parquet (in chunks, as dataset ingestion does) until the block ends."""
    staging = Path(tempfile.mkdtemp(prefix="loopline-feature-sources-"))

    def open_source(con: Any, registered: RegisteredView, name: str) -> list[str]:
        view = registered.view
        source = view.source.strip()
        where = f"feature view {registered.ref}"
        if source.startswith(DATASET_PREFIX):
            if datasets is None:
                raise InvalidInput(f"{where} reads a dataset version, and no dataset store is open here")
            version = datasets.get(source.removeprefix(DATASET_PREFIX))
            return _files(con, name, [datasets.local_path(version)], "read_parquet")
        if is_sql_source(source):
            try:
                staged = stage_query(view.query or "", source, staging / f"{name}.parquet")
            except InvalidInput as exc:
                raise InvalidInput(f"{where}: {exc}") from None
            return _files(con, name, [staged.path], "read_parquet")
        if "://" in source:
            raise InvalidInput(
                f"{where}: source {source!r:.120} is neither a file, a dataset version nor a database"
            )
        paths = (
            [Path(p) for p in sorted(glob.glob(source))]
            if any(c in source for c in "*?[")
            else [Path(source)]
        )
        if not paths or not all(p.is_file() for p in paths):
            raise InvalidInput(f"{where}: source file {source!r:.200} does not exist")
        csv = all(p.suffix.lower() in (".csv", ".gz") for p in paths)
        return _files(con, name, paths, "read_csv_auto" if csv else "read_parquet")

    try:
        yield open_source
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _files(con: Any, name: str, paths: list[Path], reader: str) -> list[str]:
    resolved = [str(p.resolve()) for p in paths]
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in resolved)
    con.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {reader}([{listed}])")
    return resolved
