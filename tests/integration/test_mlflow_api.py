"""An unchanged MLflow client (the real `mlflow` package) against a real `loopline server`
on 127.0.0.1: what it logs becomes ordinary loopline runs, artifacts and model versions,
under loopline's roles and audit trail, and its errors are MLflow's."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from loopline.artifacts import BlobStore
from loopline.core.access import Role
from loopline.core.entities import RunStatus
from loopline.core.errors import PermissionDenied, UntrustedModel
from loopline.store import open_metadata_store
from loopline.wiring.backends import Backends, bootstrap_admin, local_owner
from tests.conftest import free_port

pytestmark = pytest.mark.slow
USERS = {"alice": Role.EDITOR, "vera": Role.VIEWER, "maya": Role.MAINTAINER}


@dataclass
class Server:
    url: str
    tokens: dict[str, str]
    backends: Backends  # the server's store, opened beside it to check what landed

    def use(self, user: str | None) -> None:
        """Point MLflow's client at the server as `user` (no token: None)."""
        mlflow.set_tracking_uri(self.url)
        if user is None:
            os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
        else:
            os.environ["MLFLOW_TRACKING_TOKEN"] = self.tokens[user]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("mlflow-api")
    store_url, artifacts = f"sqlite:///{home / 'loopline.db'}", str(home / "artifacts")
    backends = Backends(open_metadata_store(store_url), BlobStore(artifacts))
    tokens = {"admin": bootstrap_admin(backends) or ""}
    access = backends.services(local_owner()).access
    for user, role in USERS.items():
        access.create_user(user)
        tokens[user] = access.create_token(user)[1]
        access.set_role("default", user, role)
    port = free_port()
    command = [sys.executable, "-m", "loopline", "server", "--port", str(port), "--store-uri", store_url,
               "--artifacts-uri", artifacts]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline and process.poll() is None, "loopline server did not start"
            time.sleep(0.1)
        yield Server(url, tokens, backends)
    finally:
        process.terminate()
        process.wait(timeout=30)
        backends.store.close()
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)


@pytest.fixture
def iris() -> tuple[pd.DataFrame, pd.Series]:
    features, target = load_iris(return_X_y=True, as_frame=True)
    return features, target


def _code(exc: pytest.ExceptionInfo[MlflowException]) -> str:
    return str(exc.value.error_code)


