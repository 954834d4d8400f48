"""A deployment report over a large prediction log: time and peak memory.

    .venv/bin/python -m benchmarks.prediction_reports [--rows 10000000]

Writes a canary deployment's log of `--rows` answered rows (ten days, 90/10 split, eight
inputs, class probabilities, a label for a fifth of the rows, a few refused requests) as
Parquet in the layout servers write, then measures, each in a fresh process:

* loopline's `deployment_report`: DuckDB streams the files and returns aggregates only;
* the in-memory baseline: reading the whole log into one Arrow table, the first step of any
  report that loads it (and what loopline's reports did before they read through DuckDB).

Reported: wall time, and peak resident memory above the process's memory before the call.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEPLOYMENT = "bench"
DAYS = 10
FILE_ROWS = 500_000
DAY_MS = 86_400_000
START_MS = 1_767_225_600_000  # 2026-01-01


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_log(root: Path, rows: int) -> None:
    """The log of `rows` rows under `root`, in files of FILE_ROWS rows."""
    import numpy as np
    import pyarrow as pa

    from loopline.artifacts.tables import TableArea
    from loopline.predictions.log import ERRORS, FEEDBACK, PREDICTIONS, day_partition

    tables = TableArea(str(root))
    rng = np.random.default_rng(0)
    per_day = rows // DAYS
    for day in range(DAYS):
        partition = [("deployment", DEPLOYMENT), ("date", day_partition(START_MS // DAY_MS + day))]
        for start in range(0, per_day, FILE_ROWS):
            n = min(FILE_ROWS, per_day - start)
            ids = np.char.add(f"d{day}-", np.arange(start, start + n).astype(str))
            at = START_MS + day * DAY_MS + np.sort(rng.integers(0, DAY_MS, n))
            canary = rng.random(n) < 0.1
            proba = rng.random(n)
            data: dict[str, Any] = {
                "request_id": pa.array(ids, pa.string()),
                "row": pa.array(np.zeros(n, np.int32)),
                "at_ms": pa.array(at),
                "arm": pa.array(np.where(canary, "canary", "stable")),
                "model": pa.array(np.full(n, "churn")),
                "version": pa.array(np.where(canary, 2, 1).astype(np.int32)),
                "latency_ms": pa.array(rng.gamma(2.0, 1.5, n) + np.where(canary, 0.3, 0.0)),
                "prediction": pa.array((proba > 0.5).astype(np.int64)),
                **{f"input.x{i}": pa.array(rng.normal(size=n)) for i in range(8)},
                "proba.0": pa.array(1 - proba),
                "proba.1": pa.array(proba),
            }
            tables.append(PREDICTIONS, partition, pa.table(data))
            labelled = rng.random(n) < 0.2
            truth = np.where(rng.random(labelled.sum()) < 0.85, data["prediction"].to_numpy()[labelled], 1)
            feedback = {
                "request_id": pa.array(ids[labelled], pa.string()),
                "row": pa.array(np.zeros(labelled.sum(), np.int32)),
                "label": pa.array(truth.astype(np.int64)),
                "at_ms": pa.array(at[labelled] + 3_600_000),
            }
            tables.append(FEEDBACK, partition, pa.table(feedback))
            refused = rng.random(n) < 0.005
            errors = {
                "request_id": pa.array(np.char.add(ids[refused], "-e"), pa.string()),
                "arm": pa.array(np.where(canary[refused], "canary", "stable")),
                "version": pa.array(np.where(canary[refused], 2, 1).astype(np.int32)),
                "at_ms": pa.array(at[refused]),
                "status": pa.array(np.full(refused.sum(), 422, np.int32)),
            }
            tables.append(ERRORS, partition, pa.table(errors))


def measure(root: str, what: str) -> dict[str, Any]:
    """Runs in a process of its own: see main()."""
    from loopline.artifacts.tables import TableArea
    from loopline.core.traffic import TrafficPolicy
    from loopline.predictions.log import PREDICTIONS
    from loopline.predictions.reports import deployment_report

    tables = TableArea(root)
    policy = TrafficPolicy.canary("models:/churn/1", "models:/churn/2", 10)
    before = _peak_mb()
    start = time.perf_counter()
    if what == "loopline":
        report = deployment_report(tables, DEPLOYMENT, policy)
        summary = {a.arm: [a.requests, a.errors, a.labelled] for a in report.arms}
    else:
        table = tables.read(PREDICTIONS, [("deployment", DEPLOYMENT)])
        summary = {"rows": table.num_rows}
    return {"seconds": time.perf_counter() - start, "above_mb": _peak_mb() - before, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # internal: ROOT WHAT
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    with tempfile.TemporaryDirectory(prefix="loopline-reports-") as tmp:
        started = time.perf_counter()
        write_log(Path(tmp), args.rows)
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*.parquet")) / 2**20
        took = time.perf_counter() - started
        print(f"log: {args.rows:,} rows, {size:,.0f} MiB of Parquet, written in {took:.0f}s")
        print(f"{'':40} {'seconds':>9} {'peak MiB above start':>21}")
        for what, label in (
            ("loopline", "loopline deployment_report"),
            ("baseline", "read the whole log (Arrow)"),
        ):
            command = [sys.executable, "-m", "benchmarks.prediction_reports", "--measure", tmp, what]
            found = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
            print(f"{label:40} {found['seconds']:>9.1f} {found['above_mb']:>21,.0f}   {found['summary']}")


if __name__ == "__main__":
    main()
