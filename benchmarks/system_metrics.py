"""What system metrics cost a training run: the same CPU-bound training three ways.

    python -m benchmarks.system_metrics [--seconds 5]

A numpy SGD on synthetic data (linear regression, mini-batches), the same number of
epochs each time: without a run, in a tracked run that logs the loss per epoch, and in
the same run with `system_metrics=True` sampling every second. On a local store in a
temporary folder, created (and psutil imported) before anything is timed; the overhead is
the third wall time against the second. Then the cost of one sample, taken flat out.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

import loopline as ll
from loopline import _sdk
from loopline.tracking.system_metrics import SystemMetricsSampler

ROWS, FEATURES, BATCH = 20_000, 64, 128
INTERVAL_S = 1.0


def make_data(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Features and a noisy linear target."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((ROWS, FEATURES))
    y = x @ rng.standard_normal(FEATURES) + 0.1 * rng.standard_normal(ROWS)
    return x, y


def train(x: np.ndarray, y: np.ndarray, epochs: int, log: Callable[[float, int], None] | None) -> float:
    """Mini-batch SGD on squared error; `log(loss, epoch)` after each epoch. Returns the last loss."""
    weights = np.zeros(FEATURES)
    loss = math.inf
    for epoch in range(epochs):
        for start in range(0, ROWS, BATCH):
            xb, yb = x[start : start + BATCH], y[start : start + BATCH]
            weights -= 0.01 * (xb.T @ (xb @ weights - yb)) / len(yb)
        loss = float(np.mean((x @ weights - y) ** 2))
        if log is not None:
            log(loss, epoch)
    return loss


class _Counter:
    """Counts samples and keeps none."""

    def __init__(self) -> None:
        self.samples = 0

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, timestamp: int | None = None) -> None:
        self.samples += 1


def sample_cost_s(seconds: float = 1.0) -> float:
    """Wall time of one sample, from a sampler run flat out (an upper bound: it includes the
    thread's wake-ups)."""
    counter = _Counter()
    sampler = SystemMetricsSampler(counter, 1e-6).start()
    time.sleep(seconds)
    sampler.stop()
    return seconds / max(1, counter.samples)


def measure(seconds_of_training: float = 5.0, rounds: int = 5) -> dict[str, Any]:
    """Wall and CPU times (s) of the same training without a run, in a run, and in a run
    with system metrics, each summed over `rounds` interleaved rounds (so that a machine
    busy with something else slows all three alike); the samples logged; the overhead of
    system metrics (a fraction of the run's wall time); the cost of one sample."""
    x, y = make_data()
    train(x, y, 20, None)  # numpy's and the caches' warm-up
    calibration, start = 0, time.perf_counter()
    while time.perf_counter() - start < 1.0:
        train(x, y, 10, None)
        calibration += 10
    epoch_s = (time.perf_counter() - start) / calibration
    epochs = max(1, round(seconds_of_training / rounds / epoch_s))

    variants = ("no_run", "run", "run_with_system_metrics")
    totals = {f"{variant}_{clock}": 0.0 for variant in variants for clock in ("s", "cpu_s")}
    samples = 0
    with tempfile.TemporaryDirectory(prefix="loopline-bench-") as home:
        ll.configure(home=home)
        try:
            # the store's creation and psutil's import happen once per process, not per run
            with ll.start_run("warm-up", system_metrics=True) as run:
                run.log_metric("loss", 1.0)
            for _ in range(rounds):
                for variant in variants:
                    start, start_cpu = time.perf_counter(), time.process_time()
                    if variant == "no_run":
                        train(x, y, epochs, None)
                    else:
                        with ll.start_run(
                            "train",
                            system_metrics=variant == "run_with_system_metrics",
                            system_metrics_interval_s=INTERVAL_S,
                        ) as run:
                            train(x, y, epochs, lambda loss, epoch: run.log_metric("loss", loss, step=epoch))
                    totals[f"{variant}_s"] += time.perf_counter() - start
                    totals[f"{variant}_cpu_s"] += time.process_time() - start_cpu
                samples += len(ll.tracking_service().metric_history(run.id, "system/cpu_percent"))
        finally:
            _sdk.reset()
    return {
        "epochs": epochs * rounds,
        "rounds": rounds,
        **totals,
        "samples": samples,
        "overhead": totals["run_with_system_metrics_s"] / totals["run_s"] - 1,
        "sample_cost_s": sample_cost_s(),
    }


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="training time of each variant")
    args = parser.parse_args()
    result = measure(args.seconds)
    print(
        f"numpy SGD, {ROWS:,} x {FEATURES}, {result['epochs']} epochs in {result['rounds']} interleaved "
        f"rounds, local SQLite store; system metrics every {INTERVAL_S:g} s"
    )
    print(f"{'':34} {'wall, s':>8} {'vs run':>8} {'CPU, s':>8} {'vs run':>8}")
    rows = (
        ("no run", "no_run"),
        ("run (loss per epoch)", "run"),
        (f"run + system metrics ({result['samples']} samples)", "run_with_system_metrics"),
    )
    for label, variant in rows:
        wall, cpu = result[f"{variant}_s"], result[f"{variant}_cpu_s"]
        print(
            f"{label:34} {wall:>8.2f} {wall / result['run_s'] - 1:>+8.1%}"
            f" {cpu:>8.2f} {cpu / result['run_cpu_s'] - 1:>+8.1%}"
        )
    print(f"overhead of system metrics: {result['overhead']:+.1%} of the run's wall time")
    cost_ms = result["sample_cost_s"] * 1000
    share = cost_ms / (INTERVAL_S * 1000)
    print(f"one sample: {cost_ms:.2f} ms, {share:.3%} of a core at one sample per {INTERVAL_S:g} s")


if __name__ == "__main__":
    main()
