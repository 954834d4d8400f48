"""Point-in-time training sets: the newest value known at each row's time (event time and
created time both at or before it, within the TTL), a left join in the entity rows' order,
several views at once, and clear errors for bad definitions and bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopline.core.errors import Conflict, InvalidInput, NotFound
from loopline.core.features import Entity, Feature, FeatureView, parse_definitions
from loopline.feature_store.service import FeatureService
from loopline.store import MetadataStore
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import seeded_random

CUSTOMER = Entity("customer", ("customer_id",))


def _t(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def features(store: MetadataStore, tmp_path: Path) -> FeatureService:
    from loopline.artifacts import BlobStore

    return Backends(store, BlobStore(str(tmp_path / "artifacts"))).services(local_owner()).features


def _stats(tmp_path: Path) -> Path:
    """Customer 1's spend over time, with a value backfilled later (created 01-10 for 01-03)
    and a correction of 01-05 written on 01-06."""
    rows = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 2],
            "event_ts": [
                _t("2024-01-01"),
                _t("2024-01-05"),
                _t("2024-01-03"),
                _t("2024-01-05"),
                _t("2024-01-02"),
            ],
            "created_ts": [
                _t("2024-01-01"),
                _t("2024-01-05"),
                _t("2024-01-10"),
                _t("2024-01-06"),
                _t("2024-01-02"),
            ],
            "spend": [10.0, 50.0, 30.0, 55.0, 20.0],
            "orders": [1, 5, 3, 5, 2],
        }
    )
    path = tmp_path / "stats.parquet"
    rows.to_parquet(path)
    return path


def _view(path: Path, **changes: object) -> FeatureView:
    fields = {
        "name": "customer_stats", "entities": ("customer",), "source": str(path), "event_time": "event_ts",
        "created_time": "created_ts", "features": (Feature("spend", "float64"), Feature("orders", "int64")),
    } | changes  # fmt: skip
    return FeatureView(**fields)  # type: ignore[arg-type]


def test_each_row_gets_what_was_known_at_its_time(features: FeatureService, tmp_path: Path) -> None:
    features.apply([CUSTOMER], [_view(_stats(tmp_path))])
    rows = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 3, 1],
            "event_timestamp": [
                _t("2024-01-04"),
                _t("2024-01-05 12:00"),
                _t("2024-01-11"),
                _t("2024-01-03"),
                _t("2024-01-03"),
                _t("2023-12-31"),
            ],
            "label": [0, 1, 0, 1, 0, 1],
        }
    )
    table = features.get_historical(rows, ["customer_stats:spend", "customer_stats:orders"])
    assert table is not None and table.schema.field("orders").type == pa.int64()
    found = table.to_pandas()
    assert list(found.columns) == ["customer_id", "event_timestamp", "label", "spend", "orders"]
    assert list(found["label"]) == [0, 1, 0, 1, 0, 1]  # every row, in order
    # 01-04: the backfill of 01-03 was written on 01-10, so only 01-01 was known
    # 01-05 12:00: 01-05 as first written (the correction came on 01-06)
    # 01-11: the correction wins over the first 01-05 value (newer created time), not the backfill
    assert found["spend"].tolist()[:4] == [10.0, 50.0, 55.0, 20.0]
    assert found["spend"].isna().tolist()[4:] == [True, True]  # no such customer; before any value


def test_a_value_older_than_the_ttl_is_null(features: FeatureService, tmp_path: Path) -> None:
    features.apply([CUSTOMER], [_view(_stats(tmp_path), ttl_s="2d")])
    rows = pd.DataFrame({"customer_id": [1, 1], "event_timestamp": [_t("2024-01-02"), _t("2024-01-04")]})
    found = features.get_historical(rows, ["customer_stats:spend"]).to_pandas()
    assert found["spend"].tolist()[0] == 10.0 and np.isnan(
        found["spend"].tolist()[1]
    )  # 01-01 + 2 days < 01-04


def test_several_views_and_times_without_a_zone_are_utc(features: FeatureService, tmp_path: Path) -> None:
    clicks = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "at": pd.to_datetime(["2024-01-02 10:00", "2024-01-02 11:00"]),
            "clicks": [7, 9],
        }
    )  # naive: UTC
    clicks.to_csv(tmp_path / "clicks.csv", index=False)
    click_view = FeatureView(
        "clicks", ("customer",), str(tmp_path / "clicks.csv"), "at", (Feature("clicks", "int64"),)
    )
    features.apply([CUSTOMER], [_view(_stats(tmp_path)), click_view])
    rows = pd.DataFrame(
        {"customer_id": [1, 2], "event_timestamp": pd.to_datetime(["2024-01-02 10:30", "2024-01-02 10:30"])}
    )
    found = features.get_historical(rows, ["customer_stats:*", "clicks:clicks"]).to_pandas()
    assert found[["spend", "orders"]].to_numpy().tolist() == [[10.0, 1], [20.0, 2]]
    assert found["clicks"].tolist()[0] == 7 and pd.isna(found["clicks"].tolist()[1])  # 11:00 UTC is later


def test_a_changed_definition_is_a_new_version_and_versions_can_be_pinned(
    features: FeatureService, tmp_path: Path
) -> None:
    source = _stats(tmp_path)
    first = features.apply([CUSTOMER], [_view(source)])
    assert first.views == {"customer_stats@1": "created"}
    assert features.apply([CUSTOMER], [_view(source)]).views == {"customer_stats@1": "unchanged"}
    shaped = _view(source, transform="SELECT * REPLACE (spend * 2 AS spend) FROM source")
    assert features.apply([], [shaped]).views == {"customer_stats@2": "new version"}
    rows = pd.DataFrame({"customer_id": [2], "event_timestamp": [_t("2024-02-01")]})
    pinned = features.get_historical(rows, ["customer_stats@1:spend"]).to_pandas()
    newest = features.get_historical(rows, ["customer_stats:spend"]).to_pandas()
    assert (pinned["spend"][0], newest["spend"][0]) == (20.0, 40.0)
    assert [v.version for v in features.versions("customer_stats")] == [1, 2]


def test_a_training_set_is_a_dataset_whose_lineage_names_the_views(
    features: FeatureService, store: MetadataStore, tmp_path: Path
) -> None:
    features.apply([CUSTOMER], [_view(_stats(tmp_path))])
    rows = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [_t("2024-01-11"), _t("2024-01-03")]})
    version = features.register_training_set("churn-training", rows, ["customer_stats:spend"])
    assert version.rows == 2
    edges = store.lineage.edges_touching([("dataset", version.digest)])
    assert [(e.src_kind, e.src_key) for e in edges] == [("feature_view", "customer_stats@1")]


def test_definitions_from_yaml() -> None:
    entities, views = parse_definitions(
        {
            "entities": [{"name": "customer", "join_keys": ["customer_id"]}],
            "feature_views": [
                {
                    "name": "stats",
                    "entities": ["customer"],
                    "source": "s.parquet",
                    "event_time": "ts",
                    "ttl": "30d",
                    "features": {"spend": "float64"},
                }
            ],
        }
    )
    assert entities == [CUSTOMER] and views[0].ttl_s == 30 * 86_400


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ttl_s": 0}, "ttl must be more than zero"),
        ({"ttl_s": "0d"}, "ttl must be more than zero"),
        ({"event_time": "event ts"}, "must be an identifier"),
        ({"features": (("spend", "decimal"),)}, "has type 'decimal'"),
        ({"source": "postgresql://db/x"}, "give the SQL query"),
    ],
)
def test_bad_definitions_are_refused_by_name(tmp_path: Path, change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        _view(tmp_path / "s.parquet", **change)


def test_bad_data_is_refused_with_the_view_and_column(features: FeatureService, tmp_path: Path) -> None:
    source = _stats(tmp_path)
    rows = pd.DataFrame({"customer_id": [1, None], "event_timestamp": [_t("2024-01-04"), _t("2024-01-04")]})
    features.apply([CUSTOMER], [_view(source)])
    with pytest.raises(InvalidInput, match=r"column 'customer_id' is null at row 1"):
        features.get_historical(rows, ["customer_stats:spend"])
    good = rows.dropna()
    with pytest.raises(NotFound, match="feature view 'nope' does not exist"):
        features.get_historical(good, ["nope:spend"])
    with pytest.raises(NotFound, match=r"customer_stats@1 has no feature 'tenure'"):
        features.get_historical(good, ["customer_stats:tenure"])
    with pytest.raises(InvalidInput, match="no time column 'event_timestamp'"):
        features.get_historical(good.rename(columns={"event_timestamp": "ts"}), ["customer_stats:spend"])

    keyless = pd.read_parquet(source).drop(columns=["customer_id"])
    keyless.to_parquet(source)
    with pytest.raises(
        InvalidInput, match=r"customer_stats@1: its source has no join key column 'customer_id'"
    ):
        features.get_historical(good, ["customer_stats:spend"])
    retyped = pd.read_parquet(tmp_path / "stats.parquet").assign(customer_id=1, spend="lots")
    retyped.to_parquet(source)
    with pytest.raises(
        InvalidInput, match=r"column 'spend' is VARCHAR in its source, but the view declares it float64"
    ):
        features.get_historical(good, ["customer_stats:spend"])
    with pytest.raises(Conflict, match="is joined by"):
        features.apply([Entity("customer", ("customer_id", "region"))])


def test_a_deep_history_matches_a_plain_reference(features: FeatureService, tmp_path: Path) -> None:
    """Random bi-temporal rows against a direct computation of the rule."""
    rng = seeded_random()
    base = pd.Timestamp("2024-01-01", tz="UTC")
    rows = []
    for _ in range(400):
        event = base + pd.Timedelta(hours=rng.randrange(0, 500))
        created = event + pd.Timedelta(hours=rng.choice([0, 0, 0, rng.randrange(1, 200)]))
        rows.append((rng.randrange(5), event, created, rng.random()))
    frame = pd.DataFrame(rows, columns=["customer_id", "event_ts", "created_ts", "spend"])
    frame.to_parquet(tmp_path / "deep.parquet")
    spend = (Feature("spend", "float64"),)
    source = str(tmp_path / "deep.parquet")
    view = FeatureView(
        "deep", ("customer",), source, "event_ts", spend, ttl_s=100 * 3600, created_time="created_ts"
    )
    features.apply([CUSTOMER], [view])
    asks = pd.DataFrame(
        {
            "customer_id": [rng.randrange(6) for _ in range(300)],
            "event_timestamp": [base + pd.Timedelta(hours=rng.randrange(0, 700)) for _ in range(300)],
        }
    )
    found = features.get_historical(asks, ["deep:spend"]).to_pandas()["spend"].tolist()
    for (key, at), got in zip(asks.itertuples(index=False), found, strict=True):
        known = frame[(frame.customer_id == key) & (frame.event_ts <= at) & (frame.created_ts <= at)]
        known = known.sort_values(["event_ts", "created_ts"], kind="stable")  # full ties: the last row
        expected = None
        if len(known) and at - known.iloc[-1].event_ts <= pd.Timedelta(hours=100):
            expected = known.iloc[-1].spend
        assert (expected is None and pd.isna(got)) or got == expected, (key, at, got, expected)


def test_the_command_line_applies_lists_and_builds_a_training_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from loopline.cli.main import run

    source = _stats(tmp_path)
    definitions = tmp_path / "features.yaml"
    definitions.write_text(
        "entities:\n  - name: customer\n    join_keys: [customer_id]\n"
        f"feature_views:\n  - name: customer_stats\n    entities: [customer]\n    source: {source}\n"
        "    event_time: event_ts\n    created_time: created_ts\n    ttl: 30d\n"
        "    features: {spend: float64, orders: int64}\n"
    )
    home = ["--home", str(tmp_path / "home")]
    assert run([*home, "features", "apply", str(definitions), "--json"]) == 0
    applied = json.loads(capsys.readouterr().out)
    assert {(r["name"], r["result"]) for r in applied} == {
        ("customer", "applied"),
        ("customer_stats@1", "created"),
    }
    assert run([*home, "features", "list", "--json"]) == 0
    assert [v["ref"] for v in json.loads(capsys.readouterr().out)] == ["customer_stats@1"]
    rows = tmp_path / "rows.csv"
    pd.DataFrame(
        {"customer_id": [1, 2], "event_timestamp": ["2024-01-11T00:00:00Z", "2024-01-03T00:00:00Z"]}
    ).to_csv(rows, index=False)
    out = tmp_path / "training.parquet"
    code = run(
        [*home, "features", "historical", "--entities", str(rows), "-f", "customer_stats:*", "-o", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    assert pd.read_parquet(out)[["spend", "orders"]].to_numpy().tolist() == [[55.0, 5], [20.0, 2]]
    assert (
        run([*home, "features", "historical", "--entities", str(rows), "-f", "nope:x", "-o", str(out)]) == 1
    )
    assert "feature view 'nope' does not exist" in capsys.readouterr().err


def test_a_glob_of_files_is_one_source(features: FeatureService, tmp_path: Path) -> None:
    rows = pd.read_parquet(_stats(tmp_path))
    rows.iloc[:2].to_parquet(tmp_path / "part-0.parquet")
    rows.iloc[2:].to_parquet(tmp_path / "part-1.parquet")
    features.apply([CUSTOMER], [_view(tmp_path / "part-*.parquet")])
    asked = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [_t("2024-01-11"), _t("2024-01-03")]})
    table = features.get_historical(asked, ["customer_stats:spend"])
    assert table is not None and table.column("spend").to_pylist() == [55.0, 20.0]


def test_a_sql_source_is_read_through_its_query(features: FeatureService, tmp_path: Path) -> None:
    import sqlite3

    database = tmp_path / "warehouse.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE stats (customer_id INTEGER, event_ts TEXT, spend REAL)")
        conn.executemany(
            "INSERT INTO stats VALUES (?, ?, ?)",
            [
                (1, "2024-01-01 00:00:00", 10.0),
                (1, "2024-01-05 00:00:00", 50.0),
                (2, "2024-01-02 00:00:00", 20.0),
            ],
        )
    view = FeatureView(
        "warehouse", ("customer",), f"sqlite:///{database}", "event_ts", (Feature("spend", "float64"),),
        query="SELECT customer_id, event_ts, spend FROM stats",  # text times: the transform types them
        transform="SELECT * REPLACE (CAST(event_ts AS TIMESTAMP) AS event_ts) FROM source",
    )  # fmt: skip
    features.apply([CUSTOMER], [view])
    rows = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [_t("2024-01-04"), _t("2024-01-04")]})
    table = features.get_historical(rows, ["warehouse:spend"])
    assert table is not None and table.column("spend").to_pylist() == [10.0, 20.0]
