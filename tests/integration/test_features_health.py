"""Feature health: freshness of each view's online values against its TTL (on every online
store), and training/serving skew found by comparing served values with offline ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from loopline.core.errors import InvalidInput
from loopline.core.features import Feature
from loopline.feature_store.service import FeatureService
from loopline.store import MetadataStore
from tests.integration.test_features_online import CUSTOMER, _service, _view, _write


def test_freshness_is_the_newest_materialized_value_against_the_ttl(
    store: MetadataStore, tmp_path: Path, online: str | None
) -> None:
    features = _service(store, tmp_path, online)
    now = datetime.now(UTC)
    recent, old = (now - timedelta(hours=1)).isoformat(), (now - timedelta(days=3)).isoformat()
    fresh_source, stale_source = tmp_path / "fresh.parquet", tmp_path / "stale.parquet"
    _write(fresh_source, [(1, old, old, 1.0), (2, recent, recent, 2.0)])
    _write(stale_source, [(1, old, old, 1.0)])
    features.apply(
        [CUSTOMER],
        [
            _view(fresh_source, name="fresh", ttl_s="1d"),
            _view(stale_source, name="stale", ttl_s="1d"),
            _view(stale_source, name="never", ttl_s="1d"),
        ],
    )
    assert all(f.stale and f.newest_us is None for f in features.freshness())  # nothing materialized
    features.materialize("fresh")
    features.materialize("stale")
    found = {f.view: f for f in features.freshness()}
    assert found["fresh@1"].newest_us == int(datetime.fromisoformat(recent).timestamp() * 1e6)
    assert not found["fresh@1"].stale and 0.04 < found["fresh@1"].age_ratio < 0.05  # one hour of a day
    assert found["stale@1"].stale and found["stale@1"].age_ratio > 2.9
    assert found["never@1"].stale and found["never@1"].watermark_us is None
    assert found["fresh@1"].watermark_us is not None
    assert [f.view for f in features.freshness(["fresh@1"])] == ["fresh@1"]


def _served(features: FeatureService, tmp_path: Path) -> pd.DataFrame:
    source = tmp_path / "stats.parquet"
    _write(source, [(1, "2024-01-01", "2024-01-01", 10.0), (1, "2024-01-05", "2024-01-05", 50.0),
                    (2, "2024-01-02", "2024-01-02", 20.0)])  # fmt: skip
    features.apply([CUSTOMER], [_view(source, features=(Feature("spend", "float64"),))])
    times = pd.to_datetime(["2024-01-03", "2024-01-06", "2024-01-03", "2024-01-03"], utc=True)
    return pd.DataFrame(
        {"customer_id": [1, 1, 2, 3], "event_timestamp": times, "spend": [10.0, 50.0, 20.0, 0.0]}
    )


def test_skew_is_none_when_served_values_are_the_offline_ones(store: MetadataStore, tmp_path: Path) -> None:
    features = _service(store, tmp_path, None)
    served = _served(features, tmp_path)
    skew = features.skew(served, ["stats:spend"], defaults={"spend": 0.0})  # customer 3: the default
    assert (skew.rows, skew.mismatched_rows, skew.rate, skew.mismatches) == (4, 0, 0.0, {})


def test_skew_names_each_served_value_that_differs(store: MetadataStore, tmp_path: Path) -> None:
    features = _service(store, tmp_path, None)
    served = _served(features, tmp_path)
    served.loc[1, "spend"] = 10.0  # served a stale value: offline, 50.0 was known by then
    skew = features.skew(served, ["stats:spend"])  # no default: customer 3's 0.0 differs from null
    assert (skew.mismatched_rows, skew.mismatches) == (2, {"spend": 2})
    assert skew.rate == 0.5
    assert skew.examples[0] == {
        "entity": {"customer_id": 1},
        "feature": "spend",
        "served": 10.0,
        "offline": 50.0,
    }
    assert skew.examples[1]["offline"] is None
    sampled = features.skew(served, ["stats:spend"], sample=2)
    assert sampled.rows == 2
    with pytest.raises(InvalidInput, match="lack column"):
        features.skew(served.drop(columns=["event_timestamp"]), ["stats:spend"])
