"""The workload both sides of the tracking benchmark run: standard library only, so that
the MLflow side (in its own virtualenv) imports it as well."""

from __future__ import annotations

import random
import socket
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


# --- model serving -------------------------------------------------------------------

PREDICT_CALLS = 2000
FEATURES = [f"f{i}" for i in range(10)]


def classification_data(rows: int = 2000) -> tuple[object, object]:
    """The same table on both sides: 10 numeric features, a binary label."""
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(rows, len(FEATURES), random_state=0)
    return pd.DataFrame(x, columns=FEATURES), y


def paired_call_us(bare: object, served: object, calls: int = PREDICT_CALLS) -> tuple[float, float]:
    """Median microseconds per call of `bare` and `served`, timed call by call in
    alternation so that both see the same machine: their difference is the overhead."""
    assert callable(bare) and callable(served)
    for _ in range(max(calls // 10, 20)):
        bare()
        served()
    bare_ns, served_ns = [], []
    for _ in range(calls):
        start = time.perf_counter_ns()
        bare()
        middle = time.perf_counter_ns()
        served()
        bare_ns.append(middle - start)
        served_ns.append(time.perf_counter_ns() - middle)
    return statistics.median(bare_ns) / 1000, statistics.median(served_ns) / 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
