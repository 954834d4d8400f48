"""Peer benchmark: pandera validating the validation benchmark's frames (lazy, so every
failure is collected, as loopline's report does).

    benchmarks/.peers-venv/bin/python benchmarks/peers/pandera_validation.py FILE

Prints one JSON object: seconds (best of 3), resident memory before and the peak during,
and the failing rows per (column, rule).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pandera.pandas as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for benchmarks.*
from benchmarks.drift_data import memory_mark, peak_since_mark
from benchmarks.validation_data import RULES

TYPES = {"number": float, "string": str, "integer": int}


def column(rule: dict[str, object]) -> pa.Column:
    checks = []
    if "min" in rule:
        checks.append(pa.Check.in_range(rule["min"], rule["max"]))
    if "allowed" in rule:
        checks.append(pa.Check.isin(rule["allowed"]))
    return pa.Column(
        TYPES[str(rule["type"])], checks, nullable=bool(rule["nullable"]), unique=bool(rule.get("unique"))
    )


schema = pa.DataFrameSchema({name: column(rule) for name, rule in RULES.items()})
data = pd.read_parquet(sys.argv[1])
before = memory_mark()
best = float("inf")
failures: Counter[str] = Counter()
for _ in range(3):
    start = time.perf_counter()
    try:
        schema.validate(data, lazy=True)
        cases = None
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
    best = min(best, time.perf_counter() - start)
if cases is not None:
    for (name, check), count in cases.groupby(["column", "check"]).size().items():
        kind = (
            "range" if check.startswith("in_range") else "allowed" if check.startswith("isin") else "unique"
        )
        failures[f"{name}:{kind}"] += int(count)
print(
    json.dumps({"seconds": best, "rss_before_mb": before, "peak_mb": peak_since_mark(), "failures": failures})
)
