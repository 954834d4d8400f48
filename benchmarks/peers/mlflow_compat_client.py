"""Peer side of benchmarks/mlflow_compat.py: one MLflow client script, run unchanged against
`mlflow server` and against `loopline server`.

Run with the python of the peers virtualenv::

    # write the searched population (and the metric histories the import reads) into MLflow's store
    benchmarks/.peers-venv/bin/python benchmarks/peers/mlflow_compat_client.py populate \\
        --store-uri sqlite:///mlflow.db --runs 10000 --steps 100
    # the timed calls, against a server (MLFLOW_TRACKING_TOKEN authenticates to loopline)
    benchmarks/.peers-venv/bin/python benchmarks/peers/mlflow_compat_client.py measure \\
        --url URL --calls 20 --metric-calls 300

Prints one JSON object as the last line of stdout; MLflow's own output goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for benchmarks.server
from benchmarks.peers.mlflow_server_client import bench_log_batch
from benchmarks.server import (  # stdlib only at import time
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    SEARCH_ORDER_BY,
    search_population,
    time_search,
)

SEARCHED = "search"
HISTORY_KEY = "loss"


def populate(store_uri: str, runs: int, steps: int) -> dict[str, Any]:
    """The searched experiment, written by MLflow's own store in this process: run i has
    param p, metrics m0..m4 and a `loss` history of `steps` values."""
    client = MlflowClient(tracking_uri=store_uri)
    experiment_id = client.create_experiment(SEARCHED)
    start = time.perf_counter()
    for i, (p, values) in enumerate(search_population(runs)):
        run_id = client.create_run(experiment_id, run_name=f"run-{i}", start_time=1_000 + i).info.run_id
        now = 1_700_000_000_000 + i
        metrics = [Metric(f"m{j}", v, now, 0) for j, v in enumerate(values)]
        metrics += [Metric(HISTORY_KEY, 1.0 / (s + 1), now + s, s) for s in range(steps)]
        for first in range(0, len(metrics), 1000):
            params = [Param("p", p)] if first == 0 else []
            client.log_batch(run_id, metrics=metrics[first : first + 1000], params=params)
        client.set_terminated(run_id, end_time=2_000 + i)
    return {"runs": runs, "metric_values": runs * (steps + 5), "populate_s": time.perf_counter() - start}


def bench_log_metric(client: MlflowClient, calls: int) -> float:
    run_id = client.create_run(client.create_experiment("log_metric")).info.run_id
    start = time.perf_counter()
    for step in range(calls):
        client.log_metric(run_id, "x", 1.0 / (step + 1), step=step)
    elapsed = time.perf_counter() - start
    client.set_terminated(run_id)
    if len(client.get_metric_history(run_id, "x")) != calls:
        raise RuntimeError("log_metric: not every value was stored")
    return calls / elapsed


def bench_search(client: MlflowClient, runs: int) -> dict[str, Any]:
    experiment_id = client.get_experiment_by_name(SEARCHED).experiment_id

    def search() -> list[float]:
        found = client.search_runs(
            [experiment_id],
            filter_string=SEARCH_FILTER,
            order_by=SEARCH_ORDER_BY,
            max_results=SEARCH_MAX_RESULTS,
        )
        return [r.data.metrics["m0"] for r in found]

    return time_search(search, search_population(runs))


def bench_log_model(repeats: int) -> dict[str, Any]:
    """Seconds from `log_model` to a READY registered version (requirements given, so that
    MLflow's client does not spend seconds inferring them), after one untimed warm-up."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(features, target)
    mlflow.set_experiment("log_model")
    timings = []
    for repeat in range(repeats + 1):  # the first warms both sides up (lazy imports), untimed
        start = time.perf_counter()
        with mlflow.start_run():
            logged = mlflow.sklearn.log_model(
                model, name="model", input_example=features.head(3), pip_requirements=["scikit-learn"]
            )
        version = mlflow.register_model(logged.model_uri, "bench-model")
        if version.status != "READY":
            raise RuntimeError(f"register_model ended {version.status}")
        if repeat:
            timings.append(time.perf_counter() - start)
    return {"log_model_to_ready_s": statistics.median(timings), "log_model_to_ready_all_s": timings}


def measure(url: str, calls: int, metric_calls: int, runs: int, model_repeats: int) -> dict[str, Any]:
    mlflow.set_tracking_uri(url)
    client = MlflowClient(tracking_uri=url)
    return {
        "version": mlflow.__version__,
        "log_batch_values_per_s": bench_log_batch(client, calls),
        "log_metric_calls_per_s": bench_log_metric(client, metric_calls),
        **bench_search(client, runs),
        **bench_log_model(model_repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fill = commands.add_parser("populate")
    fill.add_argument("--store-uri", required=True)
    fill.add_argument("--runs", type=int, required=True)
    fill.add_argument("--steps", type=int, required=True)
    timed = commands.add_parser("measure")
    timed.add_argument("--url", required=True)
    timed.add_argument("--calls", type=int, required=True, help="log_batch calls of 1,000 values")
    timed.add_argument("--metric-calls", type=int, required=True, help="log_metric calls")
    timed.add_argument("--runs", type=int, required=True, help="runs of the populated experiment")
    timed.add_argument("--model-repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON result
        if args.command == "populate":
            result = populate(args.store_uri, args.runs, args.steps)
        else:
            result = measure(args.url, args.calls, args.metric_calls, args.runs, args.model_repeats)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
