"""A feature view's source as a DuckDB relation: a Parquet or CSV file (or a glob of them),
a stored dataset version, or the rows of a SQL query through SQLAlchemy."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from loopline.core.errors import InvalidInput
from loopline.core.features import RegisteredView, is_sql_source
from loopline.feature_store.offline import OpenSource
from loopline.services import Datasets

DATASET_PREFIX = "datasets:/"


def source_opener(datasets: Datasets | None) -> OpenSource:
    """Opens sources with `datasets` resolving `datasets:/NAME@VERSION`."""

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
            con.register(name, _query(source, view.query or "", where))
            return []
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

    return open_source


def _files(con: Any, name: str, paths: list[Path], reader: str) -> list[str]:
    resolved = [str(p.resolve()) for p in paths]
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in resolved)
    con.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {reader}([{listed}])")
    return resolved


def _query(url: str, query: str, where: str) -> Any:
    """The query's rows as an Arrow table (read whole: a database is read where it lives)."""
    import pandas as pd
    import pyarrow as pa
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            frame = pd.read_sql_query(sa.text(query), conn)
    except sa.exc.SQLAlchemyError as exc:
        raise InvalidInput(f"{where}: its query failed: {' '.join(str(exc).split())[:300]}") from None
    finally:
        engine.dispose()
    return pa.Table.from_pandas(frame, preserve_index=False)
