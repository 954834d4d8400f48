"""Peer benchmark: `mlflow gc` permanently removing deleted runs and their artifacts.

Run with the python of the peers virtualenv::

    benchmarks/.peers-venv/bin/python benchmarks/peers/mlflow_gc.py --workdir DIR [--runs 1000]

Prints exactly one JSON object on stdout; progress and MLflow's own logging go to stderr.

Setup (untimed): a SQLite tracking store and a local artifact folder; `--runs` runs, each
with one metric and one artifact of its own (distinct bytes, `--artifact-kib` KiB); every
second run is then deleted (MLflow's soft delete). Timed: `mlflow gc` in a fresh process,
as users run it. Counted afterwards: runs left in the store, artifact files left on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--artifact-kib", type=int, default=4)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{args.workdir / 'mlflow.db'}"
    artifacts = args.workdir / "mlartifacts"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("gc", artifact_location=artifacts.as_uri())
    payload = args.workdir / "payload.bin"
    started = time.perf_counter()
    for i in range(args.runs):
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "loss", 1.0 / (i + 1))
        payload.write_bytes(i.to_bytes(8, "little") * (args.artifact_kib * 128))
        client.log_artifact(run.info.run_id, str(payload))
        client.set_terminated(run.info.run_id)
        if i % 2:
            client.delete_run(run.info.run_id)
    created_s = time.perf_counter() - started
    print(f"created {args.runs} runs in {created_s:.1f} s", file=sys.stderr)

    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", uri],
        check=True,
        env=env,
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    gc_s = time.perf_counter() - started
    with sqlite3.connect(args.workdir / "mlflow.db") as con:
        runs_left = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    files_left = sum(1 for path in artifacts.rglob("*") if path.is_file())
    print(
        json.dumps(
            {
                "runs": args.runs,
                "deleted": args.runs // 2,
                "create_s": created_s,
                "gc_s": gc_s,
                "runs_left": runs_left,
                "artifact_files_left": files_left,
            }
        )
    )


if __name__ == "__main__":
    main()
