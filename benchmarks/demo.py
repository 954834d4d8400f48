"""`loopline demo` end to end: wall time of the whole command in a fresh process, as a
user runs it (interpreter start and imports included), over a few runs.

    python -m benchmarks.demo [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    loopline = Path(sys.executable).parent / "loopline"
    times = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="loopline-demo-") as home:
            start = time.perf_counter()
            done = subprocess.run([str(loopline), "--home", home, "demo"], capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if done.returncode != 0 or "promoted" not in done.stdout:
                raise SystemExit(f"the demo failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    runs = ", ".join(f"{t:.1f}" for t in times)
    print(f"loopline demo, whole loop to a promoted retrained model: median {statistics.median(times):.1f} s")
    print(f"  runs: {runs} s (target: under 120 s on this 2-core machine)")


if __name__ == "__main__":
    main()
