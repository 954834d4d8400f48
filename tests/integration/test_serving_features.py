"""Online features in serving, over real HTTP on 127.0.0.1: a deployment declares features of a
materialized view; the server looks them up by each request's entity keys, joins them to the
rows before the model and logs them with the inputs; defaults, refusals that name the feature
and the key, refs refused at create time, and re-materialized values served without a restart.
Online stores: SQLite in the test's folder, and the real Redis at 127.0.0.1:6379/15."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from loopline.artifacts import BlobStore
from loopline.core.errors import InvalidInput, NotFound
from loopline.core.features import Entity, Feature, FeatureView
from loopline.core.traffic import FeatureDeclaration, TrafficPolicy
from loopline.feature_store.service import FeatureService
from loopline.serving.deployments import DeploymentService
from loopline.serving.export import dockerfile, manifests
from loopline.specs.monitor import MonitorSpec
from loopline.store import MetadataStore
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import wait_until
from tests.integration.serving_helpers import RunningServer, running_server

REDIS = "redis://127.0.0.1:6379/15"
CUSTOMER = Entity("customer", ("customer_id",))
# customer -> (spend, orders), as materialized up to February 2024
HELD = {1: (50.0, 3), 2: (20.0, 1), 7: (5.5, 9)}


@dataclass
class World:
    backends: Backends
    features: FeatureService
    deployments: DeploymentService
    model: LinearRegression
    view: str  # the view's name: its own per test, the Redis database being shared
    source: Path

    def expected(self, rows: list[tuple[int, float, int]]) -> np.ndarray:
        """The model on the joined frame: (age, spend, orders) per row."""
        frame = pd.DataFrame(rows, columns=["age", "spend", "orders"])
        predicted: np.ndarray = self.model.predict(frame)
        return predicted

    def declare(self, *refs: str, **defaults: object) -> TrafficPolicy:
        return TrafficPolicy.single("models:/scorer/1").with_features(FeatureDeclaration.of(refs, defaults))

    def log(self, deployment: str, rows: int) -> pd.DataFrame:
        """The deployment's prediction log, once the server has written its `rows` rows."""
        found: list[pd.DataFrame] = []

        def written() -> bool:
            if not self.backends.tables.files("predictions"):
                return False
            frame = self.backends.tables.read("predictions", [("deployment", deployment)]).to_pandas()
            found[:] = [frame]
            return len(frame) >= rows

        wait_until(written)
        return found[0]


