"""Traffic policies live: canary, A/B, shadow, hot swaps under load, and SIGTERM."""

from __future__ import annotations

import collections
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from loopline.artifacts import BlobStore
from loopline.core.errors import InvalidInput
from loopline.core.traffic import TrafficPolicy
from loopline.serving.deployments import DeploymentService
from loopline.store import MetadataStore
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import wait_until
from tests.integration.serving_helpers import (
    cancer_data,
    register_cancer_models,
    running_server,
    server_process,
)

PREDICT = "/v1/deployments/cancer/predict"
ROW = cancer_data()[0].head(1).to_dict("records")


@pytest.fixture
def backends(store: MetadataStore, blobs: BlobStore, tracker: Tracker) -> Backends:
    register_cancer_models(tracker)
    return Backends(store, blobs)


@pytest.fixture
def deployments(backends: Backends) -> DeploymentService:
    return backends.services(local_owner()).deployments


def test_a_canary_takes_its_share(deployments: DeploymentService, backends: Backends) -> None:
    deployments.create("cancer", TrafficPolicy.canary("models:/cancer/1", "models:/cancer/2", 25))
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        answers = [client.post(PREDICT, json={"records": ROW}).json() for _ in range(400)]
    arms = collections.Counter((a["arm"], a["version"]) for a in answers)
    assert set(arms) == {("stable", 1), ("canary", 2)}
    assert 0.17 < arms[("canary", 2)] / 400 < 0.33


def test_an_ab_test_keeps_each_user_on_one_arm(deployments: DeploymentService, backends: Backends) -> None:
    policy = TrafficPolicy.ab([("a", "models:/cancer/1", 1), ("b", "models:/cancer/2", 1)], "field:user_id")
    deployments.create("cancer", policy)
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        seen: dict[str, set[str]] = collections.defaultdict(set)
        for i in range(200):
            user = f"user-{i % 40}"
            answer = client.post(PREDICT, json={"records": [{**ROW[0], "user_id": user}]})
            assert answer.status_code == 200, answer.text  # the key is not taken for a model input
            seen[user].add(answer.json()["arm"])
        missing = client.post(PREDICT, json={"records": ROW})
    assert all(len(arms) == 1 for arms in seen.values())
    assert {arm for arms in seen.values() for arm in arms} == {"a", "b"}
    assert missing.status_code == 422 and "keyed by field:user_id" in missing.json()["error"]["message"]


def test_the_deployment_alone_decides_about_extra_fields(
    deployments: DeploymentService, backends: Backends
) -> None:
    """A routing key is no model input only while the policy routes by it; any other field
    the model does not take is refused or ignored as the deployment declares, whatever the
    policy: a rollback never turns accepted requests into 422s."""
    policy = TrafficPolicy.ab([("a", "models:/cancer/1", 1), ("b", "models:/cancer/2", 1)], "field:user_id")
    deployments.create("cancer", policy)
    keyed, noted = [{**ROW[0], "user_id": "ana"}], [{**ROW[0], "user_id": "ana", "note": "hi"}]
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        assert client.post(PREDICT, json={"records": keyed}).status_code == 200
        refused = client.post(PREDICT, json={"records": noted})
        assert refused.status_code == 422 and "['note']" in refused.json()["error"]["message"]
        deployments.set_traffic("cancer", TrafficPolicy.single("models:/cancer/1"), "rollback")
        wait_until(lambda: client.post(PREDICT, json={"records": keyed}).status_code == 422)
        deployments.set_extra_fields("cancer", "ignore", reason="clients send ids")
        wait_until(lambda: client.post(PREDICT, json={"records": noted}).status_code == 200)
        deployments.set_traffic("cancer", policy, "again")
        wait_until(lambda: client.post(PREDICT, json={"records": noted}).json().get("arm") in ("a", "b"))
    assert deployments.get("cancer").extra_fields == "ignore"
    (entry,) = backends.store.audit.entries(action="deployment.extra_fields")
    assert (entry.before, entry.after, entry.reason) == ("refuse", "ignore", "clients send ids")
    with pytest.raises(InvalidInput, match="refuse or ignore"):
        deployments.set_extra_fields("cancer", "drop")


def test_a_header_can_be_the_ab_key(deployments: DeploymentService, backends: Backends) -> None:
    policy = TrafficPolicy.ab([("a", "models:/cancer/1", 1), ("b", "models:/cancer/2", 1)], "header:X-User")
    deployments.create("cancer", policy)
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        arms = {
            client.post(PREDICT, json={"records": ROW}, headers={"x-user": "ana"}).json()["arm"]
            for _ in range(10)
        }
    assert len(arms) == 1


