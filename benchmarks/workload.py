"""The workload both sides of the tracking benchmark run: standard library only, so that
the MLflow side (in its own virtualenv) imports it as well."""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time

MODELS = ("rf", "gbm", "lr", "svm")
SEED = 42
BATCH_CHUNK = 1000  # MLflow's MAX_METRICS_PER_BATCH; both sides log in calls of this size
SEARCH_FILTER = "metrics.auc > 0.9 and params.model = 'rf'"
SEARCH_ORDER_BY = ["metrics.auc DESC"]
SEARCH_MAX_RESULTS = 100

Population = list[tuple[str, int, float, float]]  # (model, depth, auc, loss) per run


def generate_population(n: int, seed: int = SEED) -> Population:
    rng = random.Random(seed)
    return [(rng.choice(MODELS), rng.randint(1, 10), rng.random(), rng.random()) for _ in range(n)]


def median_subprocess_s(code: str, repeats: int = 3) -> float:
    """Median wall time of a fresh `python -c code`."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)
