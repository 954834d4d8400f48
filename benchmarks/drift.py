"""Data drift: loopline against Evidently's DataDriftPreset, same frames, same run.

    .venv/bin/python -m benchmarks.drift [--rows 10000 100000 1000000]

20 numeric and 2 categorical columns, 5 numeric and 1 categorical shifted. The frames are
written to Parquet once; each side then runs in a fresh process per size: it reads both
files, marks its memory, and runs its drift check. Reported: the check's time, the peak
resident memory during the check (the data in memory included) and how much above the
loaded data that peak was. The floor is one numpy pass over the same numeric data.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run_all import PEER_PYTHON, ensure_peers_venv, run_json

HERE = Path(__file__).resolve().parent


def ours(reference_path: str, current_path: str) -> dict[str, object]:
    """Runs in a subprocess of its own: see main()."""
    import numpy as np
    import pandas as pd

    from benchmarks.drift_data import NUMERIC, memory_mark, peak_since_mark
    from loopline.monitoring import detect_drift

    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    before = memory_mark()
    start = time.perf_counter()
    result = detect_drift(reference, current)
    seconds = time.perf_counter() - start
    peak = peak_since_mark()
    numeric = [frame[c].to_numpy() for frame in (reference, current) for c in NUMERIC]
    start = time.perf_counter()
    for column in numeric:
        np.sum(column)
    return {
        "seconds": seconds,
        "floor_seconds": time.perf_counter() - start,
        "rss_before_mb": before,
        "peak_mb": peak,
        "drifted": sorted(result.drifted_columns),
        "scores": {c.column: c.statistic for c in result.columns},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--files", nargs=2, help=argparse.SUPPRESS)  # internal: measure loopline once
    args = parser.parse_args()
    if args.files:
        print(json.dumps(ours(*args.files)))
        return
    ensure_peers_venv()
    from benchmarks.drift_data import save

    directory = tempfile.mkdtemp(prefix="loopline-drift-")
    print(
        f"{'rows':>10} {'loopline s':>10} {'Evidently s':>11} {'speed-up':>8}"
        f" {'peak MB (ours / theirs)':>24}",
        end="",
    )
    print(f" {'above the data MB':>18} {'numpy pass s':>12}  same columns")
    for rows in args.rows:
        files = save(rows, directory)
        mine = run_json([sys.executable, "-m", "benchmarks.drift", "--files", *files])
        theirs = run_json([str(PEER_PYTHON), str(HERE / "peers" / "evidently_drift.py"), *files])
        same = mine["drifted"] == theirs["drifted"]
        gap = max(abs(mine["scores"][c] - theirs["scores"][c]) for c in theirs["scores"])
        ours_above = mine["peak_mb"] - mine["rss_before_mb"]
        theirs_above = theirs["peak_mb"] - theirs["rss_before_mb"]
        share = mine["peak_mb"] / theirs["peak_mb"]
        peaks = f"{mine['peak_mb']:.0f} / {theirs['peak_mb']:.0f} ({share:.0%})"
        speed = theirs["seconds"] / mine["seconds"]
        print(
            f"{rows:>10,} {mine['seconds']:>10.2f} {theirs['seconds']:>11.2f} {speed:>7.0f}x {peaks:>24}",
            end="",
        )
        print(f" {f'{ours_above:.0f} / {theirs_above:.0f}':>18} {mine['floor_seconds']:>12.3f}", end="")
        print(f"  {'yes' if same else 'NO'} (largest score difference {gap:.1e})")
        if not same:
            print(f"    loopline: {mine['drifted']}\n    Evidently: {theirs['drifted']}")
    print("targets at 1M rows: >= 20x faster, peak <= 1/3 of Evidently's, the same drifted columns")


if __name__ == "__main__":
    main()
