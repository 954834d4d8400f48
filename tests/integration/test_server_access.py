"""Every route of the server, listed from the app itself, against the access rules: a new
route that is not classified here, or that lets the wrong person in, fails the suite."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import httpx

from loopline.artifacts import BlobStore
from loopline.core.features import Entity, FeatureView
from loopline.server.app import create_app
from loopline.server.mlflow.errors import is_mlflow_path
from loopline.store import MetadataStore
from loopline.wiring.backends import Backends, local_owner
from tests.integration.api_helpers import LADDER, Team, team_server

PUBLIC = {("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect")}
# A browser signs in with a token in the body and out with its cookie: tests/integration/test_ui_runs.py
SESSIONS = {("POST", "/api/v1/session"), ("DELETE", "/api/v1/session")}
# ... or with an OpenID Connect provider, before being anyone: tests/integration/test_oidc.py
SESSIONS |= {("GET", "/api/v1/session/oidc/login"), ("GET", "/api/v1/session/oidc/callback")}
LIST = "list"  # anyone authenticated; shows only what the caller may see
SELF = "self"  # the user named in the path, or an administrator
ADMIN = "admin"
ANY_EDITOR = "any editor"  # an editor or more on some project: staging files precedes naming a model
NOBODY = "nobody"  # what only its creator may fetch: the id here is nobody's
POLICY = {"kind": "single", "arms": [{"name": "main", "target": "models:/cancer/2"}]}
JOB = {"kind": "monitor", "target": "cancer-watch"}
UPLOADED = {"upload_id": "0" * 32, "target": "target"}  # an upload that does not exist
IMPORTED = {"id": "ab" * 16, "experiment_id": 0, "name": "from-elsewhere", "status": "FINISHED",
            "start_time": 1, "end_time": 2, "created_by": "someone"}  # fmt: skip
LOOP = {"model": "cancer", "pipeline": "flows:train", "reference_dataset": "patients", "target": "target"}
CUSTOMER = {"name": "customer", "join_keys": ["customer_id"]}
STATS = {"name": "stats", "entities": ["customer"], "source": "datasets:/patients@1", "event_time": "at",
         "features": {"spend": "float64"}}  # fmt: skip
HISTORICAL = {"upload_id": "0" * 32, "features": ["stats:spend"]}
ERASURE = {"column": "email", "value": "nobody@example.org", "dry_run": True}
RETENTION = {"deleted_runs_days": None, "prediction_log_days": None, "unreferenced_blob_hours": 24}

# (method, path): (who may call it, JSON body or raw bytes, query)
RULES: dict[tuple[str, str], tuple[str, Any, dict[str, str] | None]] = {
    ("GET", "/api/v1/projects"): (LIST, None, None),
    ("GET", "/api/v1/experiments"): (LIST, None, None),
    ("GET", "/api/v1/experiments/activity"): (LIST, None, None),
    ("POST", "/api/v1/experiments"): ("alice", {"name": "new"}, None),
    ("GET", "/api/v1/experiments/{experiment_id}"): ("vera", None, None),
    ("GET", "/api/v1/projects/{project}/experiments/{name}"): ("vera", None, None),
    ("POST", "/api/v1/runs"): ("alice", {"experiment": "exp"}, None),
    ("GET", "/api/v1/runs/{run_id}"): ("vera", None, None),
    ("POST", "/api/v1/runs/{run_id}/end"): ("alice", {"status": "FAILED"}, None),
    ("POST", "/api/v1/runs/heartbeat"): (LIST, {"run_ids": []}, None),
    ("GET", "/api/v1/runs/{run_id}/validations"): ("vera", None, None),
    ("DELETE", "/api/v1/runs/{run_id}"): ("alice", None, None),
    ("POST", "/api/v1/runs/search"): (LIST, {}, None),
    ("POST", "/api/v1/runs/import"): ("maya", {"experiment": "exp", "run": IMPORTED}, None),
    ("POST", "/api/v1/runs/{run_id}/log-batch"): ("alice", {"params": {"x": "1"}}, None),
    ("GET", "/api/v1/runs/{run_id}/metrics/{key}"): ("vera", None, None),
    ("GET", "/api/v1/runs/{run_id}/series"): ("vera", None, {"key": "loss"}),
    ("GET", "/api/v1/runs/{run_id}/inputs"): ("vera", None, None),
    ("POST", "/api/v1/runs/{run_id}/inputs"): ("alice", {"name": "d", "digest": "0" * 64}, None),
    ("POST", "/api/v1/runs/{run_id}/model-files"): ("alice", {"model": "cancer", "version": 1}, None),
    ("GET", "/api/v1/runs/{run_id}/artifacts"): ("vera", None, None),
    ("PUT", "/api/v1/runs/{run_id}/artifacts/{name}"): ("alice", b"new bytes", None),
    ("GET", "/api/v1/runs/{run_id}/artifacts/{name}"): ("vera", None, None),
    ("GET", "/api/v1/models"): (LIST, None, None),
    ("POST", "/api/v1/models"): ("alice", {"name": "another"}, None),
    ("GET", "/api/v1/models/{name}"): ("vera", None, None),
    ("PATCH", "/api/v1/models/{name}"): ("alice", {"description": "changed"}, None),
    ("DELETE", "/api/v1/models/{name}"): ("maya", None, None),
    ("GET", "/api/v1/models/{name}/versions"): ("vera", None, None),
    ("GET", "/api/v1/models/{name}/protected-aliases"): ("vera", None, None),
    ("POST", "/api/v1/uploads"): (ANY_EDITOR, None, None),
    ("PUT", "/api/v1/uploads/{upload_id}/files/{path}"): (ANY_EDITOR, b"file", None),
    ("POST", "/api/v1/models/{name}/versions"): ("alice", {"upload_id": "0" * 32}, None),
    ("GET", "/api/v1/models/{name}/versions/{version}"): ("vera", None, None),
    ("PATCH", "/api/v1/models/{name}/versions/{version}"): ("alice", {"description": "changed"}, None),
    ("DELETE", "/api/v1/models/{name}/versions/{version}"): ("maya", None, None),
    ("PUT", "/api/v1/models/{name}/versions/{version}/trusted-types"): ("maya", {"types": []}, None),
    ("PUT", "/api/v1/models/{name}/versions/{version}/trusted-code"): ("maya", {"trusted": False}, None),
    ("GET", "/api/v1/models/{name}/versions/{version}/files/{path}"): ("vera", None, None),
    ("GET", "/api/v1/resolve"): ("vera", None, {"uri": "models:/cancer@champion"}),
    ("PUT", "/api/v1/models/{name}/aliases/{alias}"): ("maya", {"version": 2}, None),
    ("DELETE", "/api/v1/models/{name}/aliases/{alias}"): ("maya", None, None),
    ("GET", "/api/v1/models/{name}/alias-history"): ("vera", None, None),
    ("PUT", "/api/v1/models/{name}/aliases/{alias}/protection"): ("olga", None, None),
    ("DELETE", "/api/v1/models/{name}/aliases/{alias}/protection"): ("olga", None, None),
    ("GET", "/api/v1/alias-requests"): (LIST, None, None),
    ("POST", "/api/v1/alias-requests/{request_id}/approve"): ("maya", {"reason": ""}, None),
    ("POST", "/api/v1/alias-requests/{request_id}/reject"): ("maya", {"reason": ""}, None),
    ("POST", "/api/v1/models/{name}/versions/{version}/promote"): ("maya", {"alias": "champion"}, None),
    ("GET", "/api/v1/models/{name}/versions/{version}/card"): ("vera", None, None),
    ("GET", "/api/v1/models/{name}/versions/{version}/evaluations"): ("vera", None, None),
    ("GET", "/api/v1/models/{name}/versions/{version}/evaluations/{evaluation_id}/plots/{plot}"): (
        "vera",
        None,
        None,
    ),
    ("POST", "/api/v1/evaluations"): ("alice", {"uri": "models:/cancer/1", **UPLOADED}, None),
    ("GET", "/api/v1/deployments"): (LIST, None, None),
    ("POST", "/api/v1/deployments"): ("maya", {"name": "other", "policy": POLICY}, None),
    ("GET", "/api/v1/deployments/{name}"): ("vera", None, None),
    ("PUT", "/api/v1/deployments/{name}/traffic"): ("maya", {"policy": POLICY}, None),
    ("PUT", "/api/v1/deployments/{name}/extra-fields"): ("maya", {"extra_fields": "ignore"}, None),
    ("GET", "/api/v1/deployments/{name}/revisions"): ("vera", None, None),
    ("POST", "/api/v1/deployments/{name}/rollback"): ("maya", None, None),
    ("DELETE", "/api/v1/deployments/{name}"): ("maya", None, None),
    ("GET", "/api/v1/deployments/{name}/report"): ("vera", None, None),
    ("GET", "/api/v1/deployments/{name}/traffic"): ("vera", None, None),
    ("GET", "/api/v1/monitors"): (LIST, None, None),
    ("POST", "/api/v1/monitors"): (
        "maya",
        {"name": "m2", "deployment": "cancer-prod", "reference": "patients"},
        None,
    ),
    ("GET", "/api/v1/monitors/{name}"): ("vera", None, None),
    ("GET", "/api/v1/monitors/{name}/runs"): ("vera", None, None),
    ("GET", "/api/v1/monitors/{name}/runs/{run_id}"): ("vera", None, None),
    ("POST", "/api/v1/monitors/{name}/run"): ("maya", None, None),
    ("GET", "/api/v1/monitors/{name}/report"): ("vera", None, None),
    ("GET", "/api/v1/monitors/{name}/forecast"): ("vera", None, {"value": "rows"}),
    ("GET", "/api/v1/alerts"): ("vera", None, None),
    ("GET", "/api/v1/datasets"): (LIST, None, None),
    ("GET", "/api/v1/datasets/{name}/versions"): ("vera", None, None),
    ("GET", "/api/v1/datasets/{name}/versions/{version}"): ("vera", None, None),
    ("POST", "/api/v1/datasets/{name}/versions"): ("alice", {"upload_id": "0" * 32}, None),
    ("GET", "/api/v1/datasets/{name}/versions/{version}/data"): ("vera", None, None),
    ("GET", "/api/v1/datasets/{name}/versions/{version}/profile"): ("vera", None, None),
    ("POST", "/api/v1/validations"): ("vera", {"contract": {}, "dataset": "patients@1"}, None),
    ("GET", "/api/v1/dataset-versions"): ("vera", None, {"digest": "0" * 64}),
    ("GET", "/api/v1/pipeline-runs"): ("vera", None, None),
    ("GET", "/api/v1/pipeline-runs/{run_id}"): ("vera", None, None),
    ("GET", "/api/v1/jobs"): ("vera", None, None),
    ("POST", "/api/v1/jobs"): ("maya", {"kind": "monitor", "target": "cancer-watch"}, None),
    ("GET", "/api/v1/schedules"): ("vera", None, None),
    ("POST", "/api/v1/schedules"): ("maya", {"name": "hourly", "cron": "0 * * * *", **JOB}, None),
    ("DELETE", "/api/v1/schedules/{name}"): ("maya", None, None),
    ("GET", "/api/v1/triggers"): ("vera", None, None),
    ("POST", "/api/v1/triggers"): ("maya", {"name": "again", "monitor": "cancer-watch", **JOB}, None),
    ("DELETE", "/api/v1/triggers/{name}"): ("maya", None, None),
    ("PUT", "/api/v1/loops/{deployment}"): ("maya", LOOP, None),
    ("GET", "/api/v1/loops/{deployment}"): ("vera", None, None),
    ("GET", "/api/v1/loops/{deployment}/events"): ("vera", None, None),
    ("POST", "/api/v1/loops/{deployment}/reset"): ("maya", {"reason": "stuck"}, None),
    ("GET", "/api/v1/features/entities"): ("vera", None, None),
    ("GET", "/api/v1/features/views"): ("vera", None, None),
    ("GET", "/api/v1/features/views/{ref}"): ("vera", None, None),
    ("GET", "/api/v1/features/views/{name}/versions"): ("vera", None, None),
    ("GET", "/api/v1/features/freshness"): ("vera", None, None),
    ("POST", "/api/v1/features/apply"): ("alice", {"entities": [CUSTOMER], "feature_views": [STATS]}, None),
    ("POST", "/api/v1/features/historical"): ("vera", HISTORICAL, None),
    ("GET", "/api/v1/features/historical/{result_id}"): (NOBODY, None, None),
    ("POST", "/api/v1/features/training-sets"): ("alice", {**HISTORICAL, "name": "training"}, None),
    ("POST", "/api/v1/features/views/{ref}/materialize"): ("alice", {}, None),
    ("POST", "/api/v1/features/online"): (
        "vera",
        {"entities": {"customer_id": [1]}, "features": ["stats:spend"]},
        None,
    ),
    ("GET", "/api/v1/lineage"): ("vera", None, {"kind": "deployment", "key": "cancer-prod"}),
    ("GET", "/api/v1/lineage/downstream"): (
        "vera",
        None,
        {"kind": "deployment", "key": "x", "of_kind": "run"},
    ),
    ("GET", "/api/v1/lineage/models"): ("vera", None, {"dataset_digest": "0" * 64}),
    ("GET", "/api/v1/whoami"): ("mallory", None, None),
    ("GET", "/api/v1/users"): (ADMIN, None, None),
    ("POST", "/api/v1/users"): (ADMIN, {"name": "newcomer"}, None),
    ("GET", "/api/v1/users/{user}/tokens"): (SELF, None, None),
    ("POST", "/api/v1/users/{user}/tokens"): (SELF, {"name": "more"}, None),
    ("DELETE", "/api/v1/tokens/{token_id}"): (SELF, None, None),
    ("GET", "/api/v1/projects/{project}/members"): ("vera", None, None),
    ("PUT", "/api/v1/projects/{project}/members/{user}"): ("olga", {"role": "owner"}, None),
    ("DELETE", "/api/v1/projects/{project}/members/{user}"): ("olga", None, None),
    ("GET", "/api/v1/audit"): (ADMIN, None, None),
    ("GET", "/api/v1/audit/verify"): (ADMIN, None, None),
    ("GET", "/api/v1/storage/retention"): ("mallory", None, None),  # anyone signed in
    ("PUT", "/api/v1/storage/retention"): (ADMIN, RETENTION, None),
    ("POST", "/api/v1/storage/gc"): (ADMIN, {"dry_run": True}, None),
    ("POST", "/api/v1/erasures"): (ADMIN, ERASURE, None),
}


def _app_routes(store: MetadataStore, blobs: BlobStore) -> set[tuple[str, str]]:
    """(method, path) of every route the app answers, included routers walked through."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[Any]) -> None:
        for route in routes:
            if hasattr(route, "effective_candidates"):  # an included router
                walk(route.effective_candidates())
                continue
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":
                    found.add((method, route.path.replace(":path", "")))

    walk(create_app(Backends(store, blobs)).routes)
    return found


