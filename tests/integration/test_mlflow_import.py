"""`loopline import mlflow SOURCE`: MLflow's history, written by the real `mlflow` client into
a SQLite database, an `mlruns` folder, a PostgreSQL database or served over HTTP, comes over
whole, once, even after a kill, locally and through a server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import mlflow.sklearn
import pytest
import sqlalchemy as sa
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from loopline.artifacts import BlobStore
from loopline.cli.main import run
from loopline.core.entities import RunStatus
from loopline.imports.mlflow import COMPLETE_TAG
from loopline.store import open_metadata_store
from loopline.wiring.backends import Backends, bootstrap_admin, local_owner
from tests.conftest import BACKENDS, Databases
from tests.integration.api_helpers import running_api, sqlite_team

pytestmark = pytest.mark.slow


def _write_history(uri: str, runs: int = 3, steps: int = 50) -> dict[str, str]:
    """An MLflow store with a parent and child run, params, tags, metric histories, an
    artifact, a failed run, a deleted run and a registered model with an alias."""
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment("churn")
    features, target = load_iris(return_X_y=True, as_frame=True)
    with mlflow.start_run(run_name="sweep") as parent:
        mlflow.log_param("grid", "small")
        mlflow.set_tag("team", "growth")
        mlflow.log_text("a note", "notes/readme.txt")
        for i in range(runs):
            with mlflow.start_run(run_name=f"trial-{i}", nested=True):
                mlflow.log_params({"C": i + 1, "penalty": "l2"})
                for step in range(steps):
                    mlflow.log_metric("loss", 1.0 / (step + 1 + i), step=step)
                mlflow.log_metric("accuracy", 0.8 + i / 100)
        model = LogisticRegression(max_iter=500).fit(features, target)
        mlflow.sklearn.log_model(model, name="model", registered_model_name="Churn")
    client.set_registered_model_alias("Churn", "champion", "1")
    failed = client.create_run(client.get_experiment_by_name("churn").experiment_id, run_name="broken")
    client.set_terminated(failed.info.run_id, "FAILED")
    gone = client.create_run(client.get_experiment_by_name("churn").experiment_id, run_name="gone")
    client.delete_run(gone.info.run_id)
    return {"parent": parent.info.run_id, "failed": failed.info.run_id, "deleted": gone.info.run_id}


def _import(home: Path, source: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = run(["--home", str(home), *args, "import", "mlflow", source, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {"error": err}


def _check_landed(backends: Backends, ids: dict[str, str]) -> None:
    services = backends.services(local_owner())
    parent = services.tracking.get_run(ids["parent"])
    assert (parent.name, parent.status, parent.params, parent.tags["team"]) == (
        "sweep", RunStatus.FINISHED, {"grid": "small"}, "growth"
    )  # fmt: skip
    children = services.tracking.search_runs("churn", filter=f"parent_run_id = '{ids['parent']}'")
    assert sorted(r.name for r in children) == ["trial-0", "trial-1", "trial-2"]
    history = services.tracking.metric_history(children[0].id, "loss")
    assert [m.step for m in history] == list(range(50))
    assert services.tracking.read_artifact(ids["parent"], "notes/readme.txt") == b"a note"
    assert services.tracking.get_run(ids["failed"]).status is RunStatus.FAILED
    assert services.tracking.get_run(ids["deleted"]).deleted
    version = services.registry.resolve("models:/churn@champion")
    assert (version.flavor, version.run_id) == ("sklearn", ids["parent"])
    features, _ = load_iris(return_X_y=True, as_frame=True)
    assert len(services.registry.load("models:/churn@champion").predict(features.head(5))) == 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_database_comes_over_whole_and_once(
    backend: str,
    databases: Databases,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MLflow's SQLite or PostgreSQL store; imported twice, the second time adds nothing."""
    monkeypatch.chdir(tmp_path)  # MLflow's artifacts land in ./mlruns
    (tmp_path / "source").mkdir()
    with databases.new(backend, tmp_path / "source", migrated=False) as source:
        ids = _write_history(source)
        home = tmp_path / "home"
        code, report = _import(home, source, capsys)
        assert code == 0, report
        assert report["source"] == report["imported"] and report["skipped"] == []
        assert report["source"]["runs"] == 6 and report["source"]["metric values"] == 3 * 51
        assert report["source"]["versions"] == report["source"]["aliases"] == 1
        code, again = _import(home, source, capsys)
        assert code == 0 and again["imported"] == report["imported"]  # counted from loopline
    store = open_metadata_store(f"sqlite:///{home / 'loopline.db'}")
    try:
        backends = Backends(store, BlobStore(str(home / "artifacts")))
        _check_landed(backends, ids)
        services = backends.services(local_owner())
        assert len(services.registry.list_versions("churn")) == 1
        assert len([e for e in services.audit.entries(limit=500) if e.action == "run.import"]) == 6
    finally:
        store.close()


