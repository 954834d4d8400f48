"""The retraining loop's decisions, scenario by scenario, on a real HTTP server with real
traffic and labels (one process plays server, worker and clients; each scenario in a fresh
store). For each: the decision, the time from the canary's start to it, and the challenger
requests and labels it used. Then the two error rates over many seeds, and the forecast's
lead time over the threshold alert.

    python -m benchmarks.loop [--seeds 20] [--quick]

1  covariate shift where retraining helps      -> promoted
2  concept drift, inputs unchanged             -> accuracy alert, retrained, promoted
3  no drift, a monitor that keeps firing       -> one retraining, the rest suppressed
4  a worse challenger                          -> refused by the gates
5  an equal challenger, both cores busy        -> never rolled back for latency (x seeds)
6  a challenger 500 trees slower (tens of ms)  -> rolled back for latency (x seeds)
7  a challenger that fails on some inputs      -> rolled back early, before min_requests
8  gradual concept drift, one window an hour   -> the forecast alert opens first (x seeds)
9  the champion degrades, no canary running    -> back to the previous champion
10 fresh data that fails the contract          -> quarantined, nothing new served
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import loopline as ll

DEPLOYMENT, MODEL, FEATURES = "churn-prod", "churn", ["a", "b", "c"]


def concept(rows: int, seed: int, *, shift: float = 0.0, flip: float = 0.0) -> pd.DataFrame:
    """y = b > a^2 - 1 (curved: a linear model fits it well only near where it learned);
    a centred on `shift`; a share `flip` of the labels inverted (the rule changed)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(shift, 0.6, rows), "b": rng.normal(0, 1.5, rows)})
    frame["c"] = rng.integers(0, 5, rows).astype(float)
    y = (frame["b"] > frame["a"] ** 2 - 1).astype(int).to_numpy()
    flipped = rng.random(rows) < flip
    return frame.assign(y=np.where(flipped, 1 - y, y))


@ll.step
def fit(dataset: str, c: float = 1.0, slow_trees: int = 0, integer_c: bool = False) -> ll.ModelVersion:
    """A logistic regression (or, with `slow_trees`, a forest that slow) on the dataset."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    frame = ll.datasets.get(dataset).to_pandas()
    features = frame[FEATURES]
    if integer_c:  # a training/serving skew: the model insists on whole numbers
        features = features.assign(c=features["c"].round().astype("int64"))
    model = (
        RandomForestClassifier(n_estimators=slow_trees, max_depth=6, random_state=0)
        if slow_trees
        else LogisticRegression(C=c)
    ).fit(features, frame["y"])
    run = ll.active_run()
    assert run is not None
    return run.log_model(model, MODEL, input_example=features.head())


@ll.pipeline
def retrain(dataset: str = "", c: float = 1.0, slow_trees: int = 0, integer_c: bool = False):  # type: ignore[no-untyped-def]
    """The loop's pipeline."""
    return fit(dataset, c, slow_trees, integer_c)


@dataclass
class Outcome:
    scenario: str
    decision: str
    seconds: float | None = None
    requests: int | None = None
    labels: int | None = None
    note: str = ""