def _fill_path(path: str, team: Team) -> str:
    resource = path.split("/")[3]
    names = {"models": "cancer", "deployments": "cancer-prod", "monitors": "cancer-watch",
             "datasets": "patients", "projects": "exp", "schedules": "nightly",
             "triggers": "on-alert", "features": "stats"}  # fmt: skip
    values = {
        "{experiment_id}": team.ids["experiment_id"], "{run_id}": team.ids["run_id"], "{project}": "default",
        "{name}": names.get(resource, "notes/a.txt"), "{version}": "1", "{alias}": "champion",
        "{key}": "loss", "{request_id}": team.ids["request_id"], "{token_id}": team.ids["token_id"],
        "{user}": "alice", "{upload_id}": "0" * 32, "{deployment}": "cancer-prod",
        "{evaluation_id}": team.ids["evaluation_id"], "{plot}": "roc.png",
        "{path}": "model.skops" if resource == "models" else "file.bin", "{ref}": "stats@1",
        "{result_id}": "0" * 32,
    }  # fmt: skip
    if resource == "monitors":
        values["{run_id}"] = team.ids["monitor_run_id"]
    for placeholder, value in values.items():
        path = path.replace(placeholder, value)
    return path


def _call(
    clients: dict[str | None, httpx.Client], team: Team, user: str | None, method: str, path: str
) -> tuple[int, Any]:
    _, body, query = RULES[(method, path)]
    kwargs: dict[str, Any] = {"params": query}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None or method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = body if body is not None else {}
    response = clients[user].request(method, _fill_path(path, team), **kwargs)
    is_json = "json" in response.headers.get("content-type", "")
    return response.status_code, response.json() if is_json else None


