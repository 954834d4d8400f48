"""Protected aliases: four eyes on every move, and a retraining loop that waits for them."""

from __future__ import annotations

import pytest

from loopline.artifacts import BlobStore
from loopline.core.access import Role
from loopline.core.entities import Principal
from loopline.core.errors import ApprovalRequired, Conflict, PermissionDenied
from loopline.governance.audit import AuditTrail
from loopline.services import Registry
from loopline.store import MetadataStore
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import grant
from tests.integration.serving_helpers import register_cancer_models

ALICE, BOB = Principal("alice"), Principal("bob")


def test_a_protected_alias_moves_only_with_a_second_persons_approval(
    store: MetadataStore, blobs: BlobStore, tracker: Tracker
) -> None:
    register_cancer_models(tracker)
    grant(store, "default", alice=Role.OWNER, bob=Role.MAINTAINER)
    backends = Backends(store, blobs)
    alice, bob = backends.services(ALICE).registry, backends.services(BOB).registry
    alice.set_alias("cancer", "champion", 1, reason="first release")
    alice.protect_alias("cancer", "champion")

    with pytest.raises(ApprovalRequired, match="awaits a second person's approval") as waiting:
        alice.set_alias("cancer", "champion", 2, reason="better recall")
    assert alice.get_model("cancer").aliases["champion"] == 1  # nothing moved yet
    with pytest.raises(PermissionDenied, match="a second person decides it"):
        alice.approve(waiting.value.request_id)
    event = bob.approve(waiting.value.request_id, "checked the evaluation")
    assert event.to_version == 2 and event.actor == "bob" and "request" in event.reason
    assert bob.get_model("cancer").aliases["champion"] == 2
    with pytest.raises(Conflict, match="already approved"):
        bob.approve(waiting.value.request_id)

    with pytest.raises(ApprovalRequired) as again:
        bob.set_alias("cancer", "champion", 1, reason="roll back")
    assert alice.reject(again.value.request_id, "no need").status == "rejected"
    assert alice.get_model("cancer").aliases["champion"] == 2

    actions = [e.action for e in AuditTrail(store, local_owner()).entries(target="models:/cancer@champion")]
    assert actions[:5] == ["alias.rejected", "alias.request", "alias.move", "alias.approved", "alias.request"]
    assert AuditTrail(store, local_owner()).verify().intact


@pytest.fixture
def guarded(store: MetadataStore, blobs: BlobStore, tracker: Tracker) -> tuple[Registry, Registry]:
    """@champion of cancer on version 1, protected by its owner alice; bob maintains."""
    register_cancer_models(tracker)
    grant(store, "default", alice=Role.OWNER, bob=Role.MAINTAINER)
    backends = Backends(store, blobs)
    alice, bob = backends.services(ALICE).registry, backends.services(BOB).registry
    alice.set_alias("cancer", "champion", 1)
    alice.protect_alias("cancer", "champion")
    return alice, bob


def test_a_protected_alias_is_not_removed_on_one_persons_say(guarded: tuple[Registry, Registry]) -> None:
    alice, bob = guarded
    assert bob.protected_aliases("cancer") == ["champion"]
    with pytest.raises(PermissionDenied, match="is protected"):
        bob.remove_alias("cancer", "champion", reason="tidying up")
    assert bob.get_model("cancer").aliases == {"champion": 1}  # a server following it still starts
    alice.unprotect_alias("cancer", "champion")  # an owner's act, on the record
    assert bob.protected_aliases("cancer") == []
    assert bob.remove_alias("cancer", "champion").from_version == 1


def test_an_approval_never_moves_an_alias_onto_a_version_deleted_since_the_request(
    guarded: tuple[Registry, Registry],
) -> None:
    alice, bob = guarded
    with pytest.raises(ApprovalRequired) as waiting:
        bob.set_alias("cancer", "champion", 2)
    alice.delete_version("cancer", 2)
    with pytest.raises(Conflict, match="was deleted"):
        alice.approve(waiting.value.request_id)
    assert alice.get_model("cancer").aliases == {"champion": 1}
    assert [r.status for r in alice.alias_requests("cancer")] == ["pending"]  # undecided: it can be rejected


def test_protected_aliases_are_listed_locally_and_through_a_server(
    registry: Registry, tracker: Tracker
) -> None:
    register_cancer_models(tracker)
    registry.protect_alias("cancer", "gold")
    registry.protect_alias("cancer", "champion")
    assert registry.protected_aliases("cancer") == ["champion", "gold"]
