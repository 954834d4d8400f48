"""The loop's decisions under noise and under real harm, on a real server with real traffic
and labels: the scenarios benchmarks/loop.py repeats over many seeds."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loopline.core.loops import LoopEvent
from loopline.specs.monitor import MonitorSpec
from loopline.wiring.backends import local_owner
from tests.integration import pipeline_steps as steps
from tests.integration.loop_world import SQLITE_ONLY, World, champion_version, policy

SIGNATURE_ONLY = {"gates": ["signature_compatible"]}  # the canary, not the gates, decides here


@contextmanager
def busy_cores(count: int = 2) -> Iterator[None]:
    """Other processes spinning on every core, as on a shared machine."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def until_decided(world: World, sign: float, batches: int = 40) -> LoopEvent:
    """Labelled traffic, 40 requests at a time, until the loop decides the canary."""
    for seed in range(100, 100 + batches):
        world.served_arms(steps.concept(40, seed=seed, sign=sign))
        if (decided := world.loops.advance("churn-prod")) is not None:
            return decided
    raise AssertionError(f"no decision after {batches} batches")


def checks(event: LoopEvent) -> dict[str, str]:
    return {c["metric"]: c["verdict"] for c in event.evidence["judgement"]["checks"]}


@SQLITE_ONLY
def test_concept_drift_without_input_drift_alerts_on_accuracy_and_the_retrained_model_wins(
    world: World,
) -> None:
    spec = {"window": {"rows": 300}, "alerts": [{"name": "accuracy", "value": "perf.accuracy", "below": 0.8}]}
    monitors = world.backends.services(local_owner()).monitors
    monitors.create("churn-watch", "churn-prod", "churn-ref", target="y", spec=MonitorSpec.parse(spec))
    world.loops.declare(policy())
    world.served_arms(steps.concept(300, seed=1, sign=-1.0))  # the same inputs, another rule
    outcome = monitors.run("churn-watch")
    assert outcome.run.values["drift.share"] < 0.5  # not the inputs: no dataset drift at the default share
    (alert,) = outcome.opened
    assert alert.rule == "accuracy" and (alert.value or 1) < 0.8
    assert world.loops.start("churn-prod", alert.message).kind == "canary"
    world.wait_for_arms({"stable", "canary"})
    decided = until_decided(world, sign=-1.0)
    assert decided.kind == "promoted" and checks(decided)["accuracy"] == "non_inferior"
    assert champion_version() == 2


@SQLITE_ONLY
def test_an_equal_challenger_on_busy_cores_is_never_rolled_back_for_latency(world: World) -> None:
    rollout = {"max_minutes": 0.3, "on_inconclusive": "promote", "max_accuracy_drop": 0.05}
    world.loops.declare(policy(gates=SIGNATURE_ONLY, rollout=rollout))
    world.served_arms(steps.concept(300, seed=1, sign=1.0))  # no drift: the challenger learns the same
    with busy_cores():
        assert world.loops.start("churn-prod", "scheduled retraining").kind == "canary"
        world.wait_for_arms({"stable", "canary"})
        decided = until_decided(world, sign=1.0)
    assert checks(decided)["latency_ms"] != "harmful", decided.message
    assert decided.kind == "promoted" or "(on_inconclusive: promote)" in decided.message, decided.message


@SQLITE_ONLY
def test_a_real_latency_regression_is_rolled_back(world: World, tmp_path: Path) -> None:
    world.loops.declare(policy(gates=SIGNATURE_ONLY, params={"slow_trees": 500}))
    world.served_arms(steps.concept(300, seed=1, sign=1.0))
    assert world.loops.start("churn-prod", "scheduled retraining").kind == "canary"
    world.wait_for_arms({"stable", "canary"})
    decided = until_decided(world, sign=1.0)
    assert decided.kind == "rolled_back" and checks(decided)["latency_ms"] == "harmful", decided.message
    latency = next(c for c in decided.evidence["judgement"]["checks"] if c["metric"] == "latency_ms")
    assert latency["low"] > latency["margin"] >= 10 and latency["extra"]["mann_whitney_p"] < 0.05
    assert "next: a person: the challenger itself failed" in decided.message
    assert champion_version() == 1
