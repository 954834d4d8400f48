"""The audit trail: changes recorded with who, what and why; tampering detected."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from sqlalchemy import text

from loopline.artifacts import BlobStore
from loopline.core.audit import AuditKeys, entry_hash
from loopline.core.automation import JobKind
from loopline.core.clock import now_ms
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput
from loopline.core.monitoring import Monitor
from loopline.core.traffic import TrafficPolicy
from loopline.governance.audit import AuditTrail
from loopline.services import Services
from loopline.store import MetadataStore
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, local_owner
from tests.conftest import services_of
from tests.integration.serving_helpers import register_cancer_models


def test_alias_moves_and_traffic_changes_are_recorded_with_before_after_and_reason(
    store: MetadataStore, blobs: BlobStore, tracker: Tracker
) -> None:
    register_cancer_models(tracker)
    backends = Backends(store, blobs)
    alice = Principal("alice", is_owner=True)
    registry, deployments = backends.services(alice).registry, backends.services(alice).deployments
    registry.set_alias("cancer", "champion", 1, reason="first release")
    registry.set_alias("cancer", "champion", 2, reason="better recall")
    deployments.create("cancer", TrafficPolicy.single("models:/cancer@champion"))
    canary = TrafficPolicy.canary("models:/cancer@champion", "models:/cancer/1", 10)
    deployments.set_traffic("cancer", canary, reason="try v1 again")

    moves = AuditTrail(store, alice).entries(action="alias.move")
    assert [(m.before, m.after, m.reason, m.actor) for m in moves] == [
        (1, 2, "better recall", "alice"),
        (None, 1, "first release", "alice"),
    ]
    (traffic,) = AuditTrail(store, alice).entries(action="deployment.traffic", target="deployment:cancer")
    assert traffic.before == TrafficPolicy.single("models:/cancer@champion").to_dict()
    assert traffic.after == canary.to_dict() and traffic.reason == "try v1 again"
    registered = AuditTrail(store, alice).entries(action="model.register")
    assert [e.target for e in registered] == ["models:/cancer/2", "models:/cancer/1"]

    actions = [e.action for e in reversed(AuditTrail(store, alice).entries())]
    assert actions == [
        "experiment.create", "run.start", "model.create", "model.register", "model.register", "run.end",
        "alias.move", "alias.move", "deployment.create", "deployment.traffic",
    ]  # fmt: skip
    result = AuditTrail(store, alice).verify()
    assert result.intact and result.entries == len(actions)
    assert result.head == AuditTrail(store, alice).entries(limit=1)[0].hash


def _fill(store: MetadataStore, n: int = 5) -> AuditTrail:
    trail = AuditTrail(store, Principal("bob", is_owner=True))
    for i in range(n):
        store.atomically(
            lambda i=i: trail.record(
                "alias.move", "models:/churn@champion", before=i, after=i + 1, reason=f"step {i}"
            )
        )
    assert trail.verify().intact
    return trail


def test_an_edited_entry_is_detected(store: MetadataStore) -> None:
    trail = _fill(store)
    store.db.write(lambda conn: conn.execute(text("UPDATE audit_log SET after = '99' WHERE id = 3")))
    result = trail.verify()
    assert not result.intact
    assert result.problems == ["entry 3 (alias.move models:/churn@champion) was altered after it was written"]


def test_an_entry_edited_into_broken_json_is_reported_not_a_crash(store: MetadataStore) -> None:
    trail = _fill(store)
    store.db.write(lambda conn: conn.execute(text("UPDATE audit_log SET details = '{not json' WHERE id = 2")))
    assert trail.verify().problems == [
        "entry 2 (alias.move models:/churn@champion) was altered after it was written"
    ]
    assert trail.entries(limit=5)[-2].details == {"unreadable": "{not json"}


def test_a_deleted_entry_is_detected(store: MetadataStore) -> None:
    trail = _fill(store)
    store.db.write(lambda conn: conn.execute(text("DELETE FROM audit_log WHERE id = 2")))
    assert trail.verify().problems == ["entry 3: the entry before it was removed, added or changed"]


def test_a_rewritten_reason_is_detected_even_when_the_hash_column_is_left_alone(store: MetadataStore) -> None:
    trail = _fill(store)
    store.db.write(
        lambda conn: conn.execute(text("UPDATE audit_log SET reason = 'nothing to see' WHERE id = 5"))
    )
    assert [p.split(" (")[0] for p in trail.verify().problems] == ["entry 5"]


def test_entries_cut_from_the_end_are_caught_by_an_anchor_kept_elsewhere(store: MetadataStore) -> None:
    trail = _fill(store)
    head = trail.verify().head
    store.atomically(lambda: trail.record("alias.move", "models:/churn@champion", before=5, after=6))
    assert trail.verify(anchor=head).intact  # the trail grew past the anchor: fine
    store.db.write(lambda conn: conn.execute(text("DELETE FROM audit_log WHERE id >= 4")))
    assert trail.verify().intact  # what is left is still a whole chain
    assert trail.verify(anchor=head).problems == [
        f"no entry has the anchor's hash {head}: entries were removed from the end of the trail"
        " or the trail was rewritten since that head was noted"
    ]
    with pytest.raises(InvalidInput, match="not a head hash"):
        trail.verify(anchor="sha256:abc")


def test_concurrent_writers_keep_one_unbroken_chain(store: MetadataStore) -> None:
    def write(worker: int) -> None:
        trail = AuditTrail(store, Principal(f"worker-{worker}", is_owner=True))
        for i in range(40):
            store.atomically(
                lambda i=i: trail.record("deployment.traffic", f"deployment:d{worker}", after={"i": i})
            )

    threads = [threading.Thread(target=write, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = AuditTrail(store, local_owner()).verify()
    assert result.intact and result.entries == 320


def test_the_cli_lists_and_verifies(cli: Any, store_url: str) -> None:
    from loopline.store import open_metadata_store

    store = open_metadata_store(store_url)
    _fill(store, 3)
    code, out, _ = cli("audit", "verify")
    assert code == 0 and "audit trail intact: 3 entries" in out
    code, out, _ = cli("audit", "list", "--actor", "bob", "--json")
    assert code == 0 and [e["reason"] for e in json.loads(out)] == ["step 2", "step 1", "step 0"]
    store.db.write(lambda conn: conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = 1")))
    code, out, _ = cli("audit", "verify")
    assert code == 1 and "entry 1 (alias.move" in out and "altered" in out
    store.close()


def test_model_edits_jobs_and_run_tags_are_on_the_trail(
    store: MetadataStore, blobs: BlobStore, tracker: Tracker
) -> None:
    register_cancer_models(tracker)
    carol = Principal("carol", is_owner=True)
    services = Backends(store, blobs).services(carol)
    services.registry.create_model("spare", description="a second try", tags={"team": "ml"})
    services.registry.update_model("spare", description="renamed")
    services.registry.update_version("cancer", 1, description="first", tags={"stage": "qa"})
    services.registry.delete_model("spare")
    run = services.tracking.start_run("tags")
    services.tracking.log_batch(run.id, tags={"reviewed": "yes"})
    store.monitors.create(Monitor("churn", "churn", {}, "0" * 64, now_ms(), "carol", now_ms()))
    job = services.automation.enqueue(JobKind.MONITOR, "churn")
    trail = {(e.action, e.target): e for e in AuditTrail(store, carol).entries(limit=100)}
    assert trail[("model.create", "models:/spare")].after["tags"] == {"team": "ml"}
    assert trail[("model.update", "models:/spare")].before == {"description": "a second try"}
    assert trail[("model.update_version", "models:/cancer/1")].after["tags"] == {"stage": "qa"}
    assert ("model.delete", "models:/spare") in trail
    assert trail[("run.tags", f"run:{run.id}")].after == {"reviewed": "yes"}
    assert trail[("job.enqueue", "monitor:churn")].after == {"job": job.id, "params": {}}
    spare = [(action, "models:/spare") for action in ("model.create", "model.update", "model.delete")]
    mine = [*spare, ("model.update_version", "models:/cancer/1"), ("run.tags", f"run:{run.id}"),
            ("job.enqueue", "monitor:churn")]  # fmt: skip
    assert all(trail[k].actor == "carol" for k in mine)
    assert AuditTrail(store, carol).verify().intact


@pytest.mark.parametrize("action", ["schedule.create", "trigger.create"])
def test_automation_declarations_are_on_the_trail(store: MetadataStore, action: str) -> None:
    from loopline.core.automation import JobKind
    from loopline.core.clock import now_ms
    from loopline.core.monitoring import Monitor

    service = services_of(store, Principal("carol", is_owner=True)).automation
    if action == "schedule.create":
        service.create_schedule("nightly", "0 3 * * *", JobKind.MONITOR, "churn")
    else:
        store.monitors.create(Monitor("churn", "churn", {}, "0" * 64, now_ms(), "carol", now_ms()))
        service.create_trigger("retrain", "churn", JobKind.PIPELINE, "flows:churn", cooldown_s=60)
    (entry,) = AuditTrail(store, Principal("carol", is_owner=True)).entries(action=action)
    assert entry.actor == "carol" and entry.after["target"] in ("churn", "flows:churn")


def test_a_change_whose_entry_cannot_be_written_does_not_happen(
    store: MetadataStore, blobs: BlobStore, tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails between a change and its entry (a full disk, a dropped connection):
    the change is rolled back with it, wherever the two are written."""
    register_cancer_models(tracker)
    services = Backends(store, blobs).services(Principal("carol", is_owner=True))
    before = AuditTrail(store, local_owner()).verify().entries

    def broken(entry: Any, key: bytes | None = None) -> Any:
        raise OSError("the disk is full")

    monkeypatch.setattr(store.audit, "append", broken)
    changes = [
        lambda: services.registry.create_model("spare"),
        lambda: services.registry.set_alias("cancer", "champion", 2),
        lambda: services.deployments.create("d", TrafficPolicy.single("models:/cancer/1")),
        lambda: services.tracking.create_experiment("lost"),
        lambda: services.access.create_user("dora"),
    ]
    for change in changes:
        with pytest.raises(OSError, match="disk is full"):
            change()
    monkeypatch.undo()
    assert "spare" not in [m.name for m in services.registry.list_models()]
    assert services.registry.get_model("cancer").aliases.get("champion") != 2
    assert [d.name for d in services.deployments.list_all()] == []
    assert "lost" not in [e.name for e in services.tracking.list_experiments()]
    assert "dora" not in [u.name for u in services.access.users()]
    assert AuditTrail(store, local_owner()).verify().entries == before


