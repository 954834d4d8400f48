"""Attacks on the team server, each a real HTTP request to a real server on 127.0.0.1."""

from __future__ import annotations

import functools
import http.client
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import text

from loopline.artifacts import BlobStore
from loopline.client.connection import ServerConnection
from loopline.client.services import RemoteServices
from loopline.core.errors import InvalidInput, NotFound, TooManyAttempts, Unauthenticated, UntrustedModel
from loopline.models import save_model
from loopline.models.package import METADATA_FILE
from loopline.server.options import ServerOptions
from loopline.store import MetadataStore, open_metadata_store
from loopline.wiring.backends import Backends, bootstrap_admin, local_owner
from tests.integration.api_helpers import Team, running_api, sqlite_team, team_server

LIMITS = ServerOptions(max_json_bytes=64 * 1024, max_upload_bytes=1024 * 1024)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """One world for the module, on SQLite: these attacks do not depend on the database
    (the SQL injection test below runs on every backend)."""
    with sqlite_team(tmp_path_factory.mktemp("team"), LIMITS) as running:
        yield running


def raw(team: Team, method: str, path: str, user: str = "admin", body: bytes = b"", **headers: str) -> int:
    """Send `path` byte for byte (no client-side normalisation of '..' or escapes)."""
    url = urlparse(team.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    connection.putrequest(method, path, skip_accept_encoding=True)
    sent = {"Authorization": f"Bearer {team.tokens[user]}", "Content-Length": str(len(body)), **headers}
    for key, value in sent.items():
        connection.putheader(key, value)
    connection.endheaders(body)
    status = connection.getresponse().status
    connection.close()
    return status


TRAVERSALS = [
    "../../../etc/passwd",
    "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "%252e%252e%252fetc%252fpasswd",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "..%5c..%5cetc%5cpasswd",
    "notes%5c..%5c..%5csecret",
    "C:%5cwindows%5cwin.ini",
]


@pytest.mark.parametrize("name", TRAVERSALS)
def test_artifact_paths_that_leave_the_run_are_refused(team: Team, name: str, tmp_path: Path) -> None:
    run = team.ids["run_id"]
    before = team.backends.services(team.backends_owner).tracking.list_artifacts(run)
    assert raw(team, "GET", f"/api/v1/runs/{run}/artifacts/{name}") in (400, 404)
    assert raw(team, "PUT", f"/api/v1/runs/{run}/artifacts/{name}", body=b"pwned") in (400, 404)
    assert raw(team, "PUT", f"/api/v1/uploads/{'0' * 32}/files/{name}", body=b"pwned") in (400, 404)
    assert team.backends.services(team.backends_owner).tracking.list_artifacts(run) == before
    assert not list(Path("/").glob("pwned*")) and not Path("/etc/pwned").exists()


def test_an_upload_cannot_be_written_through_a_symlink(team: Team, tmp_path: Path) -> None:
    with team.client("alice") as client:
        upload = client.post("/api/v1/uploads").json()["upload_id"]
        folder = team.staging / "uploads" / upload / "files"
        outside = tmp_path / "outside"
        outside.mkdir()
        (folder / "link").symlink_to(outside)
        response = client.put(f"/api/v1/uploads/{upload}/files/link/model.bin", content=b"escaped")
        assert response.status_code == 400 and "symlink" in response.json()["error"]["message"]
    assert list(outside.iterdir()) == []


def test_a_client_refuses_to_upload_a_folder_with_a_symlink_out_of_it(team: Team, tmp_path: Path) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "passwd").symlink_to("/etc/passwd")
    tracking = RemoteServices(team.connection("alice")).tracking
    with pytest.raises(InvalidInput, match="symlink"):
        tracking.log_artifact_path(team.ids["run_id"], folder)


def test_no_request_makes_the_server_read_or_fetch_a_location_the_caller_names(team: Team) -> None:
    with team.client("maya") as client:
        for uri in ("file:///etc/passwd", "http://169.254.169.254/latest/meta-data", "s3://bucket/model"):
            assert client.get("/api/v1/resolve", params={"uri": uri}).status_code == 400
            policy = {"kind": "single", "arms": [{"name": "main", "target": uri}]}
            response = client.post("/api/v1/deployments", json={"name": "evil", "policy": policy})
            assert response.status_code == 400, response.text
        # a model version is made only from files uploaded into the server's own staging area
        for body in (
            {"upload_id": "0" * 32, "source": "file:///etc/passwd"},
            {"source": "http://10.0.0.1/m"},
        ):
            assert client.post("/api/v1/models/evil/versions", json=body).status_code == 422
        for upload_id in ("../../../../etc", "0" * 32):
            response = client.post("/api/v1/models/evil/versions", json={"upload_id": upload_id})
            assert response.status_code == 404
        # another user's upload, and a run of a project the caller cannot see
        theirs = client.post("/api/v1/uploads").json()["upload_id"]
    with team.client("alice") as client:
        assert client.post("/api/v1/models/evil/versions", json={"upload_id": theirs}).status_code == 404
        hidden = team.ids["hidden_run_id"]
        assert client.get(f"/api/v1/runs/{hidden}/artifacts").status_code == 404
        linked = client.post(f"/api/v1/runs/{hidden}/model-files", json={"model": "cancer", "version": 1})
        assert linked.status_code == 404


