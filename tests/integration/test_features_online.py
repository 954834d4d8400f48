"""Online features: materialization writes each entity's newest values (incrementally, from
its watermark; a killed run resumes with no gap and no duplicate) to SQLite, to the real Redis
at 127.0.0.1:6379 or to PostgreSQL, and lookups read them back, None past the TTL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from loopline.artifacts import BlobStore
from loopline.core.errors import InvalidInput
from loopline.core.features import Entity, Feature, FeatureView
from loopline.feature_store.online import RedisOnlineStore
from loopline.feature_store.service import FeatureService
from loopline.store import MetadataStore, open_metadata_store
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import wait_until

CUSTOMER = Entity("customer", ("customer_id",))


def _t(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _service(store: MetadataStore, tmp_path: Path, online: str | None) -> FeatureService:
    url, _, prefix = (online or "").partition("#")
    backends = Backends(store, BlobStore(str(tmp_path / "artifacts")), online_store=url or None)
    service = backends.services(local_owner()).features
    if prefix:  # each test in its own keys of the shared Redis
        service._online = lambda: RedisOnlineStore(url, prefix=prefix)
    return service


def _write(path: Path, rows: list[tuple[int, str, str, float]]) -> None:
    frame = pd.DataFrame(rows, columns=["customer_id", "event_ts", "created_ts", "spend"])
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True, format="ISO8601")
    frame["created_ts"] = pd.to_datetime(frame["created_ts"], utc=True, format="ISO8601")
    frame.to_parquet(path)


def _view(source: Path, **changes: object) -> FeatureView:
    fields = {"name": "stats", "entities": ("customer",), "source": str(source), "event_time": "event_ts",
              "created_time": "created_ts", "features": (Feature("spend", "float64"),)} | changes  # fmt: skip
    return FeatureView(**fields)  # type: ignore[arg-type]


def test_materialize_then_look_up_incrementally(
    store: MetadataStore, tmp_path: Path, online: str | None
) -> None:
    features = _service(store, tmp_path, online)
    source = tmp_path / "stats.parquet"
    _write(source, [(1, "2024-01-01", "2024-01-01", 10.0), (1, "2024-01-05", "2024-01-05", 50.0),
                    (2, "2024-01-02", "2024-01-02", 20.0)])  # fmt: skip
    features.apply([CUSTOMER], [_view(source)])
    first = features.materialize("stats", end=datetime(2024, 2, 1, tzinfo=UTC))
    assert (first.keys_written, first.since_us) == (2, None)
    found = features.get_online({"customer_id": [1, 2, 3]}, ["stats:spend"])
    assert found == {"customer_id": [1, 2, 3], "spend": [50.0, 20.0, None]}

    # later rows: a newer value, and a backfill older than what is held (kept out)
    _write(source, [(1, "2024-01-05", "2024-01-05", 50.0), (1, "2024-02-03", "2024-02-03", 70.0),
                    (2, "2024-01-01", "2024-02-04", 5.0), (3, "2024-02-02", "2024-02-02", 30.0)])  # fmt: skip
    second = features.materialize("stats", end=datetime(2024, 3, 1, tzinfo=UTC))
    assert second.since_us == first.until_us and second.keys_written == 3  # only what became known since
    found = features.get_online({"customer_id": [1, 2, 3]}, ["stats:spend"])
    assert found["spend"] == [70.0, 20.0, 30.0]
    again = features.materialize("stats", end=datetime(2024, 3, 1, tzinfo=UTC))
    assert again.keys_written == 0


def test_values_past_the_ttl_are_none_and_bad_lookups_say_why(
    store: MetadataStore, tmp_path: Path, online: str | None
) -> None:
    features = _service(store, tmp_path, online)
    source = tmp_path / "stats.parquet"
    recent = datetime.now(UTC).isoformat()
    _write(source, [(1, "2020-01-01", "2020-01-01", 10.0), (2, recent, recent, 20.0)])
    features.apply([CUSTOMER], [_view(source, ttl_s="30d")])
    features.materialize("stats")
    assert features.get_online({"customer_id": [1, 2]}, ["stats:spend"])["spend"] == [None, 20.0]
    with pytest.raises(InvalidInput, match="looked up by 'customer_id'"):
        features.get_online({"id": [1]}, ["stats:spend"])
    with pytest.raises(InvalidInput, match="'customer_id' is null at position 1"):
        features.get_online({"customer_id": [1, None]}, ["stats:spend"])


def test_a_killed_materialization_resumes_without_gap_or_duplicate(tmp_path: Path) -> None:
    """SIGKILL while chunks are being written; the next run writes every key's newest value."""
    home = tmp_path / "home"
    source = tmp_path / "many.parquet"
    rows = 400_000
    frame = pd.DataFrame(
        {
            "customer_id": [i % 100_000 for i in range(rows)],
            "event_ts": pd.to_datetime([1_700_000_000 + i for i in range(rows)], unit="s", utc=True),
            "spend": [float(i) for i in range(rows)],
        }
    )
    frame.to_parquet(source)
    definitions = tmp_path / "features.yaml"
    definitions.write_text(
        "entities:\n  - {name: customer, join_keys: [customer_id]}\nfeature_views:\n"
        f"  - {{name: many, entities: [customer], source: '{source}', event_time: event_ts, "
        "features: {spend: float64}}\n"
    )
    base = [sys.executable, "-m", "loopline", "--home", str(home), "features"]
    subprocess.run([*base, "apply", str(definitions)], check=True, capture_output=True)
    online_db = home / "online-features.db"
    process = subprocess.Popen(
        [*base, "materialize", "many"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )

    def some_written() -> bool:
        assert process.poll() is None, "materialization ended before it was killed"
        import sqlite3

        try:
            with sqlite3.connect(online_db) as conn:
                return bool(conn.execute("SELECT count(*) FROM online_values").fetchone()[0])
        except sqlite3.OperationalError:
            return False

    wait_until(some_written, timeout=120)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    subprocess.run([*base, "materialize", "many"], check=True, capture_output=True)
    store = open_metadata_store(f"sqlite:///{home / 'loopline.db'}")
    try:
        service = Backends(store, BlobStore(str(home / "artifacts"))).services(local_owner()).features
        keys = list(range(0, 100_000, 997))
        found = service.get_online({"customer_id": keys}, ["many:spend"])["spend"]
        assert found == [float(300_000 + k) for k in keys]  # each key's last row
    finally:
        store.close()
    import sqlite3

    with sqlite3.connect(online_db) as conn:
        assert conn.execute("SELECT count(*) FROM online_values").fetchone()[0] == 100_000


def test_a_view_applied_anew_is_looked_up_at_its_new_version_at_once(
    store: MetadataStore, tmp_path: Path
) -> None:
    """get_online keeps resolved views for a few seconds; applying through the service drops them."""
    features = _service(store, tmp_path, None)
    source = tmp_path / "stats.parquet"
    _write(source, [(1, "2024-01-01", "2024-01-01", 10.0)])
    features.apply([CUSTOMER], [_view(source)])
    features.materialize("stats")
    assert features.get_online({"customer_id": [1]}, ["stats:spend"])["spend"] == [10.0]
    features.apply([CUSTOMER], [_view(source, ttl_s="1d")])  # version 2, not materialized yet
    assert features.get_online({"customer_id": [1]}, ["stats:spend"])["spend"] == [None]
    assert features.get_online({"customer_id": [1]}, ["stats@1:spend"])["spend"] == [10.0]


def test_many_keys_are_materialized_in_slices_with_the_same_result(
    store: MetadataStore, tmp_path: Path
) -> None:
    """Past `keys_per_pass` keys the aggregate runs over slices of the keys (flat memory): every
    key still gets its newest value, ties going to the later created time then the later row."""
    from loopline.feature_store.materialize import materialize
    from loopline.feature_store.online import SqliteOnlineStore
    from loopline.feature_store.sources import source_opener

    features = _service(store, tmp_path, None)
    source = tmp_path / "stats.parquet"
    rows = [
        (k, f"2024-01-0{1 + i}", f"2024-01-0{1 + i}", float(10 * k + i)) for k in range(500) for i in range(3)
    ]
    rows += [(7, "2024-01-03", "2024-01-05", -1.0)]  # same event time, created later: it wins
    _write(source, rows)
    features.apply([CUSTOMER], [_view(source)])
    view = features.view("stats")
    held = {}
    for name, per_pass in (("one", 1_000_000), ("sliced", 37)):
        online = SqliteOnlineStore(tmp_path / f"{name}.db")
        with source_opener(None) as open_source:
            done = materialize(view, open_source, online, keys_per_pass=per_pass)
        assert done.keys_written == 500
        held[name] = online.read("stats@1", [(k,) for k in range(500)])
        online.close()
    assert held["sliced"] == held["one"]
    assert [hit[1]["spend"] for hit in held["one"][:3]] == [2.0, 12.0, 22.0]
    assert held["one"][7][1]["spend"] == -1.0
