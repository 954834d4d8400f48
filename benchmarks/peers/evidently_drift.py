"""Peer benchmark: Evidently's DataDriftPreset on the drift benchmark's frames.

    benchmarks/.peers-venv/bin/python benchmarks/peers/evidently_drift.py REFERENCE CURRENT

Reads the two Parquet files, then prints one JSON object: seconds for the report, the
resident memory before it and the peak during it, the drifted columns and their scores.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for benchmarks.drift_data
from benchmarks.drift_data import memory_mark, peak_since_mark

reference, current = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
before = memory_mark()
start = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
seconds = time.perf_counter() - start
peak = peak_since_mark()
scores, drifted = {}, []
for metric in snapshot.dict()["metrics"]:
    config = metric["config"]
    if config.get("type", "").endswith("ValueDrift"):
        column, value = config["column"], float(metric["value"])
        scores[column] = value
        if value >= config["threshold"]:
            drifted.append(column)
result = {"seconds": seconds, "rss_before_mb": before, "peak_mb": peak, "drifted": sorted(drifted)}
print(json.dumps({**result, "scores": scores}))