def _allowed(rule: str, user: str) -> bool:
    if rule == ADMIN:
        return user == "admin"
    if rule == NOBODY:
        return False
    if rule == SELF:
        return user in ("alice", "admin")
    if rule == LIST:
        return True
    if rule == ANY_EDITOR:
        return user != "vera"  # a viewer only; mallory maintains "elsewhere"
    return LADDER.index(user) >= LADDER.index(rule)


def _mlflow(route: tuple[str, str]) -> bool:
    return is_mlflow_path(route[1])


def test_every_route_is_classified(store: MetadataStore, blobs: BlobStore) -> None:
    routes = {r for r in _app_routes(store, blobs) - PUBLIC - SESSIONS if not _mlflow(r)}
    assert routes - set(RULES) == set(), "classify the new routes in RULES"
    assert set(RULES) - routes == set(), "RULES names routes the app no longer has"


def test_every_mlflow_route_needs_a_token(store: MetadataStore, blobs: BlobStore) -> None:
    """MLflow's API calls the same services as /api/v1 (whose roles the test below checks
    route by route), as the token's owner: without a token, every route but the server's
    description answers MLflow's UNAUTHENTICATED."""
    routes = sorted(r for r in _app_routes(store, blobs) if _mlflow(r))
    assert ("POST", "/api/2.0/mlflow/runs/log-batch") in routes and len(routes) > 60
    with team_server(store, blobs) as team, httpx.Client(base_url=team.url) as anonymous:
        for method, path in routes:
            filled = re.sub(r"\{[^}]+\}", "x", path)
            body = None if method == "GET" else {}
            response = anonymous.request(method, filled, json=body)
            if (method, path) == ("GET", "/api/3.0/mlflow/server-info"):
                assert response.status_code == 200 and not response.json()["multipart_uploads_enabled"]
                continue
            assert (response.status_code, response.json()["error_code"]) == (401, "UNAUTHENTICATED"), path