def test_an_entry_outside_its_change_is_refused(store: MetadataStore) -> None:
    trail = AuditTrail(store, local_owner())
    with pytest.raises(RuntimeError, match="outside the transaction"):
        trail.record("model.create", "models:/x")
    assert trail.verify().entries == 0


KEY_1 = "k1:" + "s" * 32
KEY_2 = "k2:" + "t" * 32


def _sealed(store: MetadataStore, keys: str, n: int = 5, start: int = 0) -> AuditTrail:
    trail = AuditTrail(store, Principal("bob", is_owner=True), AuditKeys.parse(keys))
    for i in range(start, start + n):
        store.atomically(
            lambda i=i: trail.record("alias.move", "models:/churn@champion", before=i, after=i + 1)
        )
    return trail


REHASH = text("UPDATE audit_log SET prev_hash = :p, hash = :h WHERE id = :id")


def _rehash(store: MetadataStore, rows: list[Any], prev: str) -> None:
    """What someone who can write to the database, but holds no key, can do: recompute the
    chain with plain sha256 after an edit."""
    for row in rows:
        digest = entry_hash(prev, row.at, row.actor, row.action, row.target, json.loads(row.before),
                            json.loads(row.after), row.reason, json.loads(row.details))  # fmt: skip
        store.db.write(
            lambda conn, d=digest, p=prev, i=row.id: conn.execute(REHASH, {"p": p, "h": d, "id": i})
        )
        prev = digest