def test_an_mlruns_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    folder = tmp_path / "mlruns"
    ids = _write_history(folder.as_uri(), runs=3, steps=50)
    code, report = _import(tmp_path / "home", str(folder), capsys)
    assert code == 0 and report["source"] == report["imported"], report
    store = open_metadata_store(f"sqlite:///{tmp_path / 'home' / 'loopline.db'}")
    try:
        _check_landed(Backends(store, BlobStore(str(tmp_path / "home" / "artifacts"))), ids)
    finally:
        store.close()


def test_an_http_server_and_through_a_loopline_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source is served over MLflow's REST API (by a loopline server, which speaks it);
    the import goes through another loopline server, as a maintainer there."""
    store = open_metadata_store(f"sqlite:///{tmp_path / 'source.db'}")
    backends = Backends(store, BlobStore(str(tmp_path / "source-artifacts")))
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", bootstrap_admin(backends) or "")
    try:
        with running_api(backends) as source, sqlite_team(tmp_path / "target") as target:
            ids = _write_history(source, runs=2, steps=10)
            mlflow.set_tracking_uri(None)
            capsys.readouterr()
            monkeypatch.setenv("LOOPLINE_TOKEN", target.tokens["alice"])  # an editor: may not import
            code = run(["--uri", target.url, "import", "mlflow", source, "--json"])
            denied = json.loads(capsys.readouterr().out)
            assert code == 1 and any("needs maintainer" in reason for reason in denied["skipped"])
            monkeypatch.setenv("LOOPLINE_TOKEN", target.tokens["maya"])  # a maintainer
            code = run(["--uri", target.url, "import", "mlflow", source, "--json"])
            report = json.loads(capsys.readouterr().out)
            assert code == 0 and report["source"] == report["imported"], report
            services = target.backends.services(local_owner())
            assert services.tracking.get_run(ids["parent"]).tags[COMPLETE_TAG] == source
            assert services.registry.resolve("models:/churn@champion").run_id == ids["parent"]
    finally:
        store.close()


def test_a_killed_import_resumes_without_gaps_or_duplicates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=source)
    experiment = client.create_experiment("long")
    for i in range(40):
        run_ = client.create_run(experiment, run_name=f"r{i}")
        metrics = [mlflow.entities.Metric("loss", 1.0 / (s + 1), 1_000 + s, s) for s in range(3_000)]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_.info.run_id, metrics=metrics[start : start + 1000])
        client.set_terminated(run_.info.run_id)
    home = tmp_path / "home"
    command = [sys.executable, "-m", "loopline", "--home", str(home), "import", "mlflow", source, "--json"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = sa.create_engine(f"sqlite:///{home / 'loopline.db'}")
    deadline = time.monotonic() + 120
    while True:  # kill it once some runs are whole and others not yet
        assert process.poll() is None and time.monotonic() < deadline, "the import ended before it was killed"
        try:
            with database.connect() as conn:
                done = conn.execute(sa.text("SELECT count(*) FROM tags WHERE key = :k"), {"k": COMPLETE_TAG})
                if done.scalar_one() >= 5:
                    break
        except sa.exc.OperationalError:  # the store is not created yet
            pass
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    database.dispose()
    code, report = _import(home, source, capsys)
    assert code == 0 and report["source"] == report["imported"], report
    assert report["imported"]["metric values"] == 40 * 3_000
