"""Does the store stay fast when it is big? 100,000 runs and 10,000,000 metric values.

    .venv/bin/python -m benchmarks.store_scale --workdir DIR [--store-uri URI]
        [--runs 100000] [--history 100]

Fills one experiment with `--runs` runs (the population of loopline_tracking.py) whose
`loss` metric has `--history` logged values each (10,000,000 rows at the defaults), then
measures, with everything in place: search latency, get_run, a run's metric history, and
logging throughput into the big store. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import loopline as ll
from benchmarks.loopline_tracking import (
    BATCH_CHUNK,
    SEARCH_FILTER,
    SEARCH_ORDER_BY,
    generate_population,
    populate,
)
from loopline.core.entities import Metric
from loopline.store.schema import metrics, runs


def log(message: str) -> None:
    print(f"[store_scale] {message}", file=sys.stderr, flush=True)


def timed_ms(action: Callable[[], object], repeats: int = 20) -> dict[str, float]:
    action()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        timings.append((time.perf_counter() - start) * 1000)
    return {"p50_ms": statistics.median(timings), "max_ms": max(timings)}


def fill_history(experiment_id: int, history: int) -> int:
    """`history` values of `loss` per run, inserted per chunk of runs like a busy fleet would."""
    service = ll.tracking_service()
    db = service._store.db
    pks = db.read(
        lambda conn: [
            pk
            for (pk,) in conn.execute(
                runs.select().with_only_columns(runs.c.pk).where(runs.c.experiment_id == experiment_id)
            )
        ]
    )
    rows = 0
    chunk: list[tuple[int, str, float, int, int]] = []
    for pk in pks:
        chunk.extend(
            (pk, "loss", 1.0 / (step + 1), step, 1_700_000_000_000 + step) for step in range(history)
        )
        if len(chunk) >= 500_000:
            rows += _insert(db, chunk)
            chunk = []
    return rows + (_insert(db, chunk) if chunk else 0)


def _insert(db: Any, chunk: list[tuple[int, str, float, int, int]]) -> int:
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            cursor = conn.connection.driver_connection.cursor()
            with cursor.copy(f"COPY {metrics.name} (run_pk, key, value, step, timestamp) FROM STDIN") as copy:
                for row in chunk:
                    copy.write_row(row)
        else:
            conn.exec_driver_sql(
                f"INSERT INTO {metrics.name} (run_pk, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)",
                chunk,
            )
    return len(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--store-uri", default=None)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=100)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    ll.configure(home=args.workdir, store_uri=args.store_uri)
    service = ll.tracking_service()

    log(f"populating {args.runs} runs")
    experiment_id = populate(generate_population(args.runs))
    log(f"adding {args.runs * args.history:,} metric values")
    started = time.perf_counter()
    total = fill_history(experiment_id, args.history) + 2 * args.runs
    log(f"filled in {time.perf_counter() - started:.0f}s")

    some_run = random.Random(1).choice(list(service.search_runs(experiment_id, max_results=1000)))
    result: dict[str, Any] = {"store": service._store.db.dialect, "runs": args.runs, "metric_values": total}
    result["search_runs"] = timed_ms(
        lambda: service.search_runs(experiment_id, filter=SEARCH_FILTER, order_by=SEARCH_ORDER_BY)
    )
    result["search_runs_newest_first"] = timed_ms(lambda: service.search_runs(experiment_id, max_results=100))
    result["get_run"] = timed_ms(lambda: service.get_run(some_run.id))
    result["metric_history_100_values"] = timed_ms(lambda: service.metric_history(some_run.id, "loss"))

    run = service.start_run(experiment_id)
    batch_start = time.perf_counter()
    for offset in range(0, 100_000, BATCH_CHUNK):
        service.log_batch(run.id, [Metric("loss", 0.5, i, 1) for i in range(offset, offset + BATCH_CHUNK)])
    result["log_batch_values_per_s_in_big_store"] = 100_000 / (time.perf_counter() - batch_start)
    with ll.start_run(experiment_id) as active:
        call_start = time.perf_counter()
        for i in range(100_000):
            active.log_metric("loss", 0.5, step=i)
    result["log_metric_calls_per_s_in_big_store"] = 100_000 / (time.perf_counter() - call_start)
    if result["store"] == "sqlite":
        result["database_mb"] = round((args.workdir / "loopline.db").stat().st_size / 2**20)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
