"""Peer side of benchmarks/server.py: the same workload as loopline's client, sent with
``MlflowClient`` to an MLflow tracking server that the driver started.

Run with the python of the peers virtualenv::

    benchmarks/.peers-venv/bin/python benchmarks/peers/mlflow_server_client.py --url URL \\
        --calls 20 --runs 1000

Prints one JSON object as the last line of stdout; MLflow's own output goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for benchmarks.server
from benchmarks.server import (  # stdlib only at import time
    BATCH_KEYS,
    BATCH_STEPS,
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    SEARCH_ORDER_BY,
    batch_rows,
    check_history,
    search_population,
    time_search,
)


def bench_log_batch(client: MlflowClient, calls: int) -> float:
    experiment_id = client.create_experiment("log_batch")
    run_id = client.create_run(experiment_id).info.run_id
    start = time.perf_counter()
    for call in range(calls):
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, s) for k, v, s in batch_rows(call)])
    elapsed = time.perf_counter() - start
    client.set_terminated(run_id)
    check_history(len(client.get_metric_history(run_id, "k0")), calls)
    return calls * BATCH_KEYS * BATCH_STEPS / elapsed


def bench_search(client: MlflowClient, runs: int) -> dict[str, Any]:
    experiment_id = client.create_experiment("search")
    population = search_population(runs)
    start = time.perf_counter()
    for i, (p, values) in enumerate(population):
        run_id = client.create_run(experiment_id, run_name=f"run-{i}").info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric(f"m{j}", v, now, 0) for j, v in enumerate(values)]
        client.log_batch(run_id, metrics=metrics, params=[Param("p", p)])
        client.set_terminated(run_id)
    populate_s = time.perf_counter() - start

    def search() -> list[float]:
        found = client.search_runs(
            [experiment_id],
            filter_string=SEARCH_FILTER,
            order_by=SEARCH_ORDER_BY,
            max_results=SEARCH_MAX_RESULTS,
        )
        return [r.data.metrics["m0"] for r in found]

    return {"populate_s": populate_s, **time_search(search, population)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the MLflow tracking server")
    parser.add_argument("--calls", type=int, required=True, help="log_batch calls of 1,000 values")
    parser.add_argument("--runs", type=int, required=True, help="runs in the searched experiment")
    args = parser.parse_args()

    # set_terminated would print a link to every run, after one more get_run request for it
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON result
        client = MlflowClient(tracking_uri=args.url)
        rate = bench_log_batch(client, args.calls)
        search = bench_search(client, args.runs)
    result = {
        "version": mlflow.__version__,
        "log_batch_values": args.calls * BATCH_KEYS * BATCH_STEPS,
        "log_batch_values_per_s": rate,
        **search,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
