"""Peer side of benchmarks/features.py --part online: Feast's `get_online_features`, in
process, on the same data as loopline, in Feast's own virtualenv.

    benchmarks/.feast-venv/bin/python benchmarks/peers/feast_online.py WORKDIR sqlite|redis

Reads WORKDIR/online.parquet (customer_id, event_ts, f0..f9), materializes it into Feast's
SQLite or Redis (db 14) online store, times lookups of 1 and 100 entities and prints one
JSON object as the last line of stdout.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feast
from feast import Entity, FeatureStore, FeatureView, Field, FileSource
from feast.repo_config import RepoConfig
from feast.types import Float64

FEATURES = tuple(f"f{i}" for i in range(10))
REDIS = "127.0.0.1:6379,db=14"


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(samples)
    return {q: ordered[int(len(ordered) * p)] * 1e3 for q, p in (("p50", 0.50), ("p99", 0.99))}


def main() -> dict[str, object]:
    workdir, kind = Path(sys.argv[1]), sys.argv[2]
    online = (
        {"type": "sqlite", "path": str(workdir / "feast-online.db")}
        if kind == "sqlite"
        else {"type": "redis", "connection_string": REDIS}
    )
    config = RepoConfig(
        project="bench",
        registry=str(workdir / f"feast-registry-{kind}.db"),
        provider="local",
        offline_store={"type": "file"},
        online_store=online,
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    customer = Entity(name="customer", join_keys=["customer_id"])
    source = FileSource(path=str(workdir / "online.parquet"), timestamp_field="event_ts")
    view = FeatureView(
        name="stats",
        entities=[customer],
        ttl=timedelta(days=3650),
        schema=[Field(name=f, dtype=Float64) for f in FEATURES],
        source=source,
    )
    store.apply([customer, view])
    start = time.perf_counter()
    store.materialize(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC))
    materialize_s = time.perf_counter() - start
    entities = int(sys.argv[3])
    features = [f"stats:{f}" for f in FEATURES]
    rng = random.Random(0)
    found: dict[str, object] = {"version": feast.__version__, "materialize_s": materialize_s}
    for size, calls in ((1, 3000), (100, 1000)):
        samples = []
        for i in range(calls + 200):
            rows = [{"customer_id": rng.randrange(entities)} for _ in range(size)]
            began = time.perf_counter()
            result = store.get_online_features(features=features, entity_rows=rows).to_dict()
            if i >= 200:  # after a warm-up
                samples.append(time.perf_counter() - began)
        assert len(result["f0"]) == size and result["f0"][0] is not None
        found[str(size)] = percentiles(samples)
    return found


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON result
        result = main()
    print(json.dumps(result))
