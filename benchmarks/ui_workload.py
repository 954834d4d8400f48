"""The data of the UI benchmark, identical on both sides: standard library only, so that the
MLflow side (in its own virtualenv) imports it as well."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

SEED = 42
PARAMS = 20
METRICS = 20
PAGE = 50
SHOWN_COLUMNS = [f"param:p{j}" for j in range(5)] + [f"metric:m{j}" for j in range(5)]
SORT_METRIC = "m0"
SERIES_KEY = "loss"
BASE_MS = 1_750_000_000_000


def run_values(i: int, rng: random.Random) -> tuple[dict[str, str], dict[str, float]]:
    """Run `i`'s params p0..p19 and latest metrics m0..m19."""
    params = {f"p{j}": f"v{(i * 7 + j) % 13}" for j in range(PARAMS)}
    metrics = {f"m{j}": rng.random() for j in range(METRICS)}
    return params, metrics


def series(points: int) -> Iterator[tuple[int, float, int]]:
    """(step, value, timestamp ms) of the long series: a noisy decay."""
    rng = random.Random(SEED)
    for step in range(points):
        yield step, math.exp(-step / (points / 5)) + 0.05 * rng.random(), BASE_MS + step * 10