class World:
    """A fresh store with a served champion, its deployment and loop, and a client."""

    def __init__(self, home: Path, seed: int, client: Any, services: Any, backends: Any) -> None:
        self.home, self.seed, self.client, self.services, self.backends = (
            home,
            seed,
            client,
            services,
            backends,
        )

    def send(self, frame: pd.DataFrame, labels: bool = True) -> list[str]:
        arms, feedback = [], []
        for record, label in zip(frame[FEATURES].to_dict("records"), frame["y"], strict=True):
            answer = self.client.post(f"/v1/deployments/{DEPLOYMENT}/predict", json={"records": [record]})
            if answer.status_code != 200:
                arms.append("error")
                continue
            body = answer.json()
            arms.append(body["arm"])
            feedback.append({"request_id": body["request_id"], "label": int(label)})
        if labels and feedback:
            self.client.post(f"/v1/deployments/{DEPLOYMENT}/feedback", json={"labels": feedback})
        time.sleep(0.5)  # the log is written every 0.2 s
        return arms

    def declare(self, **policy: Any) -> None:
        from loopline.specs.loop import LoopPolicy

        rollout = {"percent": 50, "min_requests": 60, "max_minutes": 2, **policy.pop("rollout", {})}
        document = {
            "deployment": DEPLOYMENT, "model": MODEL, "pipeline": "benchmarks.loop:retrain",
            "reference_dataset": "reference", "target": "y", "rollout": rollout, **policy,
        }  # fmt: skip
        self.services.loops.declare(LoopPolicy.parse(document))

    def canary(self, traffic: Callable[[int], pd.DataFrame], labels: bool = True) -> Outcome:
        """Start the loop, then traffic in batches of 40 until it decides."""
        started = time.perf_counter()
        event = self.services.loops.start(DEPLOYMENT, "benchmark")
        if event.kind not in ("canary", "shadow"):
            return Outcome("", event.kind, note=event.message[:90])
        deadline = time.monotonic() + 30
        while "canary" not in self.send(concept(10, self.seed + 999), labels=False):
            assert time.monotonic() < deadline, "the server never served the canary"
        for batch in range(200):
            self.send(traffic(batch), labels)
            decided = self.services.loops.advance(DEPLOYMENT)
            if decided is not None:
                judgement = decided.evidence.get("judgement", {})
                harmful = [c["metric"] for c in judgement.get("checks", []) if c["verdict"] == "harmful"]
                return Outcome(
                    "", decided.kind, time.perf_counter() - started, judgement.get("requests"),
                    judgement.get("labels"), f"harmful: {', '.join(harmful) or 'none'}",
                )  # fmt: skip
        return Outcome("", "undecided", time.perf_counter() - started)


@contextmanager
def world(seed: int) -> Iterator[World]:
    from sklearn.linear_model import LogisticRegression

    from loopline import _sdk
    from loopline._pipelines import run_pipeline
    from loopline.core.traffic import TrafficPolicy
    from loopline.serving.server import serving_in_thread
    from loopline.wiring.backends import local_owner

    with tempfile.TemporaryDirectory(prefix="loopline-loop-") as folder:
        home = Path(folder)
        ll.configure(store_uri=f"sqlite:///{home / 'store.db'}", artifacts_uri=str(home / "artifacts"))
        reference = concept(400, seed)
        ll.datasets.register("reference", reference)
        with ll.start_run("churn") as run:
            model = LogisticRegression().fit(reference[FEATURES], reference["y"])
            champion = run.log_model(model, MODEL, input_example=reference[FEATURES].head())
        ll.registry_service().set_alias(MODEL, "champion", champion.version)
        backends = _sdk._backends_in_use()
        services = backends.services(local_owner(), run_pipeline)
        services.deployments.create(DEPLOYMENT, TrafficPolicy.single(f"models:/{MODEL}@champion"))
        try:
            with serving_in_thread(services, backends.tables, (DEPLOYMENT,), refresh_interval=0.2) as client:
                yield World(home, seed, client, services, backends)
        finally:
            _sdk.reset()


@contextmanager
def busy_cores(count: int = 2) -> Iterator[None]:
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


# the scenarios ------------------------------------------------------------------------------


def covariate_shift(seed: int) -> Outcome:
    with world(seed) as w:
        w.declare(rollout={"max_error_rate_increase": 0.05, "max_accuracy_drop": 0.05})
        w.send(concept(400, seed + 1, shift=1.6))  # the population moved where the line fits badly
        return w.canary(lambda k: concept(40, seed + 100 + k, shift=1.6))


def concept_drift(seed: int) -> Outcome:
    from loopline.specs.monitor import MonitorSpec

    with world(seed) as w:
        alert = {"name": "accuracy", "value": "perf.accuracy", "below": 0.75}
        spec = MonitorSpec.parse({"window": {"rows": 300}, "alerts": [alert]})
        w.services.monitors.create("watch", DEPLOYMENT, "reference", target="y", spec=spec)
        w.declare(rollout={"max_error_rate_increase": 0.05, "max_accuracy_drop": 0.05})
        w.send(concept(800, seed + 1, flip=1.0))  # the same inputs; the rule turned over
        run = w.services.monitors.run("watch")
        if not run.opened:
            return Outcome("", "no alert", note=f"accuracy {run.run.values.get('perf.accuracy')}")
        outcome = w.canary(lambda k: concept(40, seed + 100 + k, flip=1.0))
        outcome.note = (
            f"alert at accuracy {run.opened[0].value:.2f}, drift share {run.run.values['drift.share']:.2f}"
        )
        return outcome


