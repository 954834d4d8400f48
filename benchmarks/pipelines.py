"""Orchestration overhead: the same three-step pipeline of trivial steps through loopline
and through Prefect, each in a fresh process of its own, one after the other.

    python -m benchmarks.pipelines [--runs 30]

A pipeline run of empty steps measures nothing but the orchestration: for loopline a
tracked run per pipeline and per step, the step records, the outputs stored; for Prefect a
flow run and its task runs in its own (temporary, local) server. Reported per pipeline run
and per step (a third of it), uncached and with every step's output reused from the cache.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.run_all import PEER_PYTHON, ensure_peers_venv, run_json

HERE = Path(__file__).resolve().parent


def ours(runs: int) -> dict[str, Any]:
    """Runs in a subprocess of its own: see main()."""
    import loopline as ll

    @ll.step
    def first(n: int) -> int:
        return n

    @ll.step
    def second(x: int) -> int:
        return x + 1

    @ll.step
    def third(y: int) -> int:
        return y * 2

    @ll.pipeline
    def three(n: int = 1):  # type: ignore[no-untyped-def]
        return third(second(first(n)))

    ll.configure(home=tempfile.mkdtemp(prefix="loopline-bench-"))
    start = time.perf_counter()
    three.run(cache=False)
    first_run = time.perf_counter() - start

    def timed(cache: bool) -> list[float]:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            assert three.run(cache=cache).output() == 4
            times.append(time.perf_counter() - start)
        return times

    plain = timed(cache=False)
    three.run()  # fills the cache
    hits = timed(cache=True)
    return {
        "version": ll.__version__,
        "first_run_s": first_run,
        "uncached_s": statistics.median(plain),
        "cached_s": statistics.median(hits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--ours", action="store_true", help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.ours:
        print(json.dumps(ours(args.runs)))
        return
    ensure_peers_venv()
    mine = run_json([sys.executable, "-m", "benchmarks.pipelines", "--ours", "--runs", str(args.runs)])
    theirs = run_json([str(PEER_PYTHON), str(HERE / "peers" / "prefect_pipeline.py"), str(args.runs)])
    print(f"three-step pipeline of empty steps, median of {args.runs} runs each (SQLite stores, local)")
    print(f"{'':40} {'loopline':>10} {'Prefect ' + theirs['version']:>14} {'ratio':>8}")
    for key, label in (("uncached_s", "uncached"), ("cached_s", "every step cached")):
        for scale, unit in ((1, "per pipeline run, ms"), (3, "per step, ms")):
            ours_ms, theirs_ms = mine[key] * 1000 / scale, theirs[key] * 1000 / scale
            print(
                f"{label + ', ' + unit:40} {ours_ms:>10.1f} {theirs_ms:>14.1f} {ours_ms / theirs_ms:>7.3f}x"
            )
    print(f"{'first run (start-up), s':40} {mine['first_run_s']:>10.2f} {theirs['first_run_s']:>14.2f}")
    print("target: loopline's overhead per step <= 1/10 of the peer's (ratio <= 0.100x)")


if __name__ == "__main__":
    main()
