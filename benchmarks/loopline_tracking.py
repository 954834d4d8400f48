"""loopline's side of the tracking benchmark; mirrors peers/mlflow_tracking.py.

    .venv/bin/python -m benchmarks.loopline_tracking --workdir DIR [--store-uri URI] \\
        [--runs 100000] [--calls 200000] [--batch-values 100000] [--search-repeats 20]

Prints one JSON object on stdout. The store is created (and migrated) before anything is
timed, as for MLflow. The same population as the MLflow side (``random.Random(42)``:
model, depth, auc, loss per run) is inserted straight into loopline's tables in one
transaction, with the rows that `start_run` + `log_params` + `log_metrics` would write.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

import loopline as ll
from benchmarks.workload import (
    BATCH_CHUNK,
    SEARCH_FILTER,
    SEARCH_MAX_RESULTS,
    SEARCH_ORDER_BY,
    Population,
    generate_population,
    median_subprocess_s,
)
from loopline.core.entities import Metric
from loopline.store.schema import latest_metrics, metrics, params, runs, tags


def log(message: str) -> None:
    print(f"[loopline_tracking] {message}", file=sys.stderr, flush=True)


def bench_log_metric(calls: int) -> float:
    start = time.perf_counter()
    with ll.start_run("log_metric") as run:
        for i in range(calls):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
    return calls / (time.perf_counter() - start)  # includes the flush at the end of the run


def bench_log_batch(values: int, chunk: int) -> float:
    service = ll.tracking_service()
    run = service.start_run("log_batch")
    now = int(time.time() * 1000)
    start = time.perf_counter()
    for offset in range(0, values, chunk):
        batch = [Metric("loss", 1.0 / (i + 1), i, now) for i in range(offset, min(offset + chunk, values))]
        service.log_batch(run.id, batch)
    return values / (time.perf_counter() - start)


def populate(population: Population) -> int:
    """Insert finished runs directly, as the SDK would have stored them."""
    service = ll.tracking_service()
    experiment = service.create_experiment("search")
    db = service._store.db  # the benchmark fills the tables below the service, once
    user = service.principal.name
    base_ms = int(time.time() * 1000) - 1000 * len(population)
    first_pk = db.read(lambda conn: conn.execute(select(func.max(runs.c.pk))).scalar()) or 0
    rows: dict[str, list[dict[str, Any]]] = {"runs": [], "params": [], "tags": [], "metrics": []}
    for i, (model, depth, auc, loss) in enumerate(population):
        pk = first_pk + i + 1
        start_ms = base_ms + 1000 * i
        rows["runs"].append(
            {
                "pk": pk,
                "id": uuid.uuid4().hex,
                "experiment_id": experiment.id,
                "name": f"run-{i}",
                "status": "FINISHED",
                "start_time": start_ms,
                "end_time": start_ms + 500,
                "created_by": user,
                "entry_point": "populate",
                "environment": "{}",
            }
        )
        rows["params"] += [
            {"run_pk": pk, "key": "model", "value": model},
            {"run_pk": pk, "key": "depth", "value": str(depth)},
        ]
        rows["tags"] += [
            {"run_pk": pk, "key": "source", "value": "populate"},
            {"run_pk": pk, "key": "team", "value": "bench"},
        ]
        for key, value in (("auc", auc), ("loss", loss)):
            rows["metrics"].append(
                {"run_pk": pk, "key": key, "value": value, "step": 0, "timestamp": start_ms + 400}
            )
    tables = {"runs": runs, "params": params, "tags": tags, "metrics": metrics}
    with db.engine.begin() as conn:
        for name, table in tables.items():
            conn.execute(insert(table), rows[name])
        conn.execute(insert(latest_metrics), rows["metrics"])
        if db.dialect == "postgresql":
            # explicit keys bypassed the sequence; later runs must continue after them
            conn.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('runs', 'pk'), (SELECT max(pk) FROM runs))"
            )
            # autovacuum analyzes tables that grow; a bulk load in one transaction outruns it.
            conn.exec_driver_sql("ANALYZE runs, params, tags, latest_metrics")
    return experiment.id


def bench_search(experiment_id: int, repeats: int) -> dict[str, Any]:
    def search() -> ll.RunPage:
        return ll.tracking_service().search_runs(
            experiment_id, filter=SEARCH_FILTER, order_by=SEARCH_ORDER_BY, max_results=SEARCH_MAX_RESULTS
        )

    page = search()  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        search()
        timings.append((time.perf_counter() - start) * 1000)
    deciles = statistics.quantiles(timings, n=10, method="inclusive")
    return {
        "search_runs_p50_ms": statistics.median(timings),
        "search_runs_p90_ms": deciles[8],
        "search_runs_result_count": len(page),
        "search_runs_first_auc": page[0].metrics["auc"] if len(page) else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--store-uri", default=None, help="default: SQLite in the workdir")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--batch-values", type=int, default=100_000)
    parser.add_argument("--search-repeats", type=int, default=20)
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    ll.configure(home=args.workdir, store_uri=args.store_uri)
    ll.tracking_service().list_experiments()  # the store exists before any clock starts
    result: dict[str, Any] = {
        "loopline_version": ll.__version__,
        "store": ll.tracking_service()._store.db.dialect,
        "runs": args.runs,
        "calls": args.calls,
        "batch_values": args.batch_values,
    }
    log(f"log_metric x {args.calls}")
    result["log_metric_calls_per_s"] = bench_log_metric(args.calls)
    log(f"log_batch of {args.batch_values} values in chunks of {BATCH_CHUNK}")
    result["log_batch_values_per_s"] = bench_log_batch(args.batch_values, BATCH_CHUNK)
    log(f"log_batch of {args.batch_values} values in one call")
    result["log_batch_one_call_values_per_s"] = bench_log_batch(args.batch_values, args.batch_values)
    log(f"populating {args.runs} runs")
    started = time.perf_counter()
    experiment_id = populate(generate_population(args.runs))
    log(f"populated in {time.perf_counter() - started:.1f}s; searching")
    result.update(bench_search(experiment_id, args.search_repeats))
    result["import_loopline_s"] = median_subprocess_s("import loopline")
    result["python_startup_s"] = median_subprocess_s("pass")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
