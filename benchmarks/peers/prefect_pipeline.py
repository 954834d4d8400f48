"""Peer benchmark: the three-step pipeline of benchmarks/pipelines.py as a Prefect flow,
run locally (Prefect's own temporary server and SQLite database, as users get it).

    benchmarks/.peers-venv/bin/python benchmarks/peers/prefect_pipeline.py RUNS

Prints one JSON object: seconds per flow run, uncached (NO_CACHE) and cached (a policy
on the inputs and the task's source, so later flow runs reuse the results).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="prefect-bench-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"

import prefect
from prefect import flow, task
from prefect.cache_policies import INPUTS, NO_CACHE, TASK_SOURCE

CACHED = INPUTS + TASK_SOURCE


@task(cache_policy=NO_CACHE)
def first(n: int) -> int:
    return n


@task(cache_policy=NO_CACHE)
def second(x: int) -> int:
    return x + 1


@task(cache_policy=NO_CACHE)
def third(y: int) -> int:
    return y * 2


@flow
def uncached(n: int) -> int:
    return third(second(first(n)))


@task(cache_policy=CACHED, persist_result=True)
def cached_first(n: int) -> int:
    return n


@task(cache_policy=CACHED, persist_result=True)
def cached_second(x: int) -> int:
    return x + 1


@task(cache_policy=CACHED, persist_result=True)
def cached_third(y: int) -> int:
    return y * 2


@flow
def cached(n: int) -> int:
    return cached_third(cached_second(cached_first(n)))


def timed(fn: object, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        assert fn(1) == 4  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    runs = int(sys.argv[1])
    start = time.perf_counter()
    uncached(1)  # starts the temporary server: not counted below
    first_run = time.perf_counter() - start
    plain = timed(uncached, runs)
    cached(1)  # fills the cache
    hits = timed(cached, runs)
    print(
        json.dumps(
            {
                "version": prefect.__version__,
                "first_run_s": first_run,
                "uncached_s": statistics.median(plain),
                "cached_s": statistics.median(hits),
            }
        )
    )


if __name__ == "__main__":
    main()
