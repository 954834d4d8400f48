"""A window of a deployment's prediction log, read by DuckDB straight from the Parquet
files: the last N predictions or the last H hours, joined to the newest feedback label of
each row, with the latency and error counts of the same span.

Only the date partitions a window can touch are handed to DuckDB, so a window costs the
size of the window, not of the whole log.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loopline.artifacts.tables import TableArea
from loopline.monitoring.spec import WindowSpec
from loopline.serving.predlog import DAY_MS, ERRORS, FEEDBACK, PREDICTIONS

_DATE = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


@dataclass
class Window:
    rows: pd.DataFrame  # one row per prediction: inputs (bare names), prediction, proba.*, label
    start_ms: int | None
    end_ms: int | None
    requests: int
    errors: int
    latency_ms: np.ndarray  # per request
    inputs: list[str]
    proba: list[str]  # the proba.<class> columns, in the log's order
    warnings: list[str] = field(default_factory=list)

    @property
    def labels(self) -> pd.Series:
        return self.rows["label"]


def _day(path: str) -> str:
    found = _DATE.search(path)
    return found.group(1) if found else ""


def _paths(tables: TableArea, table: str, deployment: str, since_day: str = "") -> list[str]:
    files = [p for p in tables.files(table, [("deployment", deployment)]) if _day(p) >= since_day]
    if tables.fs.protocol in ("file", "local") or "file" in tables.fs.protocol:
        return files
    protocol = tables.fs.protocol if isinstance(tables.fs.protocol, str) else tables.fs.protocol[0]
    return [f"{protocol}://{p}" for p in files]


def _connect(tables: TableArea) -> Any:
    import duckdb

    con = duckdb.connect()
    if not ("file" in tables.fs.protocol or "local" in tables.fs.protocol):
        con.register_filesystem(tables.fs)  # DuckDB reads the object store through fsspec
    return con


def _newest_files(tables: TableArea, deployment: str, rows: int) -> list[str]:
    """The newest files (by day) holding at least `rows` rows: a rows window reads no more."""
    import pyarrow.parquet as pq

    chosen: list[str] = []
    counted = 0
    paths = _paths(tables, PREDICTIONS, deployment)
    for day in sorted({_day(p) for p in paths}, reverse=True):
        batch = [p for p in paths if _day(p) == day]
        chosen += batch
        counted += sum(
            pq.read_metadata(p, filesystem=None if "://" not in p else tables.fs).num_rows for p in batch
        )
        if counted >= 2 * rows:  # some rows may belong to a shadow arm
            break
    return chosen


def read_window(
    tables: TableArea, deployment: str, spec: WindowSpec, arms: Sequence[str], now_ms: int
) -> Window:
    con = _connect(tables)
    try:
        return _read(con, tables, deployment, spec, arms, now_ms)
    finally:
        con.close()


def _read(
    con: Any, tables: TableArea, deployment: str, spec: WindowSpec, arms: Sequence[str], now_ms: int
) -> Window:
    if spec.rows is not None:
        files = _newest_files(tables, deployment, spec.rows)
        since_ms = None
    else:
        since_ms = now_ms - int((spec.hours or 0) * 3_600_000)
        since_day = pd.Timestamp(since_ms // DAY_MS * DAY_MS, unit="ms").strftime("%Y-%m-%d")
        files = _paths(tables, PREDICTIONS, deployment, since_day)
    empty = Window(pd.DataFrame(), since_ms, now_ms, 0, 0, np.zeros(0), [], [])
    if not files:
        return empty
    marks = ", ".join("?" for _ in arms)
    where = f"arm IN ({marks})" + (" AND at_ms >= ?" if since_ms is not None else "")
    params: list[Any] = [files, *arms] + ([since_ms] if since_ms is not None else [])
    limit = f"LIMIT {int(spec.rows)}" if spec.rows is not None else ""
    frame = con.execute(
        f"""SELECT * FROM (
                SELECT * FROM read_parquet(?, union_by_name = true, hive_partitioning = false)
                WHERE {where} ORDER BY at_ms DESC, request_id DESC, "row" DESC {limit}
            ) ORDER BY at_ms, request_id, "row"
        """,
        params,
    ).df()
    if frame.empty:
        return empty
    start, end = int(frame["at_ms"].min()), int(frame["at_ms"].max())
    frame["label"] = _labels(con, tables, deployment, frame, start)
    errors = _errors(con, tables, deployment, arms, start, now_ms)  # refusals up to now count
    requests = frame[frame["row"] == 0]
    inputs = [c for c in frame.columns if c.startswith("input.")]
    frame = frame.rename(columns={c: c.removeprefix("input.") for c in inputs})
    window = Window(
        rows=frame,
        start_ms=start,
        end_ms=end,
        requests=len(requests),
        errors=errors,
        latency_ms=requests["latency_ms"].to_numpy(dtype=float),
        inputs=[c.removeprefix("input.") for c in inputs],
        proba=[c for c in frame.columns if c.startswith("proba.")],
    )
    if frame["version"].nunique() > 1:
        window.warnings.append(
            f"the window mixes model versions {sorted(frame['version'].unique().tolist())}"
        )
    return window


def _labels(con: Any, tables: TableArea, deployment: str, frame: pd.DataFrame, start_ms: int) -> pd.Series:
    """The newest feedback label of each row (labels arrive after their predictions)."""
    day = pd.Timestamp(start_ms // DAY_MS * DAY_MS, unit="ms").strftime("%Y-%m-%d")
    files = _paths(tables, FEEDBACK, deployment, day)
    if not files:
        return pd.Series(np.nan, index=frame.index, dtype=object)
    keys = pa.table(
        {
            "request_id": pa.array(frame["request_id"].astype(str).to_numpy(dtype=object), pa.string()),
            "row": pa.array(frame["row"].to_numpy(dtype=np.int64)),
            "_order": pa.array(np.arange(len(frame), dtype=np.int64)),
        }
    )
    con.register("window_keys", keys)
    found = con.execute(
        """SELECT k._order, f.label FROM window_keys k
           JOIN (SELECT DISTINCT ON (request_id, "row") request_id, "row", label
                 FROM read_parquet(?, union_by_name = true, hive_partitioning = false)
                 ORDER BY request_id, "row", at_ms DESC) f
             ON f.request_id = k.request_id AND CAST(f."row" AS BIGINT) = CAST(k."row" AS BIGINT)""",
        [files],
    ).df()
    labels = pd.Series(np.nan, index=frame.index, dtype=object)
    labels.iloc[found["_order"].to_numpy()] = found["label"].to_numpy()
    return labels


def _errors(con: Any, tables: TableArea, deployment: str, arms: Sequence[str], start: int, end: int) -> int:
    day = pd.Timestamp(start // DAY_MS * DAY_MS, unit="ms").strftime("%Y-%m-%d")
    files = _paths(tables, ERRORS, deployment, day)
    if not files:
        return 0
    marks = ", ".join("?" for _ in arms)
    found = con.execute(
        f"""SELECT count(*) FROM read_parquet(?, union_by_name = true, hive_partitioning = false)
            WHERE at_ms BETWEEN ? AND ? AND (arm IN ({marks}) OR arm IS NULL)""",
        [files, start, end, *arms],
    ).fetchone()
    return int(found[0]) if found else 0