INJECTIONS = [
    "params.lr = '0.1' OR 1=1",
    "params.lr = '0.1'; DROP TABLE runs; --",
    "params.lr = '' OR '1'='1'",
    'metrics."loss; DROP TABLE runs" > 0',
    "tags.x = 'a' UNION SELECT * FROM users",
    "attributes.status = 'FINISHED' --",
    "params.lr LIKE '%' OR 1=1",
]


def test_filters_that_try_sql_injection_find_nothing_they_should_not(
    store: MetadataStore, blobs: BlobStore
) -> None:
    with team_server(store, blobs) as team, team.client("vera") as client:
        runs = store.db.read(lambda conn: conn.execute(text("SELECT count(*) FROM runs")).scalar())
        for condition in INJECTIONS:
            response = client.post("/api/v1/runs/search", json={"experiments": ["exp"], "filter": condition})
            assert response.status_code in (200, 400), (condition, response.text)
            if response.status_code == 200:
                assert response.json()["items"] == [], condition
            ordered = client.post("/api/v1/runs/search", json={"order_by": [f"{condition} DESC"]})
            assert ordered.status_code == 400, condition
        quoted = "params.lr = '0.1'' OR ''1''=''1'"  # quotes inside a value stay inside the value
        assert client.post("/api/v1/runs/search", json={"filter": quoted}).json()["items"] == []
        assert client.post("/api/v1/runs/search", json={"filter": "params.lr = '0.1'"}).json()["items"]
        after = store.db.read(lambda conn: conn.execute(text("SELECT count(*) FROM runs")).scalar())
        assert after == runs and len(team.backends.services(team.backends_owner).access.users()) == 6


def test_bodies_over_the_limit_are_refused_with_413_and_nothing_is_stored(team: Team) -> None:
    run = team.ids["run_id"]
    big_json = b'{"params": {"x": "' + b"a" * (70 * 1024) + b'"}}'
    path = f"/api/v1/runs/{run}/log-batch"
    assert raw(team, "POST", path, body=big_json, **{"Content-Type": "application/json"}) == 413
    with team.client("admin") as client:
        streamed = client.post(path, content=iter([big_json[:40_000], big_json[40_000:]]),
                               headers={"content-type": "application/json"})  # fmt: skip
        assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "body_too_large"
        chunks = iter([b"x" * 600_000, b"x" * 600_000])
        upload = client.put(f"/api/v1/runs/{run}/artifacts/big.bin", content=chunks)
        assert upload.status_code == 413
        names = [a["name"] for a in client.get(f"/api/v1/runs/{run}/artifacts").json()["items"]]
        assert "big.bin" not in names
        assert client.get(f"/api/v1/runs/{run}").json()["params"] == {"lr": "0.1"}
    assert [p.name for p in team.staging.glob("body-*")] == []