def test_the_recorded_sequence_lands_as_loopline_runs_and_versions(
    server: Server, iris: tuple[pd.DataFrame, pd.Series], tmp_path: Path
) -> None:
    features, target = iris
    server.use("alice")
    mlflow.set_experiment("iris-mlflow")
    notes = tmp_path / "notes.txt"
    notes.write_text("first try")
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("C", 0.5)
        mlflow.log_metric("accuracy", 0.9)
        mlflow.log_metrics({"loss": 0.3, "f1": 0.8}, step=2)
        mlflow.set_tag("team", "vision")
        mlflow.log_artifact(str(notes), "docs")
        mlflow.log_dict({"depth": 3}, "config/params.json")
        mlflow.log_text("plain words", "readme.txt")
        mlflow.log_input(mlflow.data.from_pandas(features, name="iris-features"), context="training")
        model = LogisticRegression(C=0.5, max_iter=500).fit(features, target)
        logged = mlflow.sklearn.log_model(model, name="model", input_example=features.head(3))
    found = mlflow.search_runs(filter_string="metrics.accuracy > 0.5 and params.C = '0.5'")
    assert list(found["run_id"]) == [run.info.run_id]
    version = mlflow.register_model(logged.model_uri, "IrisClassifier")
    assert (version.version, version.status, version.name) == ("1", "READY", "IrisClassifier")
    with pytest.raises(MlflowException) as editor:  # moving an alias is a maintainer's decision here
        mlflow.MlflowClient().set_registered_model_alias("IrisClassifier", "champion", version.version)
    assert _code(editor) == "PERMISSION_DENIED"
    server.use("maya")
    mlflow.MlflowClient().set_registered_model_alias("IrisClassifier", "champion", version.version)
    served = mlflow.pyfunc.load_model("models:/IrisClassifier@champion")
    assert (served.predict(features.head(20)) == model.predict(features.head(20))).all()

    # loopline sees an ordinary run, its artifacts and lineage, and a sklearn-flavored version
    services = server.backends.services(local_owner())
    stored = services.tracking.get_run(run.info.run_id)
    assert (stored.name, stored.status, stored.created_by) == ("first", RunStatus.FINISHED, "alice")
    assert stored.params == {"C": "0.5"} and stored.metrics["f1"] == 0.8 and stored.tags["team"] == "vision"
    names = {e.name for e in services.tracking.list_artifacts(run.info.run_id)}
    assert {"docs/notes.txt", "config/params.json", "readme.txt"} <= names
    assert f"logged-models/{logged.model_id}/MLmodel" in names
    assert [name for name, _ in services.tracking.inputs(run.info.run_id)] == ["iris-features"]
    registered = services.registry.resolve("models:/irisclassifier@champion")
    assert (registered.flavor, registered.task, registered.run_id) == (
        "sklearn",
        "classification",
        run.info.run_id,
    )
    loaded = services.registry.load("models:/irisclassifier@champion")
    assert (loaded.predict(features.head(20)).to_numpy().ravel() == model.predict(features.head(20))).all()
    assert loaded.metadata.signature is not None and loaded.metadata.signature.input_names == list(features)
    actions = {(e.action, e.actor) for e in services.audit.entries(limit=200)}
    assert {("run.start", "alice"), ("model.register", "alice"), ("alias.move", "maya")} <= actions


def test_the_rest_of_the_client(server: Server) -> None:
    server.use("alice")
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment("client-calls")
    run = client.create_run(experiment_id, run_name="batched")
    metrics = [mlflow.entities.Metric("loss", 1.0 / (step + 1), 1_000 + step, step) for step in range(50)]
    metrics.append(mlflow.entities.Metric("diverged", float("nan"), 2_000, 0))
    client.log_batch(run.info.run_id, metrics=metrics, params=[mlflow.entities.Param("layers", "3")])
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(50)) and history[-1].value == pytest.approx(1 / 50)
    assert np.isnan(client.get_run(run.info.run_id).data.metrics["diverged"])
    client.set_terminated(run.info.run_id, "FAILED")
    assert client.get_run(run.info.run_id).info.status == "FAILED"
    assert [e.name for e in client.search_experiments(filter_string="name LIKE 'client-%'")] == [
        "client-calls"
    ]
    assert client.get_experiment_by_name("no-such-experiment") is None

    mlflow.set_experiment(experiment_id=experiment_id)
    with mlflow.start_run() as parent, mlflow.start_run(nested=True) as child:
        mlflow.log_figure(_figure(), "plots/curve.png")
    assert (
        server.backends.services(local_owner()).tracking.get_run(child.info.run_id).parent_id
        == parent.info.run_id
    )
    assert [f.path for f in client.list_artifacts(child.info.run_id, "plots")] == ["plots/curve.png"]
    by_parent = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert [r.info.run_id for r in by_parent] == [child.info.run_id]

    assert "IrisClassifier" in [m.name for m in client.search_registered_models()]
    versions = client.search_model_versions("name = 'IrisClassifier'")
    assert [(v.name, v.version) for v in versions] == [("IrisClassifier", "1")]
    assert client.get_model_version_by_alias("IrisClassifier", "champion").version == "1"


def _figure() -> object:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots()
    axes.plot([1, 2, 3])
    return figure