def _rows(store: MetadataStore) -> list[Any]:
    return store.db.read(lambda conn: list(conn.execute(text("SELECT * FROM audit_log ORDER BY id"))))


def test_without_a_key_a_recomputed_chain_passes_and_only_an_anchor_catches_it(store: MetadataStore) -> None:
    trail = _fill(store)
    head = trail.verify().head
    store.db.write(lambda conn: conn.execute(text("UPDATE audit_log SET after = '99' WHERE id = 3")))
    rows = _rows(store)
    _rehash(store, rows[2:], rows[1].hash)
    assert trail.verify().intact and trail.verify().unsealed == 5  # as documented: no secret, no seal
    assert not trail.verify(anchor=head).intact


def test_sealed_entries_cannot_be_rewritten_or_forged_without_the_key(store: MetadataStore) -> None:
    trail = _sealed(store, KEY_1)
    result = trail.verify()
    assert result.intact and result.unsealed == 0
    store.db.write(lambda conn: conn.execute(text("UPDATE audit_log SET after = '99' WHERE id = 3")))
    rows = _rows(store)
    _rehash(store, rows[2:], rows[1].hash)
    assert [p.split(" (")[0] for p in trail.verify().problems] == ["entry 3", "entry 4", "entry 5"]

    _sealed(store, "k1:" + "x" * 32, n=1, start=9)  # a guessed secret under the real key id
    assert "entry 6 (alias.move models:/churn@champion) was altered" in trail.verify().problems[-1]
    store.db.write(lambda conn: conn.execute(text("DELETE FROM audit_log WHERE id = 6")))
    eve = AuditTrail(store, Principal("eve", is_owner=True))  # holds no key: appends plain sha256
    store.atomically(lambda: eve.record("user.create", "user:eve"))
    assert (
        "(user.create user:eve) is not sealed, though entries are since entry 1: forged"
        in (trail.verify().problems[-1])
    )


