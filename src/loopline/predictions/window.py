"""A window of a deployment's prediction log, read by DuckDB straight from the Parquet
files: the last N predictions or the last H hours, joined to the newest feedback label of
each row, with the latency and error counts of the same span.

Only the date partitions a window can touch are handed to DuckDB, so a window costs the
size of the window, not of the whole log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopline.artifacts.tables import TableArea
from loopline.predictions.log import ERRORS, INPUT_PREFIX, PREDICTIONS, PROBA_PREFIX
from loopline.predictions.reader import LABELS, LABELS_JOIN, LogReader, day_of
from loopline.specs.monitor import WindowSpec


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


def read_window(
    tables: TableArea, deployment: str, spec: WindowSpec, now_ms: int, shadows: Sequence[str] = ()
) -> Window:
    """The window `spec` of the log as of `now_ms`: every answered row, whichever arm answered
    it (policies change), each with its newest label, and the errors of the same span. Rows
    of the `shadows` arms are left out: they copy requests another arm answered."""
    since_ms = now_ms - int((spec.hours or 0) * 3_600_000) if spec.rows is None else None
    empty = Window(pd.DataFrame(), since_ms, now_ms, 0, 0, np.zeros(0), [], [])
    first_day = _first_day(tables, deployment, spec.rows) if spec.rows is not None else since_ms
    if first_day is None:
        return empty
    reader = LogReader(tables, deployment, first_day)
    con = reader.connect()
    try:
        marks = ", ".join("?" for _ in shadows)
        answered = f"(arm NOT IN ({marks}) OR arm IS NULL)" if shadows else "true"
        where = answered + (" AND at_ms >= ?" if since_ms is not None else "")
        params: list[Any] = [*shadows] + ([since_ms] if since_ms is not None else [])
        limit = f"LIMIT {int(spec.rows)}" if spec.rows is not None else ""
        frame = con.execute(
            f"""SELECT w.*, l.label FROM (
                    SELECT * FROM {PREDICTIONS} WHERE {where}
                    ORDER BY at_ms DESC, request_id DESC, "row" DESC {limit}
                ) w LEFT JOIN {LABELS} l ON {LABELS_JOIN.format(p="w", l="l")}
                ORDER BY w.at_ms, w.request_id, w."row"
            """,
            params,
        ).df()
        if frame.empty:
            return empty
        start, end = int(frame["at_ms"].min()), int(frame["at_ms"].max())
        errors = con.execute(  # refusals up to now count
            f"""SELECT count(*) FROM {ERRORS} WHERE at_ms BETWEEN ? AND ? AND {answered}""",
            [start, now_ms, *shadows],
        ).fetchone()
    finally:
        con.close()
    frame["label"] = frame["label"].astype(object).where(frame["label"].notna(), np.nan)
    requests = frame[frame["row"] == 0]
    inputs = [c for c in frame.columns if c.startswith(INPUT_PREFIX)]
    frame = frame.rename(columns={c: c.removeprefix(INPUT_PREFIX) for c in inputs})
    window = Window(
        rows=frame,
        start_ms=start,
        end_ms=end,
        requests=len(requests),
        errors=int(errors[0]) if errors else 0,
        latency_ms=requests["latency_ms"].to_numpy(dtype=float),
        inputs=[c.removeprefix(INPUT_PREFIX) for c in inputs],
        proba=[c for c in frame.columns if c.startswith(PROBA_PREFIX)],
    )
    if frame["version"].nunique() > 1:
        window.warnings.append(
            f"the window mixes model versions {sorted(frame['version'].unique().tolist())}"
        )
    return window


def _first_day(tables: TableArea, deployment: str, rows: int) -> int | None:
    """The start of the oldest day a window of the last `rows` rows can reach (by the files'
    row counts), so that it reads no more days than it needs; None for an empty log."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = LogReader(tables, deployment).files(PREDICTIONS)
    counted = 0
    for day in sorted({day_of(p) for p in files}, reverse=True):
        try:
            counted += sum(
                pq.read_metadata(p, filesystem=None if "://" not in p else tables.fs).num_rows
                for p in files
                if day_of(p) == day
            )
        except (OSError, pa.ArrowException):
            tables.raise_if_sealed(tables.files(PREDICTIONS, [("deployment", deployment)]))
            raise
        if counted >= 2 * rows:  # some rows may belong to a shadow arm
            return int(pd.Timestamp(day, tz="UTC").timestamp() * 1000)
    return 0 if files else None
