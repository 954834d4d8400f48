"""Peer side of benchmarks/features.py: the same training set through Feast's file offline
store (its default), in Feast's own virtualenv.

    benchmarks/.feast-venv/bin/python benchmarks/peers/feast_historical.py WORKDIR

Reads WORKDIR/features.parquet and WORKDIR/entities.parquet, writes WORKDIR/feast.parquet and
prints one JSON object as the last line of stdout.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import feast
import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource
from feast.repo_config import RepoConfig
from feast.types import Float64

FEATURES = ("f0", "f1", "f2", "f3")


def main() -> dict[str, object]:
    workdir = Path(sys.argv[1])
    config = RepoConfig(
        project="bench",
        registry=str(workdir / "feast-registry.db"),
        provider="local",
        offline_store={"type": "file"},
        online_store={"type": "sqlite", "path": str(workdir / "feast-online.db")},
        entity_key_serialization_version=3,
    )
    store = FeatureStore(config=config)
    customer = Entity(name="customer", join_keys=["customer_id"])
    source = FileSource(
        path=str(workdir / "features.parquet"),
        timestamp_field="event_ts",
        created_timestamp_column="created_ts",
    )
    view = FeatureView(
        name="stats",
        entities=[customer],
        ttl=timedelta(days=3650),
        schema=[Field(name=f, dtype=Float64) for f in FEATURES],
        source=source,
    )
    store.apply([customer, view])
    entity_df = pd.read_parquet(workdir / "entities.parquet")
    start = time.perf_counter()
    frame = store.get_historical_features(
        entity_df=entity_df, features=[f"stats:{f}" for f in FEATURES]
    ).to_df()
    seconds = time.perf_counter() - start
    frame.to_parquet(workdir / "feast.parquet")
    return {"seconds": seconds, "version": feast.__version__, "rows": len(frame)}


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON result
        result = main()
    print(json.dumps(result))
