"""The closed loop for real: a served champion, live traffic and labels through the HTTP
server, a retraining pipeline, gates, a canary, and the decision."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

import loopline as ll
from loopline.core.entities import Principal
from loopline.core.loops import LoopState
from loopline.core.traffic import TrafficPolicy
from loopline.specs.loop import LoopPolicy
from loopline.wiring.backends import local_owner
from tests.integration import pipeline_steps as steps
from tests.integration.loop_world import FEATURES, SQLITE_ONLY, World, champion_version, kinds, policy


def test_a_better_challenger_wins_its_canary_and_is_promoted(world: World) -> None:
    world.loops.declare(policy())
    world.served_arms(steps.concept(500, seed=1, sign=-1.0))  # the world changed: the champion errs
    event = world.loops.start("churn-prod", "drift alert 1 of monitor churn")
    assert event.kind == "canary", event.message
    loop = world.loops.get("churn-prod")
    assert loop.state is LoopState.CANARY and loop.champion == 1 and loop.challenger == 2
    world.wait_for_arms({"stable", "canary"})
    assert world.loops.advance("churn-prod") is None  # not enough requests yet
    world.served_arms(steps.concept(160, seed=2, sign=-1.0))
    decided = world.loops.advance("churn-prod")
    assert decided is not None and decided.kind == "promoted", decided
    assert champion_version() == 2
    assert world.backends.services(local_owner()).deployments.policy("churn-prod") == TrafficPolicy.single(
        "models:/churn@champion"
    )
    assert kinds(world) == ["declared", "triggered", "data", "canary", "promoted"]
    data = world.loops.events("churn-prod")[2]
    assert data.evidence["production_train"] > 0 and data.evidence["holdout"] >= 20
    assert world.loops.get("churn-prod").state is LoopState.IDLE


@SQLITE_ONLY
def test_a_model_with_text_or_boolean_classes_goes_round_the_loop(labelled_world: World) -> None:
    """Labels come back as text from the log: the loop trains, gates and judges the canary
    on the model's own classes, whatever their type."""
    world = labelled_world
    world.loops.declare(policy())
    world.served_arms(steps.concept(500, seed=1, sign=-1.0))
    event = world.loops.start("churn-prod", "drift")
    assert event.kind == "canary", event.message
    world.wait_for_arms({"stable", "canary"})
    world.served_arms(steps.concept(160, seed=2, sign=-1.0))
    decided = world.loops.advance("churn-prod")
    assert decided is not None and decided.kind == "promoted", decided
    challenger = ll.load_model("models:/churn@champion").native
    assert list(challenger.classes_) == sorted(world.classes)  # trained on the classes, not on text


@SQLITE_ONLY
def test_a_worse_challenger_is_refused_and_the_champion_keeps_serving(world: World) -> None:
    world.loops.declare(policy(params={"c": 1e-6}, cooldown_minutes=60))  # a model that learns nothing
    world.served_arms(steps.concept(300, seed=1, sign=1.0))
    event = world.loops.start("churn-prod", "performance alert")
    assert event.kind == "refused" and "the champion stays" in event.message
    failed = [g["gate"] for g in event.evidence["report"]["gates"] if not g["passed"]]
    assert f"failed the gates {', '.join(failed)} against" in event.message  # named, not just counted
    assert any(not g["passed"] for g in event.evidence["report"]["gates"])
    assert champion_version() == 1
    assert world.backends.services(local_owner()).deployments.policy("churn-prod").kind == "single"
    again = world.loops.start("churn-prod", "another alert")  # a noisy monitor: no retraining storm
    assert again.kind == "suppressed" and "cooling down" in again.message and "--force" in again.message
    forced = world.loops.start("churn-prod", "fixed the pipeline", force=True)  # someone knows better
    assert forced.kind == "refused"  # it ran (and the same data refuses the same way)
    kinds = [e.kind for e in world.loops.events("churn-prod")]
    assert kinds[-5:] == ["suppressed", "forced", "triggered", "data", "refused"]
    (entry,) = world.backends.services(local_owner()).audit.entries(action="loop.forced")
    assert "the cool-down overridden" in entry.reason


