"""The team server end to end: many remote clients at once, the SDK and CLI pointed at it,
`loopline server` as a process, and the OpenAPI contract."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import loopline as ll
from loopline import _sdk
from loopline.artifacts import BlobStore
from loopline.client.connection import ServerConnection
from loopline.client.services import RemoteServices
from loopline.client.tracking import RemoteTrackingService
from loopline.core.entities import Metric
from loopline.store import MetadataStore
from loopline.wiring.backends import Backends, bootstrap_admin, local_owner
from tests.conftest import free_port
from tests.integration.api_helpers import running_api


@pytest.fixture
def served(store: MetadataStore, blobs: BlobStore) -> Iterator[tuple[str, str]]:
    backends = Backends(store, blobs)
    secret = bootstrap_admin(backends)
    assert secret is not None
    with running_api(backends) as url:
        yield url, secret


def test_eight_remote_clients_logging_10000_values_each_lose_nothing(
    served: tuple[str, str], store: MetadataStore, blobs: BlobStore
) -> None:
    url, secret = served
    tracking = RemoteServices(ServerConnection(url, secret)).tracking
    runs = [tracking.start_run("crowd", run_name=f"client-{i}").id for i in range(8)]
    errors: list[BaseException] = []

    def client(run_id: str) -> None:
        try:
            mine = RemoteServices(ServerConnection(url, secret)).tracking
            for start in range(0, 10_000, 1000):  # 10 calls of 1,000 values, as MLflow's log_batch
                values = [
                    Metric(f"m{i % 4}", float(i), i // 4, 1_000 + i) for i in range(start, start + 1000)
                ]
                mine.log_batch(run_id, values, batch_id=f"{run_id}-{start}")
            mine.log_batch(run_id, values, batch_id=f"{run_id}-9000")  # a retried batch stores nothing twice
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(run_id,)) for run_id in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    local = Backends(store, blobs).services(local_owner()).tracking
    for run_id in runs:
        histories = [local.metric_history(run_id, f"m{k}") for k in range(4)]
        assert [len(h) for h in histories] == [2500] * 4
        assert sorted(m.value for h in histories for m in h) == [float(i) for i in range(10_000)]
        assert local.get_run(run_id).metrics == {f"m{k}": 9996.0 + k for k in range(4)}


def test_the_sdk_works_through_the_server_as_it_does_locally(
    served: tuple[str, str], store: MetadataStore, blobs: BlobStore, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    url, secret = served
    ll.configure(uri=url, token=secret)
    try:
        with ll.start_run("remote-sdk") as run:
            ll.log_params({"C": 1.0})
            for step in range(50):
                ll.log_metric("loss", 1 / (step + 1), step=step)
            run.log_text("remote hello", "notes.txt")
            rows = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
        version = run.log_model(LogisticRegression().fit(rows, [0, 0, 1, 1]), "remote", input_example=rows)
        found = ll.search_runs("remote-sdk", filter="params.C = '1.0' and metrics.loss < 0.1")
        assert [r.id for r in found] == [run.id]
        assert len(ll.get_metric_history(run.id, "loss")) == 50
        loaded = ll.load_model(f"models:/remote/{version.version}")
        assert list(loaded.predict(rows)["prediction"]) == [0, 0, 1, 1]
        assert isinstance(ll.tracking_service(), RemoteTrackingService)
    finally:
        _sdk.reset()
    stored = Backends(store, blobs).services(local_owner()).tracking.get_run(run.id)
    assert stored.created_by == "admin" and stored.params == {"C": "1.0"}


def test_the_cli_works_through_the_server(
    served: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from loopline.cli.main import run

    url, secret = served
    os.environ["LOOPLINE_TOKEN"] = secret
    try:
        assert run(["--uri", url, "experiments", "create", "through-the-server"]) == 0
        assert run(["--uri", url, "experiments", "list", "--json"]) == 0
        assert run(["--uri", url, "models", "list"]) == 0
        assert run(["--uri", url, "audit", "verify"]) == 0
        assert run(["--uri", url, "lineage", "models:/churn/1"]) == 1  # the server's 404, as one line
        assert run(["--uri", url, "worker", "--once"]) == 1  # a worker runs where the store is
    finally:
        del os.environ["LOOPLINE_TOKEN"]
    out, err = capsys.readouterr()
    assert "through-the-server" in out and "registered model 'churn' does not exist" in err
    assert "works on a local store" in err


@pytest.mark.slow
def test_loopline_server_bootstraps_an_admin_and_serves(store_url: str, tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "loopline", "server", "--port", str(port), "--store-uri", store_url,
               "--artifacts-uri", str(tmp_path / "artifacts")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        secret = _token_from(process)
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline and process.poll() is None, "the server did not start"
            time.sleep(0.1)
        me = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"}
        )
        assert me.json() == {"name": "admin", "admin": True, "roles": {}}
        spec = httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()
        assert "/api/v1/runs/{run_id}/log-batch" in spec["paths"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def _token_from(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    seen = ""
    for line in process.stderr:
        seen += line
        found = re.search(r"ll_[A-Za-z0-9_-]+", line)
        if found:
            return found.group(0)
    raise AssertionError(f"no token printed: {seen}")


def test_errors_are_json_with_a_stable_code(served: tuple[str, str]) -> None:
    url, secret = served
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as client:
        for path, status, code in [
            ("/api/v1/runs/not-an-id", 400, "invalid_input"),
            (f"/api/v1/runs/{'a' * 32}", 404, "not_found"),
            ("/api/v1/nowhere", 404, "not_found"),
        ]:
            response = client.get(path)
            assert response.status_code == status and response.json()["error"]["code"] == code, response.text
        bad = client.post("/api/v1/runs/search", json={"max_results": "many"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
        assert "max_results" in bad.json()["error"]["message"]
        page = client.get("/api/v1/experiments", params={"page_token": "garbage"})
        assert page.status_code == 400 and "page_token" in json.dumps(page.json())


def test_listings_come_in_pages_that_cover_everything_once(served: tuple[str, str]) -> None:
    url, secret = served
    tracking = RemoteServices(ServerConnection(url, secret)).tracking
    names = sorted(f"exp-{i:02d}" for i in range(7))
    for name in names:
        tracking.create_experiment(name)
    seen: list[str] = []
    token = None
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}) as client:
        while True:
            found = client.get("/api/v1/experiments", params={"max_results": 3, "page_token": token}).json()
            assert len(found["items"]) <= 3
            seen += [e["name"] for e in found["items"]]
            token = found["next_page_token"]
            if token is None:
                break
        assert client.get("/api/v1/experiments", params={"max_results": 0}).status_code == 422
    assert sorted(seen) == names and [e.name for e in tracking.list_experiments()] == seen
