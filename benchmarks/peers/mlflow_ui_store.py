"""Peer side of benchmarks/ui.py: an MLflow SQLite store holding the UI benchmark's data
(benchmarks/ui_workload.py), inserted straight into MLflow's own tables with the rows its
SDK would have written (through the SDK, 100,000 runs would take hours).

    benchmarks/.peers-venv/bin/python benchmarks/peers/mlflow_ui_store.py --db PATH --runs N --points N

Prints one JSON object as the last line: the experiment id and the id of the long series' run.
"""

from __future__ import annotations

import argparse
import getpass
import json
import random
import sqlite3
import sys
import uuid
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository
from benchmarks.peers.mlflow_tracking import INSERT_COLUMNS, check_schema, insert_sql
from benchmarks.ui_workload import BASE_MS, SEED, SERIES_KEY, run_values, series


def _run_row(run_id: str, name: str, start_ms: int, experiment_id: int, artifacts: str) -> tuple[Any, ...]:
    user = getpass.getuser()
    return (run_id, name, "UNKNOWN", "", "", user, "FINISHED", start_ms, start_ms + 500, "", "active",
            f"{artifacts}/{run_id}/artifacts", experiment_id)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--points", type=int, required=True)
    args = parser.parse_args()
    client = MlflowClient(tracking_uri=f"sqlite:///{args.db}")  # creates MLflow's schema
    artifacts = str(args.db.parent / "mlruns")
    experiment_id = int(client.create_experiment("bench", artifact_location=artifacts))
    rng = random.Random(SEED)
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in INSERT_COLUMNS}
    for i in range(args.runs):
        run_id, start_ms = uuid.uuid4().hex, BASE_MS + 1000 * i
        rows["runs"].append(_run_row(run_id, f"run-{i}", start_ms, experiment_id, artifacts))
        params, metrics = run_values(i, rng)
        rows["params"] += [(k, v, run_id) for k, v in params.items()]
        rows["tags"].append(("mlflow.runName", f"run-{i}", run_id))
        for key, value in metrics.items():
            rows["metrics"].append((key, value, start_ms + 400, 0, 0, run_id))
            rows["latest_metrics"].append((key, value, start_ms + 400, 0, 0, run_id))
    series_run = uuid.uuid4().hex
    rows["runs"].append(_run_row(series_run, "series", BASE_MS - 1000, experiment_id, artifacts))
    rows["metrics"] += [(SERIES_KEY, v, ts, step, 0, series_run) for step, v, ts in series(args.points)]
    last_step, last_value, last_ts = max(series(args.points))
    rows["latest_metrics"].append((SERIES_KEY, last_value, last_ts, last_step, 0, series_run))
    conn = sqlite3.connect(args.db)
    try:
        check_schema(conn)
        with conn:
            for table, table_rows in rows.items():
                conn.executemany(insert_sql(table), table_rows)
        conn.execute("ANALYZE")  # MLflow never does; its searches get planner statistics all the same
    finally:
        conn.close()
    print(json.dumps({"experiment_id": str(experiment_id), "series_run": series_run}))


if __name__ == "__main__":
    main()