def test_a_canary_whose_errors_rise_is_rolled_back_early(world: World) -> None:
    gates = {"gates": [{"better_than_current": {}}]}
    world.loops.declare(policy(params={"integer_c": True}, gates=gates, rollout={"min_requests": 500}))
    world.served_arms(steps.concept(500, seed=1, sign=-1.0))
    assert world.loops.start("churn-prod", "drift").kind == "canary"
    world.wait_for_arms({"stable", "canary"})
    live = steps.concept(80, seed=3, sign=-1.0).assign(c=lambda f: f["c"] + 0.5)  # fractional counts
    answered = world.served_arms(live)
    assert "error 422" in answered and "stable" in answered
    decided = world.loops.advance("churn-prod")
    assert decided is not None and decided.kind == "rolled_back" and "error_rate: +" in decided.message
    assert decided.evidence["judgement"]["requests"] < 500  # no need to wait for min_requests
    assert champion_version() == 1
    assert world.backends.services(local_owner()).deployments.policy("churn-prod").kind == "single"


@SQLITE_ONLY
def test_a_failing_retraining_leaves_the_champion_serving(world: World) -> None:
    world.loops.declare(policy(params={"c": -1.0}))  # scikit-learn refuses a negative C
    event = world.loops.start("churn-prod", "drift")
    assert event.kind == "failed" and "the champion keeps serving" in event.message
    assert "InvalidParameterError" in event.message or "ValueError" in event.message
    assert champion_version() == 1 and world.loops.get("churn-prod").state is LoopState.IDLE
    assert set(world.served_arms(steps.concept(5, seed=4, sign=1.0), labels=False)) == {"main"}


@SQLITE_ONLY
def test_a_shadow_challenger_answers_copies_and_is_promoted_on_the_same_requests(world: World) -> None:
    world.loops.declare(policy(rollout={"mode": "shadow", "min_requests": 60, "min_labels": 30}))
    world.served_arms(steps.concept(500, seed=1, sign=-1.0))
    event = world.loops.start("churn-prod", "drift")
    assert event.kind == "shadow" and "a copy of every request" in event.message
    world.wait_for_arms({"primary"})
    assert world.loops.advance("churn-prod") is None
    assert set(world.served_arms(steps.concept(80, seed=2, sign=-1.0))) == {
        "primary"
    }  # clients see the champion
    decided = world.loops.advance("churn-prod")
    assert decided is not None and decided.kind == "promoted" and "accuracy: +" in decided.message
    checks = {c["metric"]: c for c in decided.evidence["judgement"]["checks"]}
    assert checks["accuracy"]["verdict"] == "non_inferior" and checks["accuracy"]["estimate"] > 0.1
    assert champion_version() == 2


@SQLITE_ONLY
def test_a_loop_left_mid_step_by_a_dead_worker_is_reset_and_the_champion_serves(world: World) -> None:
    from loopline.core.clock import now_ms

    world.loops.declare(policy())
    world.served_arms(steps.concept(500, seed=1, sign=-1.0))
    assert world.loops.start("churn-prod", "drift").kind == "canary"
    store = world.backends.store
    eleven_minutes_ago = now_ms() - 11 * 60_000  # a worker took the decision, then died
    assert store.loops.move("churn-prod", LoopState.CANARY, LoopState.DECIDING, eleven_minutes_ago)
    (event,) = world.loops.advance_all()
    assert event.kind == "failed" and "reset from deciding: no worker finished it in time" in event.message
    assert world.loops.get("churn-prod").state is LoopState.IDLE and champion_version() == 1
    assert world.backends.services(local_owner()).deployments.policy("churn-prod").kind == "single"
    with pytest.raises(Exception, match="nothing to reset"):
        world.loops.reset("churn-prod", "again")


@SQLITE_ONLY
def test_a_canary_that_never_gets_enough_traffic_is_rolled_back(world: World) -> None:
    world.loops.declare(policy(rollout={"min_requests": 1000, "max_minutes": 0.01}))
    world.served_arms(steps.concept(500, seed=1, sign=-1.0))
    assert world.loops.start("churn-prod", "drift").kind == "canary"
    world.served_arms(steps.concept(20, seed=2, sign=-1.0))
    decided = world.loops.advance("churn-prod")
    assert decided is not None and decided.kind == "rolled_back", decided
    assert "of 1000 requests" in decided.message or "not shown non-inferior" in decided.message
    assert "(on_inconclusive: rollback)" in decided.message
    assert champion_version() == 1