def test_a_shadow_answers_in_the_log_only(deployments: DeploymentService, backends: Backends) -> None:
    deployments.create("cancer", TrafficPolicy.shadow("models:/cancer/1", "models:/cancer/2"))
    with running_server(backends, ("cancer",)) as server, server.client() as client:
        answers = [client.post(PREDICT, json={"records": ROW}).json() for _ in range(30)]
    assert {(a["arm"], a["version"]) for a in answers} == {("primary", 1)}
    log = backends.tables.read("predictions", [("deployment", "cancer")]).to_pandas()
    ids = sorted(a["request_id"] for a in answers)
    for arm, version in (("primary", 1), ("shadow", 2)):
        rows = log[log["arm"] == arm]
        assert sorted(rows["request_id"]) == ids and set(rows["version"]) == {version}


def test_policy_changes_and_alias_moves_are_followed_live(
    deployments: DeploymentService, backends: Backends
) -> None:
    registry = backends.services(local_owner()).registry
    registry.set_alias("cancer", "champion", 1)
    deployments.create("cancer", TrafficPolicy.single("models:/cancer@champion"))
    with running_server(backends, ("cancer",)) as server, server.client() as client:

        def version_after(change: object) -> int:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                version = client.post(PREDICT, json={"records": ROW}).json()["version"]
                if version != 1:
                    return int(version)
                time.sleep(0.05)
            return 1

        assert client.post(PREDICT, json={"records": ROW}).json()["version"] == 1
        assert version_after(registry.set_alias("cancer", "champion", 2)) == 2  # the alias moved


def _hammer(url: str, stop: threading.Event, results: list[tuple[int, str, int]], errors: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            try:
                answer = client.post(PREDICT, json={"records": ROW})
            except httpx.HTTPError as exc:
                errors.append(repr(exc))
                continue
            if answer.status_code != 200:
                errors.append(f"{answer.status_code}: {answer.text[:200]}")
            else:
                body = answer.json()
                results.append((answer.status_code, body["request_id"], body["version"]))


@pytest.mark.slow
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # both backends: the live-policy test
def test_30s_of_load_across_two_policy_changes_loses_nothing(
    deployments: DeploymentService, backends: Backends, store_url: str, tmp_path: Path
) -> None:
    deployments.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    artifacts = backends.blobs.url
    results: list[tuple[int, str, int]] = []
    errors: list[str] = []
    with server_process(store_url, artifacts, "--deployment", "cancer") as (url, process):
        stop = threading.Event()
        clients = [threading.Thread(target=_hammer, args=(url, stop, results, errors)) for _ in range(4)]
        for client in clients:
            client.start()
        time.sleep(10)
        deployments.set_traffic("cancer", TrafficPolicy.canary("models:/cancer/1", "models:/cancer/2", 50))
        time.sleep(10)
        deployments.set_traffic("cancer", TrafficPolicy.single("models:/cancer/2"))
        time.sleep(10)
        stop.set()
        for client in clients:
            client.join()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
    assert errors == []
    versions = collections.Counter(version for _, _, version in results)
    assert versions[1] > 100 and versions[2] > 100  # both served, in turn
    assert results[-1][2] == 2
    log = backends.tables.read("predictions", [("deployment", "cancer")]).to_pandas()
    logged = dict(zip(log["request_id"], log["version"], strict=True))
    assert len(logged) == len(log)  # one row per single-row request
    assert {request_id: version for _, request_id, version in results}.items() <= logged.items()


@pytest.mark.slow
def test_sigterm_under_load_keeps_every_answered_request_in_the_log(
    deployments: DeploymentService, backends: Backends, store_url: str
) -> None:
    deployments.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    results: list[tuple[int, str, int]] = []
    errors: list[str] = []
    with server_process(store_url, backends.blobs.url, "--deployment", "cancer") as (url, process):
        stop = threading.Event()
        clients = [threading.Thread(target=_hammer, args=(url, stop, results, errors)) for _ in range(4)]
        for client in clients:
            client.start()
        time.sleep(3)
        process.send_signal(signal.SIGTERM)  # while requests are in flight
        assert process.wait(timeout=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
        stop.set()
        for client in clients:
            client.join()
    assert len(results) > 100
    log = backends.tables.read("predictions", [("deployment", "cancer")]).to_pandas()
    assert {request_id for _, request_id, _ in results} <= set(log["request_id"])


@pytest.mark.slow
def test_several_workers_share_the_port_and_their_metrics(
    deployments: DeploymentService, backends: Backends, store_url: str
) -> None:
    deployments.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    with server_process(store_url, backends.blobs.url, "--deployment", "cancer", "--workers", "2") as (
        url,
        _,
    ):
        answers = []
        for _ in range(40):
            with httpx.Client(base_url=url) as client:  # new connections: the kernel spreads them
                answers.append(client.post(PREDICT, json={"records": ROW}))
        metrics = httpx.get(url + "/metrics").text
    assert all(a.status_code == 200 for a in answers)
    total = next(
        line
        for line in metrics.splitlines()
        if line.startswith("loopline_requests_total{") and 'status="200"' in line
    )
    assert float(total.rsplit(" ", 1)[1]) == 40  # both workers' counts, added up