def noisy_monitor(seed: int) -> Outcome:
    with world(seed) as w:
        w.declare(gates={"gates": ["signature_compatible", {"better_than_current": {}}]}, cooldown_minutes=60)
        w.send(concept(300, seed + 1))
        kinds = [w.services.loops.start(DEPLOYMENT, f"alert {i}").kind for i in range(5)]
        retrained = sum(k != "suppressed" for k in kinds)
        return Outcome(
            "", f"{retrained} retraining(s)", note=f"{kinds.count('suppressed')} of 5 alerts suppressed"
        )


def worse_challenger(seed: int) -> Outcome:
    with world(seed) as w:
        w.declare(params={"c": 1e-6})  # a model that learns nothing
        w.send(concept(300, seed + 1))
        return w.canary(lambda k: concept(40, seed + 100 + k))


EQUAL = {
    "max_minutes": 0.5,
    "on_inconclusive": "promote",
    "max_error_rate_increase": 0.05,
    "max_accuracy_drop": 0.05,
}
SIGNATURE_ONLY = {"gates": ["signature_compatible"]}


def equal_on_busy_cores(seed: int) -> Outcome:
    with world(seed) as w:
        w.declare(gates=SIGNATURE_ONLY, rollout=EQUAL)
        w.send(concept(300, seed + 1))
        with busy_cores():
            return w.canary(lambda k: concept(40, seed + 100 + k))


def slower_challenger(seed: int) -> Outcome:
    with world(seed) as w:
        w.declare(gates=SIGNATURE_ONLY, params={"slow_trees": 500}, rollout=EQUAL)
        w.send(concept(300, seed + 1))
        return w.canary(lambda k: concept(40, seed + 100 + k))


def error_spike(seed: int) -> Outcome:
    with world(seed) as w:
        gates = {"gates": [{"better_than_current": {}}]}  # its signature changed: c became whole numbers
        w.declare(gates=gates, params={"integer_c": True}, rollout={"min_requests": 200})
        w.send(concept(400, seed + 1, shift=1.6))
        fractional = lambda k: concept(40, seed + 100 + k, shift=1.6).assign(c=lambda f: f["c"] + 0.5)  # noqa: E731
        outcome = w.canary(fractional, labels=False)
        outcome.note += "; min_requests 200"
        return outcome


def gradual_drift(seed: int) -> tuple[Outcome, float | None]:
    from loopline.core.clock import now_ms
    from loopline.specs.monitor import MonitorSpec

    with world(seed) as w:
        rules = [
            {"name": "low", "value": "perf.accuracy", "below": 0.7},
            {"name": "heading low", "value": "perf.accuracy", "below": 0.7, "within": "6h"},
        ]
        spec = MonitorSpec.parse({"window": {"rows": 200}, "alerts": rules})
        w.services.monitors.create("watch", DEPLOYMENT, "reference", target="y", spec=spec)
        start, opened = now_ms(), {}
        for hour in range(30):
            w.send(concept(200, seed + 1000 + hour, flip=0.015 * hour))
            for alert in w.services.monitors.run("watch", at_ms=start + hour * 3_600_000).opened:
                opened.setdefault(alert.rule, hour)
            if "low" in opened:
                break
        lead = opened["low"] - opened["heading low"] if {"low", "heading low"} <= set(opened) else None
        return Outcome("", f"forecast {opened.get('heading low')} h, threshold {opened.get('low')} h"), lead