def test_keys_rotate_and_a_verifier_without_an_old_key_says_so(store: MetadataStore) -> None:
    _fill(store, 2)  # written before any key was configured
    _sealed(store, KEY_1, n=2)
    rotated = _sealed(store, f"{KEY_2},{KEY_1}", n=2)  # new key first, the old one kept to verify
    result = rotated.verify()
    assert result.intact and result.entries == 6 and result.unsealed == 2
    assert [e.key_id for e in rotated.entries(limit=10)] == ["k2", "k2", "k1", "k1", None, None]
    only_new = AuditTrail(store, Principal("bob", is_owner=True), AuditKeys.parse(KEY_2)).verify()
    unheld = "(alias.move models:/churn@champion) is sealed with key 'k1', which this verifier does not hold"
    assert only_new.problems == [f"entry 3 {unheld}", f"entry 4 {unheld}"]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("k1", "ID:SECRET"),
        ("k1:short", "at least 32"),
        (f"{KEY_1},{KEY_1}", "given twice"),
        ("a b:" + "s" * 32, "ID"),
    ],
)
def test_bad_audit_keys_are_named_and_never_shown(keys: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as raised:
        AuditKeys.parse(keys)
    assert "s" * 32 not in str(raised.value)
    assert "s" * 32 not in repr(AuditKeys.parse(KEY_1))


def test_the_cli_seals_with_the_configured_key(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_AUDIT_KEYS", KEY_1)
    assert cli("users", "create", "dora")[0] == 0
    code, out, _ = cli("audit", "verify")
    assert code == 0 and "audit trail intact: 1 entries" in out and "unsealed" not in out
    monkeypatch.delenv("LOOPLINE_AUDIT_KEYS")
    code, out, _ = cli("audit", "verify")
    assert code == 1 and "sealed with key 'k1', which this verifier does not hold" in out
    monkeypatch.setenv("LOOPLINE_AUDIT_KEYS", "k1:short")
    code, _, err = cli("audit", "verify")
    assert code != 0 and "at least 32" in err and "short" not in err.replace("at least", "")


def test_entries_are_read_within_a_time_range_and_paged_by_key(services: Services) -> None:
    for name in ("a", "b", "c", "d", "e"):
        services.tracking.create_experiment(f"audited-{name}")
    trail = services.audit
    everything = trail.entries(action="experiment.")
    assert len(everything) == 5
    first_page = trail.entries(action="experiment.", limit=2)
    older = trail.entries(action="experiment.", limit=2, before_id=first_page[-1].id)
    assert [e.id for e in first_page + older] == [e.id for e in everything[:4]]
    cut = everything[2].at
    assert all(e.at <= cut for e in trail.entries(action="experiment.", until_ms=cut))
    assert everything[2] in trail.entries(action="experiment.", until_ms=cut, since_ms=cut)