def test_missing_wrong_and_revoked_tokens_get_401(team: Team) -> None:
    with team.client(None) as anonymous:
        assert anonymous.get("/api/v1/models").status_code == 401
        wrong = anonymous.get("/api/v1/models", headers={"Authorization": "Bearer ll_not-a-token"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthenticated"
        header = {"X-Loopline-Token": team.tokens["vera"]}
        assert anonymous.get("/api/v1/models", headers=header).status_code == 200
    with team.client("admin") as admin:
        assert admin.post("/api/v1/users", json={"name": "leaver"}).status_code == 201
        assert (
            admin.put("/api/v1/projects/default/members/leaver", json={"role": "viewer"}).status_code == 204
        )
        created = admin.post("/api/v1/users/leaver/tokens", json={"name": "laptop"}).json()
    secret = created["token"]
    with team.client(None) as leaver:
        mine = {"Authorization": f"Bearer {secret}"}
        assert leaver.get("/api/v1/models", headers=mine).status_code == 200
        assert leaver.delete(f"/api/v1/tokens/{created['id']}", headers=mine).status_code == 200
        refused = leaver.get("/api/v1/models", headers=mine)
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    with pytest.raises(Unauthenticated, match="revoked"):
        RemoteServices(ServerConnection(team.url, secret)).principal  # noqa: B018 (asks the server)


class _Tripwire:
    """A model whose unpickling leaves a file behind: proof that someone loaded it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def predict(self, rows: object) -> list[int]:
        return [0]

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return functools.partial(Path.touch, self.marker), ()


def test_a_pickled_model_uploaded_by_an_editor_is_never_loaded_on_the_server(
    team: Team, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    directory = tmp_path / "model"
    save_model(_Tripwire(marker), directory, flavor="python_function")
    assert not marker.exists()
    registry = RemoteServices(team.connection("alice")).registry
    version = registry.register("tripwire", directory)
    assert version.status.value == "READY" and version.flavor == "python_function"
    with team.client("maya") as client:
        client.post("/api/v1/models/tripwire/versions/1/promote", json={"alias": "champion"})
        client.get("/api/v1/models/tripwire/versions/1/files/model.cloudpickle")
    with pytest.raises(UntrustedModel):
        registry.load("models:/tripwire/1")
    assert not marker.exists()  # neither the server nor an untrusting client unpickled it


def test_state_changes_from_a_browser_form_are_refused(team: Team) -> None:
    with team.client("alice") as client:
        form = client.post("/api/v1/experiments", data={"name": "from-a-form"})
        assert form.status_code == 415
        plain = client.post(
            "/api/v1/experiments", content=b'{"name": "x"}', headers={"content-type": "text/plain"}
        )
        assert plain.status_code == 415
        assert client.post("/api/v1/experiments", json={"name": "as-json"}).status_code == 201


def test_stored_strings_are_escaped_where_they_are_rendered(team: Team) -> None:
    script = "<script>alert(1)</script>"
    with team.client("alice") as client:
        assert client.patch("/api/v1/models/cancer", json={"description": script}).status_code == 200
        assert (
            client.post("/api/v1/experiments", json={"name": "x", "description": script}).status_code == 201
        )
    with team.client("vera") as client:
        card = client.get("/api/v1/models/cancer/versions/1/card", params={"html": "true"})
        assert card.status_code == 200 and card.headers["content-type"].startswith("text/html")
        assert script not in card.text and "&lt;script&gt;" in card.text
        report = client.get("/api/v1/monitors/cancer-watch/report")
        assert report.status_code == 200 and "<script>alert" not in report.text
        assert client.get("/api/v1/models/cancer").headers["content-type"] == "application/json"


def test_an_address_that_keeps_sending_wrong_tokens_must_wait(tmp_path: Path) -> None:
    store = open_metadata_store(f"sqlite:///{tmp_path / 'loopline.db'}")
    backends = Backends(store, BlobStore(str(tmp_path / "artifacts")))
    admin_token = bootstrap_admin(backends)
    access = backends.services(local_owner()).access
    access.create_user("victim")
    _, victim = access.create_token("victim")
    with (
        running_api(backends, ServerOptions(max_failed_logins=3)) as url,
        httpx.Client(base_url=url) as client,
    ):
        mine = {"Authorization": f"Bearer {victim}"}
        assert client.get("/api/v1/models", headers=mine).status_code == 200  # proven once
        for _ in range(5):  # no token at all is no guess
            assert client.get("/api/v1/models").status_code == 401
        for guess in range(3):  # forwarding headers are not believed: every guess is 127.0.0.1's
            spoofed = {"Authorization": f"Bearer ll_guess-{guess}", "X-Forwarded-For": f"9.9.9.{guess}"}
            assert client.get("/api/v1/models", headers=spoofed).status_code == 401
        assert client.get("/api/v1/models", headers=mine).status_code == 200  # behind the same address
        right = client.get("/api/v1/models", headers={"Authorization": f"Bearer {admin_token}"})
        assert right.status_code == 429  # a lucky guess is not confirmed either
        assert right.json()["error"]["code"] == "too_many_attempts"
        assert 1 <= int(right.headers["Retry-After"]) <= 60
        assert right.json()["error"]["details"]["retry_after_s"] == int(right.headers["Retry-After"])
        with pytest.raises(TooManyAttempts, match=r"3 failed logins from 127\.0\.0\.1"):
            RemoteServices(ServerConnection(url, admin_token or "", retries=0)).principal  # noqa: B018
    store.close()


@pytest.mark.parametrize("listed", ["/etc/hostname", "../../../../etc/hostname", "..%2F..%2Fetc/hostname"])
def test_a_model_description_cannot_name_a_file_outside_its_upload(
    team: Team, tmp_path: Path, listed: str
) -> None:
    directory = tmp_path / "model"
    metadata = save_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), directory)
    described = json.loads((directory / METADATA_FILE).read_text())
    (path, record), *_ = described["files"].items()
    described["files"] = {listed: record}
    with team.client("alice") as client:
        upload = client.post("/api/v1/uploads").json()["upload_id"]
        for name, content in (
            (path, (directory / path).read_bytes()),
            (METADATA_FILE, json.dumps(described)),
        ):
            assert client.put(f"/api/v1/uploads/{upload}/files/{name}", content=content).status_code == 204
        answer = client.post("/api/v1/models/escape/versions", json={"upload_id": upload})
        assert answer.status_code == 400 and "relative path" in answer.json()["error"]["message"]
    assert metadata.files  # the honest description names files inside the folder
    with pytest.raises(NotFound):
        team.backends.services(local_owner()).registry.get_model("escape")


def test_an_upload_that_disagrees_with_its_description_is_bad_input_saying_nothing_of_paths(
    team: Team, tmp_path: Path
) -> None:
    directory = tmp_path / "model"
    save_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), directory)
    with team.client("alice") as client:
        answers = []
        for altered in (b"altered", None):  # a changed file, then a missing one
            upload = client.post("/api/v1/uploads").json()["upload_id"]
            for file in directory.iterdir():
                content = altered if file.name != METADATA_FILE and altered is not None else file.read_bytes()
                if file.name != METADATA_FILE and altered is None:
                    continue
                client.put(f"/api/v1/uploads/{upload}/files/{file.name}", content=content)
            answers.append(client.post("/api/v1/models/bad/versions", json={"upload_id": upload}))
    assert [a.status_code for a in answers] == [400, 400]
    messages = [a.json()["error"]["message"] for a in answers]
    assert messages[0] == messages[1] and "is missing, or does not match" in messages[0]


def test_a_client_cannot_forge_a_forced_flag_or_a_gate_report_on_an_alias_move(team: Team) -> None:
    forged = {"version": 2, "forced": True, "report": {"gates": [{"gate": "all", "passed": True}]}}
    with team.client("maya") as client:
        refused = client.put("/api/v1/models/cancer/aliases/challenger", json=forged)
        assert refused.status_code == 422 and "extra" in refused.text.lower()
        moved = client.put(
            "/api/v1/models/cancer/aliases/challenger", json={"version": 2, "reason": "by hand"}
        )
        assert moved.status_code == 200
        assert (moved.json()["forced"], moved.json()["report"]) == (False, None)


def test_ids_beyond_int64_are_bad_input_or_unknown_never_a_crash(team: Team) -> None:
    huge = 2**70
    with team.client("alice") as client:
        started = client.post("/api/v1/runs", json={"experiment": huge})
        assert started.status_code == 422, started.text
        found = client.post("/api/v1/runs/search", json={"experiments": [huge]})
        assert found.status_code == 422, found.text
        assert client.get(f"/api/v1/experiments/{huge}").status_code == 422
    with pytest.raises(NotFound, match=f"experiment {huge} does not exist"):
        team.backends.services(local_owner()).tracking.get_experiment(huge)


def test_an_unexpected_error_is_a_json_500_on_a_connection_that_stays_open(
    store: MetadataStore, blobs: BlobStore
) -> None:
    with team_server(store, blobs) as team:
        store.db.write(lambda conn: conn.execute(text("DROP TABLE audit_log")))  # a store gone wrong
        address = urlparse(team.url)
        connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
        connection.request(
            "GET", "/api/v1/audit", headers={"Authorization": f"Bearer {team.tokens['admin']}"}
        )
        failed = connection.getresponse()
        error = json.loads(failed.read())["error"]
        assert (
            failed.status == 500 and error["code"] == "internal" and "see the server log" in error["message"]
        )
        kept = connection.sock
        connection.request("GET", "/health")  # on the same keep-alive connection
        assert connection.getresponse().status == 200 and connection.sock is kept
        connection.close()


def test_bodies_a_killed_server_was_receiving_are_removed_once_stale(team: Team) -> None:
    team.staging.mkdir(parents=True, exist_ok=True)
    dead, live = team.staging / "body-dead", team.staging / "body-live"
    dead.write_bytes(b"x" * 1000)
    os.utime(dead, (time.time() - 2 * 86_400,) * 2)
    live.write_bytes(b"y")
    with team.client("alice") as client:
        assert client.post("/api/v1/uploads").status_code == 201
    assert not dead.exists() and live.exists()
    live.unlink()


def test_the_api_documentation_works_offline_and_offers_the_token_scheme(team: Team) -> None:
    with team.client(None) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("/docs/static/") for s in sources), sources  # no CDN
        for source in sources:
            assert client.get(source).status_code == 200
        spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http", "scheme": "bearer", "description": "a loopline API token (`loopline tokens create`)",
    }  # fmt: skip
    assert spec["paths"]["/api/v1/runs/search"]["post"]["security"] == [{"HTTPBearer": []}]
