"""Deployments and traffic policies in the store: validation, revisions, rollback."""

from __future__ import annotations

import pytest

from loopline.artifacts import BlobStore
from loopline.core.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from loopline.core.traffic import Arm, ArmChooser, TrafficPolicy
from loopline.serving.deployments import DeploymentService
from loopline.store import MetadataStore
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.integration.serving_helpers import register_cancer_models


@pytest.fixture
def service(store: MetadataStore, blobs: BlobStore, tracker: Tracker) -> DeploymentService:
    register_cancer_models(tracker)
    return Backends(store, blobs).services(local_owner()).deployments


def test_create_change_and_roll_back(service: DeploymentService) -> None:
    created = service.create("Cancer", TrafficPolicy.single("models:/cancer/1"), reason="launch")
    assert (created.name, created.revision) == ("cancer", 1)
    canary = TrafficPolicy.canary("models:/cancer/1", "models:/cancer/2", 10)
    assert service.set_traffic("cancer", canary, reason="try v2").revision == 2
    assert service.policy("cancer") == canary
    rolled = service.rollback("cancer")
    assert rolled.revision == 3 and service.policy("cancer") == TrafficPolicy.single("models:/cancer/1")
    history = service.revisions("cancer")
    assert [(r.revision, r.reason) for r in history] == [
        (1, "launch"),
        (2, "try v2"),
        (3, "rollback from revision 2 to 1"),
    ]
    assert all(r.actor == service.principal.name for r in history)
    assert [d.name for d in service.list_all()] == ["cancer"]


def test_concurrent_changes_do_not_overwrite_each_other(service: DeploymentService) -> None:
    service.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    service.set_traffic("cancer", TrafficPolicy.single("models:/cancer/2"), expected_revision=1)
    with pytest.raises(Conflict, match="changed meanwhile"):
        service.set_traffic("cancer", TrafficPolicy.single("models:/cancer/1"), expected_revision=1)


def test_policies_are_checked(service: DeploymentService) -> None:
    for build, message in [
        (lambda: TrafficPolicy("split", (Arm("a", "models:/cancer/1"),)), "kind 'split'"),
        (lambda: TrafficPolicy("single", ()), "takes 1 to 1 arms"),
        (lambda: TrafficPolicy.canary("models:/cancer/1", "models:/cancer/2", 100), "between 0 and 100"),
        (
            lambda: TrafficPolicy("canary", (Arm("a", "models:/cancer/1"), Arm("a", "models:/cancer/2"))),
            "must differ",
        ),
        (lambda: TrafficPolicy.single("cancer/1"), "not a model URI"),
        (
            lambda: TrafficPolicy.ab([("a", "models:/cancer/1", 1), ("b", "models:/cancer/2", 1)], "user"),
            "key=",
        ),
        (
            lambda: TrafficPolicy("canary", (Arm("a", "models:/cancer/1", 0), Arm("b", "models:/cancer/2"))),
            "weight above 0",
        ),
        *[  # a 50/50 split of such weights used to send every request to the second arm
            (
                lambda weight=weight: TrafficPolicy.from_dict(
                    {
                        "kind": "canary",
                        "arms": [
                            {"name": "a", "target": "models:/cancer/1", "weight": weight},
                            {"name": "b", "target": "models:/cancer/2", "weight": weight},
                        ],
                    }
                ),
                "at most 1e\\+06",
            )
            for weight in (float("inf"), 1e308, float("nan"))
        ],
    ]:
        with pytest.raises(InvalidInput, match=message):
            build()
    with pytest.raises(NotFound, match="no version 9"):
        service.create("cancer", TrafficPolicy.single("models:/cancer/9"))
    with pytest.raises(NotFound, match="no alias 'champion'"):
        service.create("cancer", TrafficPolicy.single("models:/cancer@champion"))
    service.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    with pytest.raises(AlreadyExists):
        service.create("CANCER", TrafficPolicy.single("models:/cancer/1"))
    with pytest.raises(Conflict, match="no earlier policy"):
        service.rollback("cancer")


def test_serving_a_model_uri_creates_or_reuses_its_deployment(service: DeploymentService) -> None:
    assert service.for_model("models:/cancer/1").name == "cancer"
    assert service.for_model("models:/cancer/1").revision == 1  # reused, unchanged
    with pytest.raises(InvalidInput, match="exists with another policy"):
        service.for_model("models:/cancer/2")
    assert service.for_model("models:/cancer/2", name="cancer-v2").name == "cancer-v2"


def test_deployments_join_the_lineage_graph(
    service: DeploymentService, store: MetadataStore, blobs: BlobStore
) -> None:
    service.create("cancer", TrafficPolicy.single("models:/cancer/1"))
    services = Backends(store, blobs).services(local_owner())
    version = services.registry.get_version("cancer", 1)
    graph = services.lineage.graph(("deployment", "cancer"))
    assert ("model_version", version.digest) in graph.nodes


def test_sticky_arms_keep_a_key_on_one_arm_and_split_by_weight() -> None:
    policy = TrafficPolicy.ab([("a", "models:/m/1", 3), ("b", "models:/m/2", 1)], "field:user")
    chooser = ArmChooser(policy)
    for user in ("ana", "bo", "chen"):
        assert len({chooser.choose(user).name for _ in range(20)}) == 1
    share = sum(chooser.choose(f"user-{i}").name == "a" for i in range(4000)) / 4000
    assert 0.72 < share < 0.78
    canary = ArmChooser(TrafficPolicy.canary("models:/m/1", "models:/m/2", 10), seed=1)
    assert 0.08 < sum(canary.choose().name == "canary" for _ in range(5000)) / 5000 < 0.12