def test_sklearn_autolog_logs_params_metrics_and_the_model(
    server: Server, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    features, target = iris
    server.use("alice")
    mlflow.set_experiment("autologged")
    mlflow.sklearn.autolog(log_input_examples=True, silent=True)
    try:
        with mlflow.start_run() as run:
            DecisionTreeClassifier(max_depth=3, random_state=0).fit(features, target)
    finally:
        mlflow.sklearn.autolog(disable=True)
    stored = server.backends.services(local_owner()).tracking.get_run(run.info.run_id)
    assert stored.params["max_depth"] == "3" and stored.metrics["training_accuracy_score"] > 0.9
    logged = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert [m.source_run_id for m in logged] == [run.info.run_id]
    assert logged[0].status.name == "READY"


def test_errors_are_mlflows(server: Server) -> None:
    server.use("vera")  # a viewer
    with pytest.raises(MlflowException) as denied:
        mlflow.MlflowClient().create_experiment("not-allowed")
    assert _code(denied) == "PERMISSION_DENIED"

    server.use("alice")
    client = mlflow.MlflowClient()
    run = client.create_run(client.create_experiment("errors"))
    client.log_param(run.info.run_id, "lr", "0.1")
    with pytest.raises(MlflowException) as changed:
        client.log_param(run.info.run_id, "lr", "0.2")
    assert _code(changed) == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as missing:
        client.get_run("f" * 32)
    assert _code(missing) == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as exists:
        client.create_experiment("errors")
    assert _code(exists) == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException) as elsewhere:
        client.create_model_version("IrisClassifier", "s3://bucket/someone-elses/model")
    assert _code(elsewhere) == "INVALID_PARAMETER_VALUE"

    headers = {"Authorization": f"Bearer {server.tokens['alice']}"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        unknown = http.get("/api/2.0/mlflow/no-such-endpoint")
        assert (unknown.status_code, unknown.json()["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
        bad = http.post("/api/2.0/mlflow/runs/log-metric", json={"run_id": run.info.run_id, "key": "x"})
        assert (bad.status_code, bad.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
        base = f"/api/2.0/mlflow-artifacts/artifacts/{run.info.experiment_id}/{run.info.run_id}/artifacts"
        for name in ("..%2F..%2Fescape.txt", "%2e%2e/%2e%2e/escape.txt", "a/../../escape.txt"):
            traversal = http.put(f"{base}/{name}", content=b"x")
            assert traversal.status_code in (400, 404), (name, traversal.text)
        assert (
            http.put(f"{base}/fine.txt", content=b"x", headers={"content-type": "text/plain"}).status_code
            == 200
        )
    assert (
        httpx.post(f"{server.url}/api/2.0/mlflow/runs/search", json={}).json()["error_code"]
        == "UNAUTHENTICATED"
    )


def test_a_pickled_model_loads_only_once_a_maintainer_trusts_it(
    server: Server, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    features, target = iris
    server.use("alice")
    mlflow.set_experiment("pickles")
    model = LogisticRegression(max_iter=500).fit(features, target)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            model, name="model", serialization_format="cloudpickle", registered_model_name="pickled"
        )
    services = server.backends.services
    version = services(local_owner()).registry.resolve("models:/pickled/1")
    assert version.flavor == "mlflow"
    with pytest.raises(UntrustedModel, match="trust NAME VERSION --code"):
        services(local_owner()).registry.load("models:/pickled/1")
    with pytest.raises(PermissionDenied):
        services(_principal(server, "alice")).registry.trust_code("pickled", 1)
    services(_principal(server, "maya")).registry.trust_code("pickled", 1)
    loaded = services(local_owner()).registry.load("models:/pickled/1")
    assert (loaded.predict(features.head(10)).to_numpy().ravel() == model.predict(features.head(10))).all()
    trusted = [e for e in services(local_owner()).audit.entries(limit=50) if e.action == "model.trust_code"]
    assert [(e.actor, e.target, e.after) for e in trusted] == [("maya", "models:/pickled/1", True)]


def _principal(server: Server, user: str) -> object:
    return server.backends.services(local_owner()).access.authenticate(server.tokens[user])