@SQLITE_ONLY
def test_an_undecided_canary_on_hold_keeps_its_share_and_asks_a_person_once(
    world: World, tmp_path: Path
) -> None:
    rollout = {"min_requests": 1000, "max_minutes": 0.01, "on_inconclusive": "hold"}
    world.loops.declare(
        policy(rollout=rollout, notify=[{"type": "log", "path": str(tmp_path / "held.jsonl")}])
    )
    world.served_arms(steps.concept(500, seed=1, sign=-1.0))
    assert world.loops.start("churn-prod", "drift").kind == "canary"
    world.served_arms(steps.concept(20, seed=2, sign=-1.0))
    held = world.loops.advance("churn-prod")
    assert held is not None and held.kind == "held" and "is still undecided" in held.message
    assert "keeps its share (on_inconclusive: hold)" in held.message
    assert "held" in (tmp_path / "held.jsonl").read_text()
    assert world.loops.advance("churn-prod") is None  # asked once; the checks go on
    assert world.loops.get("churn-prod").state is LoopState.CANARY
    assert world.backends.services(local_owner()).deployments.policy("churn-prod").kind == "canary"


@SQLITE_ONLY
def test_with_a_protected_champion_the_loop_stops_at_awaiting_approval(world: World) -> None:
    registry = world.backends.services(local_owner()).registry
    registry.protect_alias("churn", "champion")
    world.loops.declare(policy())
    world.served_arms(steps.concept(500, seed=1, sign=-1.0))
    assert world.loops.start("churn-prod", "drift").kind == "canary"
    world.wait_for_arms({"stable", "canary"})
    world.served_arms(steps.concept(160, seed=2, sign=-1.0))
    decided = world.loops.advance("churn-prod")
    assert decided is not None and decided.kind == "awaiting_approval", decided
    assert champion_version() == 1 and world.loops.get("churn-prod").state is LoopState.IDLE
    assert (
        world.backends.services(local_owner()).deployments.policy("churn-prod").kind == "single"
    )  # canary over
    (request,) = registry.alias_requests("churn", "pending")
    assert request.version == 2 and request.id == decided.evidence["request"]
    second = Principal("second-maintainer", is_owner=True)
    world.backends.services(second).registry.approve(request.id, "looked at the canary")
    assert champion_version() == 2  # the deployment follows @champion


def guarded_policy(tmp_path: Path) -> LoopPolicy:
    return policy(
        guard={"min_accuracy": 0.8, "min_labels": 50, "every_minutes": 30},
        notify=[{"type": "log", "path": str(tmp_path / "escalations.jsonl")}],
    )


@SQLITE_ONLY
def test_a_champion_that_degrades_is_rolled_back_to_the_last_good_version(
    world: World, tmp_path: Path
) -> None:
    reference = steps.concept(200, seed=5, sign=-1.0)
    with ll.start_run("churn") as run:  # a version fit to a passing fashion, promoted by hand
        fitted = LogisticRegression().fit(reference[FEATURES], reference["y"])
        fashion = run.log_model(fitted, "churn", input_example=reference[FEATURES].head())
    ll.registry_service().set_alias("churn", "champion", fashion.version)
    world.wait_for_version(fashion.version)
    world.loops.declare(guarded_policy(tmp_path))
    assert world.loops.guard("churn-prod") is None  # no evidence yet
    world.served_arms(steps.concept(120, seed=6, sign=1.0))  # the world is as it was: it errs
    event = world.loops.guard("churn-prod")
    assert event is not None and event.kind == "guarded", event
    assert f"champion version {fashion.version} of churn: its accuracy" in event.message
    assert "rolled back to version 1, which does better (accuracy" in event.message
    assert champion_version() == 1 and event.evidence["labels"] >= 50
    (entry,) = world.backends.services(local_owner()).audit.entries(action="loop.guarded")
    assert "rolled back to version 1" in entry.reason
    assert world.loops.guard("churn-prod") is None  # rate-limited: one action per every_minutes
    assert "rolled back to version 1" in (tmp_path / "escalations.jsonl").read_text()