def _write(path: Path, rows: list[tuple[int, str, str, float, int]]) -> None:
    frame = pd.DataFrame(rows, columns=["customer_id", "event_ts", "created_ts", "spend", "orders"])
    for column in ("event_ts", "created_ts"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    frame.to_parquet(path)


@pytest.fixture(params=["sqlite", "redis"])
def world(
    request: pytest.FixtureRequest, store: MetadataStore, tmp_path: Path, tracker: Tracker
) -> Iterator[World]:
    online = REDIS if request.param == "redis" else None  # None: SQLite beside the artifacts
    backends = Backends(store, BlobStore(str(tmp_path / "artifacts")), online_store=online)
    services = backends.services(local_owner())
    view = f"customer_stats_{uuid.uuid4().hex[:8]}"
    source = tmp_path / "stats.parquet"
    _write(source, [(c, "2024-01-10", "2024-01-10", s, o) for c, (s, o) in HELD.items()])
    services.features.apply(
        [CUSTOMER],
        [FeatureView(name=view, entities=("customer",), source=str(source), event_time="event_ts",
                     created_time="created_ts",
                     features=(Feature("spend", "float64"), Feature("orders", "int64")))],
    )  # fmt: skip
    services.features.materialize(view, end=datetime(2024, 2, 1, tzinfo=UTC))
    if online is not None:  # the values are in Redis, where the server will read them
        import redis

        with redis.Redis.from_url(REDIS) as client:
            assert len(list(client.scan_iter(f"loopline:features:{view}@1:*"))) >= len(HELD)

    train = pd.DataFrame({"age": [20, 35, 50, 62, 41], "spend": [1.0, 40.0, 7.5, 80.0, 22.0],
                          "orders": [0, 4, 1, 8, 2]})  # fmt: skip
    model = LinearRegression().fit(train, 0.5 * train["age"] + 2 * train["spend"] - 3 * train["orders"])
    with tracker.start_run("features") as run:
        run.log_model(model, "scorer", input_example=train.head(2))
    yield World(backends, services.features, services.deployments, model, view, source)
    services.features.close()
    if online is not None:
        import redis

        with redis.Redis.from_url(REDIS) as client:
            for key in client.scan_iter(f"loopline:features:{view}@*"):
                client.delete(key)


@pytest.fixture
def server(world: World) -> Iterator[RunningServer]:
    """`scoring` declares both features with defaults; `strict` declares them without any."""
    v = world.view
    world.deployments.create("scoring", world.declare(f"{v}:spend", f"{v}:orders", spend=0.0, orders=0))
    world.deployments.create("strict", world.declare(f"{v}:*"))
    with running_server(world.backends, ("scoring", "strict")) as running:
        yield running


def test_features_are_joined_before_the_model_and_logged_with_the_inputs(
    world: World, server: RunningServer
) -> None:
    with server.client() as client:
        # customer_id is no input of the model: consumed by the lookup, never refused as extra
        answer = client.post(
            "/v1/deployments/strict/predict",
            json={"records": [{"customer_id": 1, "age": 30}, {"customer_id": 7, "age": 55}]},
            headers={"x-request-id": "joined"},
        )
        assert answer.status_code == 200, answer.text
        expected = world.expected([(30, *HELD[1]), (55, *HELD[7])])
        assert np.allclose(answer.json()["predictions"], expected)

        # columns form, a repeated customer, and a CSV body: the same join
        columns = client.post(
            "/v1/deployments/strict/predict",
            json={"columns": ["age", "customer_id"], "data": [[44, 2], [45, 2], [46, 1]]},
        )
        assert columns.status_code == 200, columns.text
        expected = world.expected([(44, *HELD[2]), (45, *HELD[2]), (46, *HELD[1])])
        assert np.allclose(columns.json()["predictions"], expected)
        csv = client.post(
            "/v1/deployments/strict/predict",
            content=b"customer_id,age\n7,21\n",
            headers={"content-type": "text/csv"},
        )
        assert csv.status_code == 200, csv.text
        assert np.allclose(csv.json()["predictions"], world.expected([(21, *HELD[7])]))

        # a row that gives a feature itself keeps its value; the other row's is looked up
        given = client.post(
            "/v1/deployments/strict/predict",
            json={"records": [{"customer_id": 1, "age": 30, "spend": 999.0}, {"customer_id": 2, "age": 30}]},
        )
        assert given.status_code == 200, given.text
        expected = world.expected([(30, 999.0, HELD[1][1]), (30, *HELD[2])])
        assert np.allclose(given.json()["predictions"], expected)

        # a field that is neither an input nor the deployment's is still refused
        extra = client.post(
            "/v1/deployments/strict/predict", json={"records": [{"customer_id": 1, "age": 30, "colour": 2}]}
        )
        assert extra.status_code == 422 and "colour" in extra.json()["error"]["message"]
    assert server.app.log.errors == []  # type: ignore[attr-defined]
    log = world.log("strict", 8)
    assert {"input.age", "input.spend", "input.orders"} <= set(log.columns)
    assert "input.customer_id" not in log.columns  # a join key, not a model input
    joined = log[log["request_id"] == "joined"].sort_values("row")
    assert joined["input.spend"].tolist() == [HELD[1][0], HELD[7][0]]
    assert joined["input.orders"].tolist() == [HELD[1][1], HELD[7][1]]
    assert joined["input.age"].tolist() == [30, 55]
    assert joined["entity.customer_id"].tolist() == [1, 7]  # what the features were looked up by


def test_a_monitor_watches_freshness_nulls_and_training_serving_skew(
    world: World, server: RunningServer
) -> None:
    """Served values are compared with offline retrieval for the same customer and time: the
    row whose caller gave its own spend is skew; the others match."""
    with server.client() as client:
        rows = [{"customer_id": c, "age": 30 + c} for c in (1, 2, 7, 1, 2, 7)]
        rows[0]["spend"] = 999.0
        answer = client.post("/v1/deployments/strict/predict", json={"records": rows})
        assert answer.status_code == 200, answer.text
    world.log("strict", len(rows))
    services = world.backends.services(local_owner())
    reference = pd.DataFrame(
        {"age": [20, 35, 50, 62], "spend": [1.0, 40.0, 7.5, 80.0], "orders": [0, 4, 1, 8]}
    )
    services.datasets.register("reference", reference)
    spec = MonitorSpec.parse({"alerts": [{"name": "skew", "value": "features.skew", "above": 0.1}]})
    services.monitors.create("watch", "strict", "reference", spec=spec)
    outcome = services.monitors.run("watch")
    values = outcome.run.values
    assert values["features.skew"] == pytest.approx(1 / 6)
    assert (values["features.stale_views"], values["features.null_share"]) == (0.0, 0.0)
    assert values["features.age_ratio"] is None  # the view has no TTL
    skew = services.monitors.run_record("watch", outcome.run.id).details["features"]["skew"]
    assert skew["mismatches"] == {"spend": 1}
    assert skew["examples"] == [
        {"entity": {"customer_id": 1}, "feature": "spend", "served": 999.0, "offline": 50.0}
    ]
    assert [a.rule for a in outcome.opened] == ["skew"]
    report = services.monitors.report_html("watch")
    assert "Online features" in report and f"{world.view}@1" in report
    assert "1 of 6 sampled rows" in report and "<td>999</td><td>50</td>" in report
    with pytest.raises(InvalidInput, match=r"features\.skw"):  # a misspelt value is refused, as any
        services.monitors.create(
            "typo", "strict", "reference",
            spec=MonitorSpec.parse({"alerts": [{"name": "x", "value": "features.skw", "above": 0}]}),
        )  # fmt: skip


def test_a_missing_entity_takes_the_default_or_is_refused_naming_feature_and_key(
    world: World, server: RunningServer
) -> None:
    with server.client() as client:
        defaulted = client.post(
            "/v1/deployments/scoring/predict",
            json={"records": [{"customer_id": 42, "age": 33}, {"customer_id": 1, "age": 33}]},
        )
        assert defaulted.status_code == 200, defaulted.text
        assert np.allclose(defaulted.json()["predictions"], world.expected([(33, 0.0, 0), (33, *HELD[1])]))

        refused = client.post(
            "/v1/deployments/strict/predict",
            json={"records": [{"customer_id": 1, "age": 33}, {"customer_id": 42, "age": 33}]},
        )
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["message"].startswith(
            f"feature 'spend' of view {world.view} has no value for customer_id=42 and no default"
        )
        assert len(error["details"]["problems"]) == 2  # spend and orders, each named

        no_key = client.post("/v1/deployments/strict/predict", json={"records": [{"age": 33}]})
        assert no_key.status_code == 422
        assert "lacks field 'customer_id'" in no_key.json()["error"]["message"]
        one_row_without = client.post(
            "/v1/deployments/scoring/predict",
            json={"records": [{"customer_id": 1, "age": 3}, {"age": 4}]},
        )
        assert one_row_without.status_code == 422
        assert "row 1 lacks field 'customer_id'" in one_row_without.json()["error"]["message"]
        null_key = client.post(
            "/v1/deployments/scoring/predict", json={"records": [{"customer_id": None, "age": 4}]}
        )
        assert null_key.status_code == 422 and "'customer_id' is null" in null_key.json()["error"]["message"]
    logged = world.log("scoring", 2).sort_values("row")
    assert logged["input.spend"].tolist() == [0.0, HELD[1][0]]  # the default is logged


def test_refs_are_checked_when_the_policy_is_set(world: World) -> None:
    v, deployments = world.view, world.deployments
    with pytest.raises(NotFound, match="feature view 'nowhere' does not exist"):
        deployments.create("bad", world.declare("nowhere:spend"))
    with pytest.raises(NotFound, match=f"{v}@1 has no feature 'colour'"):
        deployments.create("bad", world.declare(f"{v}:spend", f"{v}:colour"))
    with pytest.raises(NotFound, match=f"version 9 of feature view '{v}'"):
        deployments.create("bad", world.declare(f"{v}@9:spend"))
    with pytest.raises(InvalidInput, match="default 'tenure' is of no declared feature"):
        deployments.create("bad", world.declare(f"{v}:spend", tenure=1))
    with pytest.raises(InvalidInput, match=r"default of feature 'orders' \('many'\) is not a int64"):
        deployments.create("bad", world.declare(f"{v}:*", orders="many"))
    with pytest.raises(InvalidInput, match="is not view:feature"):
        deployments.create("bad", world.declare("spend"))
    with pytest.raises(NotFound):
        deployments.get("bad")  # nothing was created

    created = deployments.create("good", world.declare(f"{v}:spend", spend=1.5))
    assert created.policy["features"] == {"refs": [f"{v}:spend"], "defaults": {"spend": 1.5}}
    with pytest.raises(NotFound, match="no feature 'colour'"):
        deployments.set_traffic("good", world.declare(f"{v}:colour"))
    # a change of traffic alone (as the retraining loop makes) keeps the declared features
    kept = deployments.set_traffic("good", TrafficPolicy.single("models:/scorer/1"), "traffic only")
    assert kept.policy["features"]["refs"] == [f"{v}:spend"]
    removed = deployments.set_traffic("good", world.declare(), "no features")
    assert "features" not in removed.policy
    back = deployments.rollback("good")
    assert back.policy["features"]["refs"] == [f"{v}:spend"]
    assert [("features" in r.policy) for r in deployments.revisions("good")] == [True, True, False, True]
    assert "features" in deployments.policy("good").describe()

    # its pods need the online store the replicas share
    container = manifests(back, image="x", replicas=1, max_replicas=2)[0]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert "LOOPLINE_ONLINE_STORE" in [e["name"] for e in container["env"]]
    assert "redis" in dockerfile(back)


def test_new_values_and_a_changed_declaration_are_served_without_a_restart(
    world: World, server: RunningServer
) -> None:
    def spend_of(customer: int, deployment: str = "scoring") -> float:
        answer = client.post(
            f"/v1/deployments/{deployment}/predict", json={"records": [{"customer_id": customer, "age": 0}]}
        )
        assert answer.status_code == 200, answer.text
        # age 0 and orders known: the prediction gives spend back
        prediction = float(answer.json()["predictions"][0])
        orders = HELD.get(customer, (0.0, 0))[1]
        intercept = float(world.model.intercept_)
        coef = dict(zip(["age", "spend", "orders"], world.model.coef_, strict=True))
        return (prediction - intercept - coef["orders"] * orders) / coef["spend"]

    with server.client() as client:
        assert spend_of(2) == pytest.approx(20.0)
        _write(world.source, [(2, "2024-02-10", "2024-02-10", 75.0, HELD[2][1])])
        world.features.materialize(world.view, end=datetime(2024, 3, 1, tzinfo=UTC))
        assert spend_of(2) == pytest.approx(75.0)  # read per request: no restart, no refresh

        runtime = server.app.runtimes["scoring"]  # type: ignore[attr-defined]
        assert runtime.state is not None and runtime.state.features is not None
        before = runtime.state.features
        assert spend_of(42) == pytest.approx(0.0)
        v = world.view
        world.deployments.set_traffic(
            "scoring", world.declare(f"{v}:spend", f"{v}:orders", spend=12.5, orders=0), "a new default"
        )
        wait_until(lambda: spend_of(42) == pytest.approx(12.5), timeout=30)
        assert runtime.state.features is not before and before.closed  # the old lookup is closed
