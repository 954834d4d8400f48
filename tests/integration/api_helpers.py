"""A real `loopline server` app on 127.0.0.1 for tests, and clients of it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd
from sklearn.linear_model import LogisticRegression

from loopline.artifacts import BlobStore
from loopline.client.connection import ServerConnection
from loopline.core.access import Role
from loopline.core.automation import JobKind
from loopline.core.entities import Principal
from loopline.core.errors import ApprovalRequired
from loopline.core.pipelines import PipelineRun
from loopline.core.traffic import TrafficPolicy
from loopline.server.options import ServerOptions, default_staging
from loopline.specs.loop import LoopPolicy
from loopline.store import MetadataStore, open_metadata_store
from loopline.tracking.tracker import Tracker
from loopline.ui.app import create_server_app
from loopline.wiring.backends import Backends, bootstrap_admin, local_owner
from tests.conftest import free_port
from tests.integration.serving_helpers import cancer_data, register_cancer_models, uvicorn_in_thread


@contextlib.contextmanager
def running_api(backends: Backends, options: ServerOptions = ServerOptions()) -> Iterator[str]:
    """uvicorn in a thread serving the API and the UI until the block ends; yields its base URL."""
    port = free_port()
    with uvicorn_in_thread(create_server_app(backends, options), port, lifespan="off"):
        yield f"http://127.0.0.1:{port}"


LADDER = ["mallory", "vera", "alice", "maya", "olga", "admin"]
"""Users from no role on the default project up: viewer, editor, maintainer, owner, administrator."""
ROLES = {"vera": Role.VIEWER, "alice": Role.EDITOR, "maya": Role.MAINTAINER, "olga": Role.OWNER}


@dataclass
class Team:
    """A server over a store holding one of everything, and a token per user of the ladder."""

    url: str
    backends: Backends
    tokens: dict[str, str]
    ids: dict[str, str]
    staging: Path
    backends_owner: Principal = field(default_factory=local_owner)

    def client(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def connection(self, user: str) -> ServerConnection:
        return ServerConnection(self.url, self.tokens[user])


@contextlib.contextmanager
def team_server(
    store: MetadataStore, blobs: BlobStore, options: ServerOptions = ServerOptions()
) -> Iterator[Team]:
    backends = Backends(store, blobs)
    owner = local_owner()
    tokens = {"admin": bootstrap_admin(Backends(store, blobs)) or ""}
    access = backends.services(owner).access
    for user in [u for u in LADDER if u != "admin"]:
        access.create_user(user)
        tokens[user] = access.create_token(user)[1]
        if user in ROLES:
            access.set_role("default", user, ROLES[user])
    access.set_role("elsewhere", "mallory", Role.MAINTAINER)
    ids = _fill(backends)
    with running_api(backends, options) as url:
        yield Team(url, backends, tokens, ids, options.staging_dir or default_staging(blobs.url))


@contextlib.contextmanager
def sqlite_team(home: Path, options: ServerOptions = ServerOptions()) -> Iterator[Team]:
    """`team_server` over a new SQLite store and artifact folder in `home`."""
    store = open_metadata_store(f"sqlite:///{home / 'loopline.db'}")
    try:
        with team_server(store, BlobStore(str(home / "artifacts")), options) as running:
            yield running
    finally:
        store.close()


def _fill(backends: Backends) -> dict[str, str]:
    owner = local_owner()
    tracker = Tracker(
        backends.services(owner).tracking, registry=backends.services(owner).registry, capture_context=False
    )
    with tracker.start_run("exp") as run:
        run.log_metric("loss", 0.5)
        run.log_param("lr", 0.1)
        run.log_text("hello", "notes/a.txt")
    with tracker.start_run("hidden", project="secret") as hidden:
        hidden.log_metric("loss", 0.25)
        rows = pd.DataFrame({"x": [0.0, 1.0]})
        hidden.log_model(LogisticRegression().fit(rows, [0, 1]), "secret-model", input_example=rows)
    register_cancer_models(tracker)
    tracker.close()
    registry = backends.services(owner).registry
    registry.set_alias("cancer", "champion", 1)
    registry.protect_alias("cancer", "gold")
    try:
        registry.set_alias("cancer", "gold", 2)
    except ApprovalRequired as waiting:
        request_id = waiting.request_id
    backends.services(owner).deployments.create(
        "cancer-prod", TrafficPolicy.single("models:/cancer@champion")
    )
    features, target = cancer_data()
    backends.services(owner).datasets.register("patients", features.assign(target=target))
    evaluation = backends.services(owner).promotion.evaluate(
        "models:/cancer/1", features.assign(target=target).head(200), "target"
    )
    backends.services(owner).monitors.create("cancer-watch", "cancer-prod", "patients", target="target")
    monitor_run = backends.services(owner).monitors.run("cancer-watch").run  # over an empty window
    loop = {"deployment": "cancer-prod", "model": "cancer", "pipeline": "flows:train",
            "reference_dataset": "patients", "target": "target"}  # fmt: skip
    backends.services(owner).loops.declare(LoopPolicy.parse(loop))
    automation = backends.services(owner).automation
    automation.create_schedule("nightly", "0 3 * * *", JobKind.MONITOR, "cancer-watch")
    automation.create_trigger("on-alert", "cancer-watch", JobKind.MONITOR, "cancer-watch")
    pipeline_run = PipelineRun(run.id, "flows:nightly", "FINISHED", "local", {}, 1, 2)
    backends.store.pipelines.start_run(pipeline_run)
    alices_token = backends.store.access.tokens("alice")[0].id
    experiment = backends.services(owner).tracking.get_experiment("exp")
    return {
        "run_id": run.id, "hidden_run_id": hidden.id, "experiment_id": str(experiment.id),
        "request_id": str(request_id), "token_id": str(alices_token), "monitor_run_id": str(monitor_run.id),
        "evaluation_id": str(evaluation.id),
    }  # fmt: skip