def degrading_champion(seed: int) -> Outcome:
    from sklearn.linear_model import LogisticRegression

    with world(seed) as w:
        fashion = concept(400, seed + 7, flip=1.0)
        with ll.start_run("churn") as run:
            model = LogisticRegression().fit(fashion[FEATURES], fashion["y"])
            version = run.log_model(model, MODEL, input_example=fashion[FEATURES].head())
        ll.registry_service().set_alias(MODEL, "champion", version.version)
        while (
            w.client.post(
                f"/v1/deployments/{DEPLOYMENT}/predict",
                json={"records": concept(1, 0)[FEATURES].to_dict("records")},
            ).json()["version"]
            != version.version
        ):
            time.sleep(0.05)
        w.declare(guard={"min_accuracy": 0.7, "min_labels": 50})
        started = time.perf_counter()
        for batch in range(50):
            w.send(concept(20, seed + 100 + batch))
            event = w.services.loops.guard(DEPLOYMENT)
            if event is not None:
                champion = ll.registry_service().get_model(MODEL).aliases["champion"]
                return Outcome("", f"{event.kind}: champion v{champion}", time.perf_counter() - started,
                               20 * (batch + 1), event.evidence.get("labels"))  # fmt: skip
        return Outcome("", "not noticed")


def bad_fresh_data(seed: int) -> Outcome:
    with world(seed) as w:
        w.declare(contract={"columns": {"a": {"type": "number", "min": -10, "max": 10}}})
        broken = concept(300, seed + 1)
        broken.loc[broken.index[::10], "a"] = 1e6  # a unit changed upstream
        w.send(broken)
        event = w.services.loops.start(DEPLOYMENT, "benchmark")
        served = w.services.deployments.policy(DEPLOYMENT).kind
        return Outcome("", event.kind, note=f"deployment policy: {served}")


# the report ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=20, help="seeds of scenarios 5, 6 and 8")
    parser.add_argument("--quick", action="store_true", help="3 seeds")
    args = parser.parse_args()
    seeds = 3 if args.quick else args.seeds
    single = [
        ("1 covariate shift", covariate_shift), ("2 concept drift", concept_drift),
        ("3 noisy monitor", noisy_monitor), ("4 worse challenger", worse_challenger),
        ("5 equal, busy cores", equal_on_busy_cores), ("6 slower by 500 trees", slower_challenger),
        ("7 error spike", error_spike), ("9 champion degrades", degrading_champion),
        ("10 bad fresh data", bad_fresh_data),
    ]  # fmt: skip
    print(f"{'scenario':<24} {'decision':<34} {'seconds':>8} {'requests':>9} {'labels':>7}  note")
    for name, scenario in single:
        show(name, scenario(0))
    print()
    false_rollbacks, rollbacks5, decisions5 = 0, 0, []
    for seed in range(1, seeds + 1):
        outcome = equal_on_busy_cores(seed)
        decisions5.append(outcome.decision)
        rollbacks5 += outcome.decision == "rolled_back"
        false_rollbacks += "latency_ms" in outcome.note
    misses, times6 = 0, []
    for seed in range(1, seeds + 1):
        outcome = slower_challenger(seed)
        misses += not (outcome.decision == "rolled_back" and "latency_ms" in outcome.note)
        times6.append(outcome.seconds or 0.0)
    leads = []
    for seed in range(1, seeds + 1):
        outcome, lead = gradual_drift(seed)
        leads.append(lead)
    print(
        f"5 equal challenger, both cores busy: {false_rollbacks} of {seeds} rolled back for latency "
        f"(target 0); {rollbacks5} rolled back in all (on_inconclusive: promote), "
        f"{decisions5.count('promoted')} promoted"
    )
    print(
        f"6 challenger slower by 500 trees: {misses} of {seeds} missed (target at most 1); "
        f"median time to rollback {statistics.median(times6):.1f} s"
    )
    found = [lead for lead in leads if lead is not None]
    median = f"{statistics.median(found):.0f} h" if found else "n/a"
    print(
        f"8 gradual drift: forecast alert's median lead over the threshold alert {median} "
        f"(leads {found}; {len(leads) - len(found)} runs without both alerts)"
    )


def show(name: str, outcome: Outcome) -> None:
    seconds = "" if outcome.seconds is None else f"{outcome.seconds:.1f}"
    requests = "" if outcome.requests is None else str(outcome.requests)
    labels = "" if outcome.labels is None else str(outcome.labels)
    print(
        f"{name:<24} {outcome.decision:<34} {seconds:>8} {requests:>9} {labels:>7}  {outcome.note}",
        flush=True,
    )


if __name__ == "__main__":
    main()
