"""Data validation against pandera, in the same run: a contract of 23 rules-sets (ranges,
allowed values, uniqueness, nulls) over 1M rows, on valid data and on data with known
violations. loopline also validates the Parquet file straight from disk (out of core).

    python -m benchmarks.validation [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.run_all import PEER_PYTHON, ensure_peers_venv, run_json

HERE = Path(__file__).resolve().parent


def ours(path: str, from_file: bool) -> dict[str, Any]:
    """Runs in a subprocess of its own: see main()."""
    import pandas as pd

    from benchmarks.drift_data import memory_mark, peak_since_mark
    from benchmarks.validation_data import RULES
    from loopline.data.validation import validate
    from loopline.specs.contract import Contract

    contract = Contract.parse({"columns": RULES})
    data: Any = Path(path) if from_file else pd.read_parquet(path)
    before = memory_mark()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        report = validate(data, contract)
        best = min(best, time.perf_counter() - start)
    failures: Counter[str] = Counter()
    for failure in report.failures:
        kind = "range" if failure.check in ("min", "max") else failure.check
        failures[f"{failure.column}:{kind}"] += failure.count
    return {"seconds": best, "rss_before_mb": before, "peak_mb": peak_since_mark(), "failures": failures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # internal: FILE frame|file
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(ours(args.measure[0], args.measure[1] == "file")))
        return
    ensure_peers_venv()
    from benchmarks.validation_data import save

    paths = save(args.rows, tempfile.mkdtemp(prefix="loopline-validation-"))
    print(f"{args.rows:,} rows x 23 columns; best of 3; memory: peak MB above the loaded data")
    print(
        f"{'data':>8} {'loopline s':>10} {'pandera s':>9} {'speed-up':>8} {'MB (ours / theirs)':>19}", end=""
    )
    print(f" {'from file: s, MB':>17}  same failures")
    for label, path in zip(("valid", "broken"), paths, strict=True):
        mine = run_json([sys.executable, "-m", "benchmarks.validation", "--measure", path, "frame"])
        on_disk = run_json([sys.executable, "-m", "benchmarks.validation", "--measure", path, "file"])
        theirs = run_json([str(PEER_PYTHON), str(HERE / "peers" / "pandera_validation.py"), path])
        same = mine["failures"] == theirs["failures"] == on_disk["failures"]
        above = [r["peak_mb"] - r["rss_before_mb"] for r in (mine, theirs, on_disk)]
        print(
            f"{label:>8} {mine['seconds']:>10.3f} {theirs['seconds']:>9.3f} "
            f"{theirs['seconds'] / mine['seconds']:>7.1f}x {f'{above[0]:.0f} / {above[1]:.0f}':>19}",
            end="",
        )
        from_file = f"{on_disk['seconds']:.3f}, {above[2]:.0f}"
        print(f" {from_file:>17}  {'yes' if same else 'NO'}")
        if not same:
            for side, found in (("loopline", mine), ("from file", on_disk), ("pandera", theirs)):
                print(f"    {side}: {found['failures']}")


if __name__ == "__main__":
    main()
