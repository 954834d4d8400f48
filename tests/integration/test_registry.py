"""The model registry on real stores: versions, aliases and their history, URIs, names,
two-phase registration, tampering, and concurrent registrations."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sqlalchemy import select

from loopline.artifacts import BlobStore
from loopline.core.entities import Principal
from loopline.core.errors import (
    AlreadyExists,
    ArtifactCorrupted,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    UntrustedModel,
)
from loopline.core.registry import VersionStatus
from loopline.models import save_model
from loopline.registry.service import RegistryService
from loopline.services import Services
from loopline.store import MetadataStore, open_metadata_store
from loopline.store.schema import model_versions
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import services_of

BOTH_MODES = True  # local and through the server

FRAME = pd.DataFrame({"a": [0.1, 0.9, 0.2, 0.8, 0.3, 0.7], "b": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]})
LABELS = [0, 1, 0, 1, 0, 1]


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    save_model(LogisticRegression().fit(FRAME, LABELS), directory, input_example=FRAME)
    return directory


def test_versions_number_up_and_carry_their_description(registry: RegistryService, model_dir: Path) -> None:
    first = registry.register("churn", model_dir, description="baseline", tags={"owner": "ana"})
    second = registry.register("churn", model_dir)
    assert (first.version, second.version) == (1, 2)
    assert first.status is VersionStatus.READY
    assert first.flavor == "sklearn" and first.task == "classification"
    assert first.description == "baseline" and first.tags == {"owner": "ana"}
    assert first.digest == second.digest  # same content, same hash
    assert set(first.files) == {"model.skops", "loopline-model.json"}
    assert first.model_json["signature"]["inputs"]["columns"][0]["name"] == "a"
    assert [v.version for v in registry.list_versions("churn")] == [1, 2]
    assert registry.get_model("churn").latest_version == 2


def test_uris_name_versions_aliases_and_the_latest(registry: RegistryService, model_dir: Path) -> None:
    registry.register("churn", model_dir)
    registry.register("churn", model_dir)
    registry.set_alias("churn", "champion", 1, reason="first one")
    assert registry.resolve("models:/churn/2").version == 2
    assert registry.resolve("models:/churn@champion").version == 1
    assert registry.resolve("models:/churn/latest").version == 2
    assert registry.load("models:/churn@champion").predict(FRAME)["prediction"].tolist() == LABELS
    for bad in ("churn/1", "models:/churn/0", "models:/churn/x", "models:/churn@", "models:/", "runs:/x"):
        with pytest.raises(InvalidInput):
            registry.resolve(bad)
    with pytest.raises(NotFound, match="no alias 'staging'"):
        registry.resolve("models:/churn@staging")
    with pytest.raises(NotFound, match="no version 7"):
        registry.resolve("models:/churn/7")


def test_every_alias_move_is_recorded(registry: RegistryService, model_dir: Path) -> None:
    for _ in range(3):
        registry.register("churn", model_dir)
    registry.set_alias("churn", "champion", 1, reason="first")
    registry.set_alias("churn", "Champion", 3, reason="better auc")
    registry.set_alias("churn", "challenger", 2)
    registry.remove_alias("churn", "challenger", reason="retired")
    history = registry.alias_history("churn")
    assert [(e.alias, e.from_version, e.to_version, e.reason) for e in history] == [
        ("champion", None, 1, "first"),
        ("champion", 1, 3, "better auc"),
        ("challenger", None, 2, ""),
        ("challenger", 2, None, "retired"),
    ]
    assert history[1].actor == registry.principal.name and history[1].report is None  # by hand: no gates
    assert [e.to_version for e in registry.alias_history("churn", "champion")] == [1, 3]
    assert registry.get_model("churn").aliases == {"champion": 3}
    assert registry.get_version("churn", 3).aliases == ("champion",)


def test_an_alias_cannot_point_at_a_version_that_is_not_ready(
    registry: RegistryService, model_dir: Path, store: MetadataStore
) -> None:
    registry.register("churn", model_dir)
    pending = store.registry.begin_version(
        "churn", run_id=None, flavor="sklearn", task=None, description="", model_json={}, size=0,
        created_by="x", created_at=0, tags={},
    )  # fmt: skip
    with pytest.raises(Conflict, match="is PENDING"):
        registry.set_alias("churn", "champion", pending)
    with pytest.raises(Conflict, match="is PENDING"):
        registry.load(f"models:/churn/{pending}")
    assert registry.resolve("models:/churn/latest").version == 1  # latest means latest READY


def test_deleting_respects_aliases(registry: RegistryService, model_dir: Path) -> None:
    registry.register("churn", model_dir)
    registry.register("churn", model_dir)
    registry.set_alias("churn", "champion", 1)
    with pytest.raises(Conflict, match="holds aliases"):
        registry.delete_version("churn", 1)
    registry.delete_version("churn", 2)
    assert registry.get_version("churn", 2).deleted
    with pytest.raises(Conflict, match="was deleted"):
        registry.load("models:/churn/2")
    with pytest.raises(Conflict, match="still has aliases"):
        registry.delete_model("churn")
    registry.remove_alias("churn", "champion")
    registry.delete_model("churn")
    with pytest.raises(NotFound):
        registry.get_model("churn")


def test_names_are_normalised_so_look_alikes_are_one_model_or_refused(
    registry: RegistryService, model_dir: Path
) -> None:
    registry.register("Churn", model_dir)
    registry.register("churn", model_dir)
    registry.register("\uff43\uff48\uff55\uff52\uff4e", model_dir)  # fullwidth letters
    assert [m.name for m in registry.list_models()] == ["churn"]
    assert registry.get_model("CHURN").display_name == "Churn"
    assert registry.get_model("churn").latest_version == 3
    for lookalike in (
        "%63hurn",
        "\u0441hurn",
        "churn/1",
        "ch urn",
        "../churn",
        "",
        "c" * 129,
        "churn.",
        "churn-",
    ):
        with pytest.raises(InvalidInput, match="model name"):
            registry.create_model(lookalike)
    with pytest.raises(AlreadyExists):
        registry.create_model("CHURN")
    for alias in ("12", "latest", "%61lias"):
        with pytest.raises(InvalidInput, match="alias"):
            registry.set_alias("churn", alias, 1)


def test_a_tampered_model_file_is_refused_at_load(
    registry: RegistryService, model_dir: Path, blobs: BlobStore
) -> None:
    version = registry.register("churn", model_dir)
    digest, _ = version.files["model.skops"]
    blobs._fs.pipe_file(blobs._path(digest), b"not the model")
    with pytest.raises(ArtifactCorrupted, match=r"model\.skops"):
        registry.load("models:/churn/1")


def test_log_model_links_the_run_its_metrics_and_its_data(tracker: Tracker, services: Services) -> None:
    lineage = services.lineage  # in process, or through the server
    with tracker.start_run("churn") as run:
        digest = run.log_input(FRAME.assign(label=LABELS), "training")
        run.log_metric("auc", 0.75)
        version = run.log_model(LogisticRegression().fit(FRAME, LABELS), "churn", input_example=FRAME)
    assert version.run_id == run.id
    assert version.metrics == {"auc": 0.75}
    names = [a.name for a in tracker.service.list_artifacts(run.id)]
    assert names == ["models/churn/1/loopline-model.json", "models/churn/1/model.skops"]
    assert lineage.models_trained_on(digest) == [("churn", 1)]
    graph = lineage.graph(("model_version", version.digest or ""))
    assert {(n.kind, n.label) for n in graph.nodes.values()} == {
        ("dataset", "training"),
        ("run", run.name),
        ("model_version", "churn/1"),
    }
    registry = services.registry  # runs:/ URIs, as MLflow's: by model name, or `model` for its only one
    assert registry.resolve(f"runs:/{run.id}/churn").uri == registry.resolve(f"runs:/{run.id}/model").uri
    assert registry.resolve(f"runs:/{run.id}/model").uri == "models:/churn/1"
    loaded = registry.load(f"runs:/{run.id}/model")
    assert type(loaded.native).__name__ == "LogisticRegression"
    with tracker.start_run("churn") as empty:
        pass
    with pytest.raises(NotFound, match="logged no model"):
        registry.resolve(f"runs:/{empty.id}/model")


def _register_many(
    url: str, artifacts: str, directory: str, count: int, out: multiprocessing.Queue[object]
) -> None:
    registry = Backends(open_metadata_store(url), BlobStore(artifacts)).services(local_owner()).registry
    versions: list[object] = []
    errors: list[str] = []

    def one() -> None:
        try:
            versions.append(registry.register("shared", Path(directory)).version)
        except Exception as exc:  # reported to the parent
            errors.append(repr(exc))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(errors or versions)


@pytest.mark.slow
def test_32_concurrent_registrations_number_1_to_32(
    registry: RegistryService, model_dir: Path, store_url: str, tmp_path: Path
) -> None:
    registry.create_model("shared")
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[object] = ctx.Queue()
    args = (store_url, str(tmp_path / "artifacts"), str(model_dir), 8, queue)
    workers = [ctx.Process(target=_register_many, args=args) for _ in range(4)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    numbers = sorted(v for result in results for v in result)  # type: ignore[attr-defined]
    assert numbers == list(range(1, 33)), results
    assert [v.status for v in registry.list_versions("shared")] == [VersionStatus.READY] * 32


@pytest.mark.slow
def test_sigkill_while_registering_never_leaves_a_ready_version_without_files(
    store_url: str, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        """
        import numpy as np, loopline as ll

        class Big:
            weights = np.random.default_rng(0).random(12_000_000)  # about 100 MB to store
            def predict(self, frame):
                return frame.iloc[:, 0]

        with ll.start_run("crash") as run:
            run.log_model(Big(), "big")
        """
    )
    env = {
        **os.environ,
        "LOOPLINE_STORE_URI": store_url,
        "LOOPLINE_ARTIFACTS_URI": str(tmp_path / "artifacts"),
    }
    child = subprocess.Popen([sys.executable, "-c", script], env=env)
    store = open_metadata_store(store_url)
    status = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and status is None:
        with store.db.engine.connect() as conn:
            status = conn.execute(select(model_versions.c.status)).scalar_one_or_none()
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert status == "PENDING", "the registration finished before it could be interrupted"

    registry = Backends(store, BlobStore(str(tmp_path / "artifacts"))).services(local_owner()).registry
    versions = registry.list_versions("big")
    assert [v.status for v in versions] == [VersionStatus.PENDING]
    with pytest.raises(Conflict, match="PENDING"):
        registry.load("models:/big/1", trust=True)
    store.close()


def test_a_worker_fails_registrations_that_died_and_says_so_on_the_trail(
    store: MetadataStore, blobs: BlobStore, model_dir: Path
) -> None:
    registry = Backends(store, blobs).services(local_owner()).registry
    registry.register("churn", model_dir)  # version 1: READY
    day_ago = int(time.time() * 1000) - 86_400_000
    store.registry.begin_version(
        "churn", run_id=None, flavor="sklearn", task=None, description="", model_json={}, size=0,
        created_by="a process that was killed", created_at=day_ago, tags={},
    )  # fmt: skip
    fresh = store.registry.begin_version(
        "churn", run_id=None, flavor="sklearn", task=None, description="", model_json={}, size=0,
        created_by="a registration under way", created_at=int(time.time() * 1000), tags={},
    )  # fmt: skip
    assert registry.fail_abandoned_versions() == [("churn", 2)]
    statuses = {v.version: v.status for v in registry.list_versions("churn")}
    assert statuses == {1: VersionStatus.READY, 2: VersionStatus.FAILED, fresh: VersionStatus.PENDING}
    (entry,) = services_of(store, local_owner()).audit.entries(action="model.fail_version")
    assert entry.target == "models:/churn/2" and entry.reason == "abandoned while PENDING"
    assert registry.fail_abandoned_versions() == []  # nothing left to do
    with pytest.raises(PermissionDenied, match="only an administrator"):
        Backends(store, blobs).services(Principal("eve")).registry.fail_abandoned_versions()


def test_a_maintainer_vouches_for_a_versions_types_and_every_loader_trusts_them(
    tracker: Tracker, services: Services
) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    x = pd.DataFrame({"a": [0.5, -1.0, 2.0, -3.0], "b": [1.0, 2.0, 3.0, 4.0]})
    model = make_pipeline(FunctionTransformer(abs), LogisticRegression()).fit(x, [0, 1, 0, 1])
    with tracker.start_run("custom") as run:
        version = run.log_model(model, "custom", input_example=x, trusted_types=["builtins.abs"])
    registry = services.registry
    with pytest.raises(UntrustedModel, match=r"builtins\.abs"):
        registry.load(version.uri)  # what the uploader named is never trusted on its own
    with pytest.raises(InvalidInput, match="set by `models trust`"):
        registry.update_version("custom", 1, tags={"loopline.trusted_types": "builtins.abs"})
    with pytest.raises(InvalidInput, match="not a type's dotted name"):
        registry.trust_types("custom", 1, ["abs; rm -rf"])
    registry.trust_types("custom", 1, ["builtins.abs"])
    assert registry.load(version.uri).predict(x)["prediction"].tolist() == model.predict(x).tolist()
    (entry,) = services.audit.entries(action="model.trust")
    assert entry.target == "models:/custom/1" and entry.after == ["builtins.abs"]
    registry.trust_types("custom", 1, [])  # withdrawn
    with pytest.raises(UntrustedModel):
        registry.load(version.uri)
