"""A deployment's prediction-log policy, served for real on 127.0.0.1: after traffic, no byte
of any Parquet file of the log holds a raw value of a dropped, masked or hashed input, while
the other columns are intact; policies naming unknown columns, or hashing without a key, are
refused (4xx over REST); the policy is versioned with the deployment's traffic."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from loopline.artifacts import BlobStore
from loopline.client.connection import ServerConnection
from loopline.client.services import RemoteServices
from loopline.core.errors import InvalidInput
from loopline.core.features import Entity, Feature, FeatureView
from loopline.core.personal_data import MASK, LogPolicy, keyed_hash
from loopline.core.traffic import FeatureDeclaration, TrafficPolicy
from loopline.serving.export import manifests
from loopline.serving.runtime import ServingOptions
from loopline.serving.server import ServerConfig, build_app
from loopline.store import MetadataStore
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, bootstrap_admin, local_owner
from tests.conftest import Invoke, free_port
from tests.integration.api_helpers import running_api
from tests.integration.serving_helpers import cancer_data, register_cancer_models, uvicorn_in_thread

KEY = b"a-hash-key-of-at-least-32-characters!"
POLICY = LogPolicy(drop=("card",), mask=("phone",), hash=("email",))


def customers(rows: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "email": [f"client{i}@example.com" for i in range(rows)],
            "phone": [f"+1 202-555-{i:04d}" for i in range(1000, 1000 + rows)],
            "card": [f"40000000000{i:05d}" for i in range(rows)],
            "age": range(20, 20 + rows),
        }
    )


@pytest.fixture
def backends(store: MetadataStore, blobs: BlobStore) -> Backends:
    return Backends(store, blobs, pii_hash_key=KEY)


@pytest.fixture
def churn(tracker: Tracker) -> pd.DataFrame:
    """A model over personal columns: unseen emails and cards are ignored, unseen phones refused."""
    frame = customers()
    model = make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["email", "card"]),
            (OneHotEncoder(handle_unknown="error"), ["phone"]),
            remainder="passthrough",
        ),
        LogisticRegression(),
    ).fit(frame, [0, 1] * (len(frame) // 2))
    with tracker.start_run("churn") as run:
        run.log_model(model, "churn", input_example=frame.head())
    return frame


@contextlib.contextmanager
def serving(backends: Backends, name: str) -> Iterator[httpx.Client]:
    """The prediction server of deployment `name`, holding the hash key; its log is written
    when the block ends."""
    port = free_port()
    config = ServerConfig(
        (name,), port=port, serving=ServingOptions(refresh_interval=0.2), log_flush_interval=0.2
    )
    app = build_app(backends.services(local_owner()), backends.tables, config, hash_key=backends.pii_hash_key)
    with (
        uvicorn_in_thread(app, port, lifespan="on"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        yield client


def _log_files(blobs: BlobStore) -> list[Path]:
    files = sorted(Path(blobs.url, "tables").rglob("*.parquet"))
    assert files, "the log wrote nothing"
    return files


def _logged(blobs: BlobStore, table: str) -> pd.DataFrame:
    frames = [pq.read_table(f).to_pandas() for f in _log_files(blobs) if f"/{table}/" in f.as_posix()]
    return pd.concat(frames, ignore_index=True)


def test_a_masked_deployments_log_holds_no_raw_value_of_its_treated_columns(
    churn: pd.DataFrame, backends: Backends, blobs: BlobStore
) -> None:
    deployments = backends.services(local_owner()).deployments
    deployments.create("churn", TrafficPolicy.single("models:/churn/1").with_log(POLICY))
    with serving(backends, "churn") as client:
        for start in range(0, 40, 8):
            rows = churn.iloc[start : start + 8].to_dict("records")
            assert client.post("/v1/deployments/churn/predict", json={"records": rows}).status_code == 200
        unseen = {**churn.iloc[0].to_dict(), "phone": "+1 202-555-9876", "email": "stranger@example.org"}
        refused = client.post("/v1/deployments/churn/predict", json={"records": [unseen]})
        assert refused.status_code == 422 and "+1 202-555-9876" in refused.text  # the caller's own value
    secrets = [*churn["email"], *churn["phone"], *churn["card"], "+1 202-555-9876", "stranger@example.org"]
    for file in _log_files(blobs):
        raw = file.read_bytes()
        assert not [s for s in secrets if s.encode() in raw], file
    logged = _logged(blobs, "predictions").sort_values("input.age")
    assert len(logged) == 40 and "input.card" not in logged.columns
    assert logged["input.phone"].tolist() == [MASK] * 40
    assert logged["input.email"].tolist() == [keyed_hash(KEY, e) for e in churn["email"]]
    assert logged["input.age"].tolist() == churn["age"].tolist()  # untreated inputs intact
    errors = _logged(blobs, "errors")
    assert errors["status"].tolist() == [422] and MASK in errors["error"].iloc[0]


def test_the_log_of_a_numeric_model_masks_and_drops_on_its_fast_path_and_never_hashes_numbers(
    tracker: Tracker, backends: Backends, blobs: BlobStore
) -> None:
    register_cancer_models(tracker)
    features, _ = cancer_data()
    deployments = backends.services(local_owner()).deployments
    single = TrafficPolicy.single("models:/cancer/1")
    with pytest.raises(InvalidInput, match=r"cannot hash \['mean texture'\].*as double"):
        deployments.create("cancer", single.with_log(LogPolicy(hash=("mean texture",))))
    deployments.create("cancer", single.with_log(LogPolicy(drop=("mean area",), mask=("mean radius",))))
    rows = features.head(10)
    with serving(backends, "cancer") as client:
        answer = client.post("/v1/deployments/cancer/predict", json={"records": rows.to_dict("records")})
        assert answer.status_code == 200
    logged = _logged(blobs, "predictions").sort_values("row")
    assert "input.mean area" not in logged.columns
    assert logged["input.mean radius"].isna().all()
    assert logged["input.mean perimeter"].tolist() == rows["mean perimeter"].tolist()


def test_bad_policies_are_refused_and_a_policy_stays_with_the_deployments_traffic(
    churn: pd.DataFrame, backends: Backends, store: MetadataStore, blobs: BlobStore
) -> None:
    deployments = backends.services(local_owner()).deployments
    single = TrafficPolicy.single("models:/churn/1")
    with pytest.raises(InvalidInput, match=r"names columns \['ssn'\] that no model"):
        deployments.create("churn", single.with_log(LogPolicy(mask=("ssn",))))
    keyless = Backends(store, blobs).services(local_owner()).deployments
    with pytest.raises(InvalidInput, match="LOOPLINE_PII_HASH_KEY"):
        keyless.create("churn", single.with_log(LogPolicy(hash=("email",))))
    deployments.create("churn", single.with_log(POLICY))
    pods = manifests(deployments.get("churn"), image="serve", replicas=1, max_replicas=2)[0]["spec"][
        "template"
    ]
    assert "LOOPLINE_PII_HASH_KEY" in [e["name"] for e in pods["spec"]["containers"][0]["env"]]
    moved = deployments.set_traffic("churn", single, reason="only traffic moves")
    assert TrafficPolicy.from_dict(moved.policy).log == POLICY  # kept: never back to raw by accident
    cleared = deployments.set_traffic("churn", single.with_log(LogPolicy()))
    assert TrafficPolicy.from_dict(cleared.policy).log_treatments is None
    back = deployments.rollback("churn")
    assert TrafficPolicy.from_dict(back.policy).log == POLICY
    secret = bootstrap_admin(backends)
    with running_api(backends) as url:
        body = {"policy": {**single.to_dict(), "log": {"hash": ["nickname"]}}, "reason": ""}
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as client:
            answer = client.put("/api/v1/deployments/churn/traffic", json=body)
            assert answer.status_code == 400 and "nickname" in answer.json()["error"]["message"]
            malformed = {"policy": {**single.to_dict(), "log": {"hash": "email"}}}
            assert client.put("/api/v1/deployments/churn/traffic", json=malformed).status_code == 400
        remote = RemoteServices(ServerConnection(url, secret)).deployments
        changed = remote.set_traffic("churn", single.with_log(LogPolicy(mask=("email", "phone"))))
        assert TrafficPolicy.from_dict(changed.policy).log == LogPolicy(mask=("email", "phone"))


def test_the_cli_sets_shows_and_clears_a_log_policy(
    churn: pd.DataFrame, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_PII_HASH_KEY", KEY.decode())
    code, out, err = cli("deployments", "create", "churn", "--model", "models:/churn/1", "--log-drop", "card",
                         "--log-mask", "phone", "--log-hash", "email")  # fmt: skip
    assert code == 0, err
    assert "log drops card; masks phone; hashes email" in out
    code, out, _ = cli("deployments", "set-traffic", "churn", "--model", "models:/churn@champion")
    assert code != 0  # no such alias: refused, the policy unchanged
    code, out, _ = cli("deployments", "set-traffic", "churn", "--model", "models:/churn/1")
    assert code == 0 and "hashes email" in out  # kept
    code, out, _ = cli("deployments", "show", "churn")
    assert "prediction log drops card; masks phone; hashes email" in out
    code, _, err = cli(
        "deployments", "set-traffic", "churn", "--model", "models:/churn/1", "--log-mask", "plan"
    )
    assert code != 0 and "plan" in err and "Traceback" not in err
    code, out, _ = cli(
        "deployments", "set-traffic", "churn", "--model", "models:/churn/1", "--log-everything"
    )
    assert code == 0 and "log" not in out.split(":", 1)[1]


def test_a_join_key_of_online_features_is_treated_in_its_entity_column(
    tracker: Tracker, backends: Backends, blobs: BlobStore, tmp_path: Path
) -> None:
    from sklearn.linear_model import LinearRegression

    services = backends.services(local_owner())
    stats = pd.DataFrame({"customer_id": [101, 202], "spend": [50.0, 20.0]})
    stats["event_ts"] = stats["created_ts"] = pd.Timestamp("2024-01-10", tz="UTC")
    stats.to_parquet(tmp_path / "stats.parquet")
    view = FeatureView(
        name="stats",
        entities=("customer",),
        source=str(tmp_path / "stats.parquet"),
        event_time="event_ts",
        created_time="created_ts",
        features=(Feature("spend", "float64"),),
    )
    services.features.apply([Entity("customer", ("customer_id",))], [view])
    services.features.materialize("stats", end=datetime(2024, 2, 1, tzinfo=UTC))
    train = pd.DataFrame({"age": [20.0, 35.0, 50.0], "spend": [1.0, 40.0, 7.5]})
    with tracker.start_run("features") as run:
        run.log_model(LinearRegression().fit(train, [1.0, 2.0, 3.0]), "scorer", input_example=train)
    policy = TrafficPolicy.single("models:/scorer/1").with_features(FeatureDeclaration.of(["stats:spend"]))
    services.deployments.create("scoring", policy.with_log(LogPolicy(mask=("customer_id",))))  # a join key
    with serving(backends, "scoring") as client:
        rows = [{"customer_id": 101, "age": 30.0}, {"customer_id": 202, "age": 40.0}]
        assert client.post("/v1/deployments/scoring/predict", json={"records": rows}).status_code == 200
    services.features.close()
    logged = _logged(blobs, "predictions")
    assert logged["entity.customer_id"].isna().all() and logged["input.spend"].tolist() == [50.0, 20.0]