def test_every_route_answers_exactly_who_may_call_it(store: MetadataStore, blobs: BlobStore) -> None:
    with team_server(store, blobs) as team, contextlib.ExitStack() as stack:
        features = team.backends.services(local_owner()).features  # a view to read, over a dataset
        features.apply([Entity.from_dict(CUSTOMER)], [FeatureView.from_dict(STATS)])
        clients = {user: stack.enter_context(team.client(user)) for user in [None, *LADDER]}

        def call(user: str | None, method: str, path: str) -> tuple[int, Any]:
            return _call(clients, team, user, method, path)

        # reads first (they change nothing): who may read gets a 200; listings hide the rest
        for method, path in sorted(k for k in RULES if k[0] == "GET"):
            rule = RULES[(method, path)][0]
            for user in LADDER:
                if rule == LIST or _allowed(rule, user):
                    status, body = call(user, method, path)
                    assert status == 200, (method, path, user, status, body)
                    if rule == LIST and user == "mallory":
                        assert body["items"] == [], (path, body)
        status, body = call("mallory", "POST", "/api/v1/runs/search")
        assert status == 200 and body["items"] == []
        names = [p["name"] for p in clients["vera"].get("/api/v1/projects").json()["items"]]
        assert names == ["default"]  # not the secret project
        hidden = clients["vera"].get(f"/api/v1/runs/{team.ids['hidden_run_id']}")
        assert hidden.status_code == 404 and "does not exist" in hidden.json()["error"]["message"]
        models = [m["name"] for m in clients["vera"].get("/api/v1/models").json()["items"]]
        assert models == ["cancer"]  # not the secret project's model
        hidden = clients["olga"].put("/api/v1/models/secret-model/aliases/champion", json={"version": 1})
        assert hidden.status_code == 404 and "does not exist" in hidden.json()["error"]["message"]

        # then every route, without a token and by everyone below its rule: refused, no trace
        audit = team.backends.services(local_owner()).audit
        entries_before = len(audit.entries(limit=1_000_000))
        for method, path in sorted(RULES):
            rule = RULES[(method, path)][0]
            assert call(None, method, path)[0] == 401, (method, path, "without a token")
            for user in LADDER:
                if not _allowed(rule, user):
                    status, body = call(user, method, path)
                    assert status in (403, 404), (method, path, user, status, body)
        assert len(audit.entries(limit=1_000_000)) == entries_before


def test_the_lineage_graph_names_only_runs_and_models_the_caller_may_see(
    store: MetadataStore, blobs: BlobStore
) -> None:
    with team_server(store, blobs) as team:
        hidden = team.ids["hidden_run_id"]  # a run of project "secret", which logged secret-model
        query = {"kind": "run", "key": hidden}
        with team.client("vera") as vera, team.client("admin") as admin:
            seen_by_vera = vera.get("/api/v1/lineage", params=query).json()
            seen_by_admin = admin.get("/api/v1/lineage", params=query).json()
        name = team.backends.services(local_owner()).tracking.get_run(hidden).name
        assert "secret-model" in str(seen_by_admin) and name in str(seen_by_admin)
        assert "secret-model" not in str(seen_by_vera) and name not in str(seen_by_vera)
