"""Users, API tokens and project roles, on real stores."""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import text

from loopline.artifacts import BlobStore
from loopline.core.access import Role
from loopline.core.entities import Principal
from loopline.core.errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from loopline.governance.audit import AuditTrail
from loopline.registry.service import RegistryService
from loopline.services import Access
from loopline.store import MetadataStore, open_metadata_store
from loopline.store import access as access_store
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import services_of


@pytest.fixture
def admin(store: MetadataStore) -> Access:
    return services_of(store, local_owner()).access


def test_a_token_is_shown_once_stored_as_a_hash_and_authenticates_its_user(
    store: MetadataStore, admin: Access
) -> None:
    admin.create_user("alice")
    token, secret = admin.create_token("alice", "laptop")
    assert secret.startswith("ll_") and len(secret) > 40 and token.prefix == secret[:10]
    dump = store.db.read(lambda conn: str(conn.execute(text("SELECT * FROM api_tokens")).all()))
    assert secret not in dump  # only its sha256 is kept
    assert admin.authenticate(secret) == Principal("alice", is_owner=False)
    entries = AuditTrail(store, local_owner()).entries(action="token.create")
    assert entries and secret not in json.dumps([e.after for e in entries])


def test_missing_wrong_revoked_and_expired_tokens_are_refused(store: MetadataStore, admin: Access) -> None:
    admin.create_user("alice")
    _, revoked = admin.create_token("alice", "old")
    admin.create_token("alice", "new")
    admin.revoke_token(admin.tokens("alice")[0].id)
    _, expiring = admin.create_token("alice", "short", expires_days=1)
    store.db.write(
        lambda conn: conn.execute(text("UPDATE api_tokens SET expires_at = 1 WHERE name = 'short'"))
    )
    for secret, message in (
        (None, "no token"),
        ("ll_guessed", "not valid"),
        (revoked, "revoked"),
        (expiring, "expired"),
    ):
        with pytest.raises(Unauthenticated, match=message):
            admin.authenticate(secret)
    assert [t.revoked_at is not None for t in admin.tokens("alice")] == [True, False, False]