@SQLITE_ONLY
def test_a_champion_that_degrades_with_nothing_to_go_back_to_is_escalated(
    world: World, tmp_path: Path
) -> None:
    world.loops.declare(guarded_policy(tmp_path))
    world.served_arms(steps.concept(120, seed=7, sign=-1.0))  # the world flipped
    event = world.loops.guard("churn-prod")
    assert event is not None and event.kind == "escalated", event
    assert "there is no earlier champion to go back to" in event.message and champion_version() == 1
    sent = (tmp_path / "escalations.jsonl").read_text()
    assert "no earlier champion" in sent and event.evidence["notified"][0]["ok"]


@SQLITE_ONLY
@pytest.mark.parametrize("on_invalid", ["stop", "last_good"])
def test_fresh_data_that_fails_its_contract_is_quarantined(
    world: World, tmp_path: Path, on_invalid: str
) -> None:
    contract = {"columns": {"a": {"type": "number", "min": -10, "max": 10}}}
    notify = [{"type": "log", "path": str(tmp_path / "quarantine.jsonl")}]
    world.loops.declare(policy(contract=contract, on_invalid_data=on_invalid, notify=notify))
    broken = steps.concept(300, seed=1, sign=-1.0)
    broken.loc[broken.index[::10], "a"] = 1e6  # a unit changed upstream in one row of ten
    world.served_arms(broken)
    event = world.loops.start("churn-prod", "drift")
    quarantined = next(e for e in world.loops.events("churn-prod") if e.kind == "quarantined")
    assert "300 labelled production rows failed the data contract (max a:" in quarantined.message
    stored = ll.datasets.get("churn-prod-quarantine")
    assert stored.info.tags["quarantined"] == "true" and quarantined.evidence["dataset"] == stored.uri
    assert stored.to_pandas()["a"].max() == 1e6  # kept for a person to look at
    assert "quarantined" in (tmp_path / "quarantine.jsonl").read_text()
    (entry,) = world.backends.services(local_owner()).audit.entries(action="loop.quarantined")
    assert "failed the data contract" in entry.reason
    if on_invalid == "stop":
        assert event.kind == "quarantined" and "the loop stops until the data is fixed" in event.message
        assert world.backends.services(local_owner()).deployments.policy("churn-prod").kind == "single"
        assert world.loops.get("churn-prod").state is LoopState.IDLE and champion_version() == 1
    else:
        data = next(e for e in world.loops.events("churn-prod") if e.kind == "data")
        assert data.evidence["production_train"] == 0  # trained on the reference alone
        training = ll.datasets.get("churn-prod-training").to_pandas()
        assert training["a"].max() < 10


@SQLITE_ONLY
def test_after_rollbacks_in_a_row_the_loop_asks_a_person_and_stops(world: World) -> None:
    world.loops.declare(
        policy(params={"integer_c": True}, gates={"gates": [{"better_than_current": {}}]}, max_rollbacks=2,
               cooldown_minutes=0)
    )  # fmt: skip
    world.served_arms(steps.concept(500, seed=1, sign=-1.0))
    for attempt in range(2):
        started = world.loops.start("churn-prod", f"drift {attempt}")
        assert started.kind == "canary", started.message
        world.wait_for_arms({"stable", "canary"})
        fractional = steps.concept(80, seed=3, sign=-1.0).assign(c=lambda f: f["c"] + 0.5)
        world.served_arms(fractional, labels=False)  # unlabelled: the next retraining must not learn them
        decided = world.loops.advance("churn-prod")
        assert decided is not None and decided.kind == "rolled_back", decided
        assert "next: a person" in decided.message
    assert "2 challengers in a row were rolled back" in decided.message
    assert kinds(world)[-2:] == ["rolled_back", "escalated"]
    again = world.loops.start("churn-prod", "drift 3")
    assert again.kind == "suppressed" and "waits for a person" in again.message


@SQLITE_ONLY
def test_a_canary_ended_by_a_change_of_traffic_ends_the_loop(world: World) -> None:
    world.loops.declare(policy())
    world.served_arms(steps.concept(300, seed=1, sign=-1.0))
    assert world.loops.start("churn-prod", "drift").kind == "canary"
    deployments = world.backends.services(local_owner()).deployments
    deployments.set_traffic("churn-prod", TrafficPolicy.single("models:/churn@champion"), "by hand")
    event = world.loops.advance("churn-prod")
    assert event is not None and event.kind == "failed" and "ended by a change of traffic" in event.message
    assert world.loops.get("churn-prod").state is LoopState.IDLE and champion_version() == 1