def test_a_token_revoked_by_another_process_is_refused_once_its_cache_expires(
    store_url: str, store: MetadataStore, admin: Access, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin.create_user("alice")
    token, secret = admin.create_token("alice", "laptop")
    monkeypatch.setattr(access_store, "TOKEN_CACHE_SECONDS", 0.2)
    other = open_metadata_store(store_url)  # another server worker, or the CLI
    try:
        assert admin.authenticate(secret).name == "alice"  # now cached by this store
        services_of(other, local_owner()).access.revoke_token(token.id)
        time.sleep(0.3)
        with pytest.raises(Unauthenticated, match="revoked"):
            admin.authenticate(secret)
    finally:
        other.close()


def test_a_revocation_through_the_same_store_applies_at_once(store: MetadataStore, admin: Access) -> None:
    admin.create_user("alice")
    token, secret = admin.create_token("alice", "laptop")
    assert admin.authenticate(secret).name == "alice"
    services_of(store, local_owner()).access.revoke_token(token.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        admin.authenticate(secret)


def test_roles_are_checked_by_rank_and_non_members_learn_nothing(store: MetadataStore, admin: Access) -> None:
    for name in ("olivia", "vera", "ed"):
        admin.create_user(name)
    admin.set_role("churn", "olivia", Role.OWNER)
    admin.set_role("churn", "vera", Role.VIEWER)
    olivia = services_of(store, Principal("olivia")).access
    olivia.set_role("churn", "ed", Role.EDITOR)  # an owner manages members
    vera, ed = services_of(store, Principal("vera")).access, services_of(store, Principal("ed")).access
    vera.require("churn", Role.VIEWER)
    ed.require("churn", Role.EDITOR)
    with pytest.raises(PermissionDenied, match="vera is viewer on project 'churn'; this needs editor"):
        vera.require("churn", Role.EDITOR)
    with pytest.raises(PermissionDenied):
        ed.set_role("churn", "vera", Role.OWNER)  # only owners manage members
    with pytest.raises(NotFound, match="project 'fraud' does not exist"):
        ed.require("fraud", Role.VIEWER)  # not a member: as if it did not exist
    assert olivia.members("churn") == [("ed", Role.EDITOR), ("olivia", Role.OWNER), ("vera", Role.VIEWER)]
    moves = AuditTrail(store, local_owner()).entries(action="member.role")
    newest = moves[0]
    assert (newest.actor, newest.target, newest.after) == ("olivia", "project:churn/ed", "editor")


def test_only_administrators_manage_users_and_others_tokens(store: MetadataStore, admin: Access) -> None:
    admin.create_user("alice")
    admin.create_user("bob")
    alice = services_of(store, Principal("alice")).access
    with pytest.raises(PermissionDenied):
        alice.create_user("mallory")
    with pytest.raises(PermissionDenied):
        alice.create_token("bob")
    _, secret = alice.create_token("alice")  # her own: fine
    assert alice.authenticate(secret).name == "alice"
    with pytest.raises(AlreadyExists):
        admin.create_user("alice")
    with pytest.raises(InvalidInput, match="must be letters, digits"):
        admin.create_user("alice; drop table users")


def test_the_cli_creates_users_tokens_and_roles(cli: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("users", "create", "alice")[0] == 0
    code, out, _ = cli("tokens", "create", "alice", "--name", "ci", "--expires-days", "30")
    secret = out.strip()
    assert code == 0 and secret.startswith("ll_")
    code, out, _ = cli("tokens", "list", "alice", "--json")
    (listed,) = json.loads(out)
    assert listed["name"] == "ci" and secret not in out
    assert cli("members", "set", "churn", "alice", "maintainer")[0] == 0
    assert json.loads(cli("members", "list", "churn", "--json")[1]) == [
        {"user": "alice", "role": "maintainer"}
    ]
    assert cli("tokens", "revoke", str(listed["id"]))[0] == 0
    code, _, err = cli("members", "set", "churn", "alice", "emperor")
    assert code == 2 and "emperor" in err


def test_models_belong_to_a_project_whose_roles_govern_them(store: MetadataStore, blobs: BlobStore) -> None:
    from sklearn.linear_model import LogisticRegression

    backends = Backends(store, blobs)
    admin = backends.services(local_owner()).access
    for user, project, role in [("fiona", "fraud", Role.EDITOR), ("max", "fraud", Role.MAINTAINER),
                                ("dora", "default", Role.OWNER)]:  # fmt: skip
        admin.create_user(user)
        admin.set_role(project, user, role)

    def registry(user: str) -> RegistryService:
        return backends.services(Principal(user, is_owner=False)).registry

    fiona = Principal("fiona", is_owner=False)
    tracker = Tracker(backends.services(fiona).tracking, registry=registry("fiona"), capture_context=False)
    rows = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    with tracker.start_run("scoring", project="fraud") as run:  # a model from a fraud run is fraud's
        run.log_model(LogisticRegression().fit(rows, [0, 0, 1, 1]), "fraud-model", input_example=rows)
    tracker.close()
    assert registry("fiona").get_model("fraud-model").project == "fraud"

    # an owner of another project learns nothing about it
    dora = registry("dora")
    assert dora.list_models() == []
    for attempt in (
        lambda: dora.get_model("fraud-model"),
        lambda: dora.resolve("models:/fraud-model/latest"),
        lambda: dora.set_alias("fraud-model", "champion", 1),
        lambda: dora.protect_alias("fraud-model", "champion"),
    ):
        with pytest.raises(NotFound, match="does not exist"):
            attempt()
    # names are one namespace, so a taken one is refused: that it is taken is all it says
    with pytest.raises(AlreadyExists, match="is taken") as taken:
        dora.create_model("fraud-model")
    assert "project" not in str(taken.value).replace("across projects", "") and "fiona" not in str(
        taken.value
    )

    # within the project, roles rank as everywhere: an editor registers, a maintainer promotes
    with pytest.raises(PermissionDenied, match="fiona is editor on project 'fraud'; this needs maintainer"):
        registry("fiona").set_alias("fraud-model", "champion", 1)
    registry("max").set_alias("fraud-model", "champion", 1)
    registry("fiona").create_model("fraud-rules", project="fraud")
    with pytest.raises(NotFound, match="project 'default' does not exist"):
        registry("fiona").create_model("elsewhere")  # no role on `default`
    assert [m.name for m in registry("max").list_models()] == ["fraud-model", "fraud-rules"]
    dora.create_model("default-model")
    assert [(m.name, m.project) for m in backends.services(local_owner()).registry.list_models()] == [
        ("default-model", "default"), ("fraud-model", "fraud"), ("fraud-rules", "fraud"),
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["anonymous", "loopline", "root", "Root"])
def test_the_names_of_who_acts_without_being_a_user_are_reserved(admin: Access, name: str) -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        admin.create_user(name)


def test_user_names_that_differ_only_in_case_are_one_name(admin: Access) -> None:
    admin.create_user("alice")
    with pytest.raises(AlreadyExists, match="differ only in case"):
        admin.create_user("ALICE")
    assert [u.name for u in admin.users()] == ["alice"]


@pytest.mark.parametrize("days", [0, -1, float("nan"), float("inf"), 1e30, 36_501])
def test_a_token_expiry_must_be_a_sensible_number_of_days(admin: Access, days: float) -> None:
    admin.create_user("alice")
    with pytest.raises(InvalidInput, match="positive number of days, at most 36,500"):
        admin.create_token("alice", "odd", expires_days=days)
