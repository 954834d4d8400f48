"""`loopline demo`: the whole loop, end to end, on a bundled dataset.

Everything goes through the services a user calls: the training data is registered and
validated; a pipeline with a hyperparameter search trains the model, which gates promote
to @champion; the real HTTP server serves it; simulated clients send traffic and, later,
the true labels. Then the imaging devices are recalibrated (six size features read 40%
larger): the monitor sees the drift and opens an alert, a trigger queues a retraining, and
a worker runs the deployment's retraining loop: fresh data, the same pipeline, gates
against the champion, a canary, and the decision. Each run works in a new folder of its
own, left in place to be inspected with the CLI.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

import loopline as ll
from loopline import _sdk
from loopline.wiring.settings import Settings

EXPERIMENT = "demo-breast-cancer"
MODEL = "breast-cancer"
DATASET = "breast-cancer-train"
DEPLOYMENT = "breast-cancer-prod"
MONITOR = "breast-cancer-drift"
TARGET = "target"
SHIFTED = ["mean radius", "mean perimeter", "mean area", "worst radius", "worst perimeter", "worst area"]
PROMOTION = {"gates": [{"metric_threshold": {"metric": "roc_auc", "min": 0.9}}, "signature_compatible",
                       {"better_than_current": {"metric": "log_loss"}}, "data_validation"]}  # fmt: skip


# the training pipeline: the same one trains the first model and every retraining ----------


@ll.step
def validated(dataset: str, contract: str) -> pd.DataFrame:
    """The dataset version, checked against the data contract (a failure stops the pipeline)."""
    data = ll.datasets.get(dataset)
    run = ll.active_run()
    assert run is not None
    run.log_input(data)
    ll.datasets.validate(data, contract, require=True)
    return data.to_pandas()


@ll.step
def search(frame: pd.DataFrame, contract: str, trials: int) -> ll.ModelVersion:
    """A small Optuna search over the regularisation; the best model is registered."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ll.datasets.validate(frame, contract, require=True)  # tags this run, which the gates read
    x, y = frame.drop(columns=TARGET), frame[TARGET]
    x_fit, x_val, y_fit, y_val = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)

    def objective(trial: Any) -> tuple[float, Any]:
        c = trial.suggest_float("C", 1e-3, 100.0, log=True)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(x_fit, y_fit)
        return float(roc_auc_score(y_val, model.predict_proba(x_val)[:, 1])), model

    result = ll.tune(objective, n_trials=trials, seed=0, register=MODEL, input_example=x.head())
    assert result.model_version is not None
    ll.log_metrics({"val_roc_auc": result.best_value, "trials": result.trials})
    return result.model_version


@ll.pipeline
def training(dataset: str = DATASET, contract: str = "", trials: int = 8):  # type: ignore[no-untyped-def]
    return search(validated(dataset, contract), contract, trials)


# narration ------------------------------------------------------------------------------


@dataclass
class Narrator:
    console: Console
    started: float = field(default_factory=time.perf_counter)
    entries: list[tuple[float, str, str]] = field(default_factory=list)

    def say(self, stage: str, message: str) -> None:
        seconds = time.perf_counter() - self.started
        self.entries.append((seconds, stage, message))
        self.console.print(f"[dim]{seconds:6.1f}s[/] [bold cyan]{stage:<10}[/] {message}", highlight=False)


# the loop -------------------------------------------------------------------------------


def run_demo(settings: Settings, console: Console) -> Path:
    """Run the whole loop in a new folder under the settings' home; returns that folder."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    home = settings.home_path / "demo" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    settings = settings.model_copy(update={"home": home, "store_uri": None, "artifacts_uri": None})
    ll.configure(settings=settings)
    say = Narrator(console)
    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = features.assign(**{TARGET: target.to_numpy()})
    train, production = train_test_split(frame, test_size=0.3, random_state=7, stratify=frame[TARGET])
    early, late = train_test_split(production, test_size=0.4, random_state=7, stratify=production[TARGET])

    reference = ll.datasets.register(DATASET, train)
    contract_path = _write_contract(home, list(features.columns))
    say.say("data", f"registered {reference.uri}: {reference.rows} rows, {len(reference.schema)} columns")
    report = ll.datasets.validate(reference, contract_path, require=True)
    say.say("data", f"validated against {contract_path.name}: {'passed' if report.passed else 'failed'}")

    first = training.run({"contract": str(contract_path)}, experiment=EXPERIMENT)
    champion = first.output()
    say.say("train", f"pipeline run {first.id[:8]}: 8-trial search; best model {champion.uri}")
    holdout = late.reset_index(drop=True)
    promoted = ll.promote(MODEL, champion.version, "champion", policy=PROMOTION, data=holdout, target=TARGET)
    say.say("gate", f"{champion.uri} -> @champion: {len(promoted.results)} gates passed")

    from loopline._pipelines import worker_services
    from loopline.automation.worker import Worker, WorkerOptions
    from loopline.core.automation import JobKind
    from loopline.core.traffic import TrafficPolicy
    from loopline.specs.loop import LoopPolicy
    from loopline.specs.monitor import MonitorSpec

    backends = _sdk._backends_in_use()
    worker_settings = settings.model_copy(update={"worker_pipelines": "loopline.demo"})
    services, run_job = worker_services(worker_settings, backends)
    services.deployments.create(
        DEPLOYMENT, TrafficPolicy.single(f"models:/{MODEL}@champion"), reason="the demo"
    )
    spec = MonitorSpec.parse(
        {"window": {"rows": 150}, "alerts": [{"name": "input-drift", "value": "drift.share", "above": 0.2}]}
    )
    services.monitors.create(MONITOR, DEPLOYMENT, reference.uri, target=TARGET, spec=spec)
    retraining = {
        "deployment": DEPLOYMENT, "model": MODEL, "pipeline": "loopline.demo:training",
        "params": {"contract": str(contract_path), "trials": 6}, "reference_dataset": DATASET,
        "target": TARGET, "holdout_share": 0.25, "gates": PROMOTION, "cooldown_minutes": 30,
        "rollout": {
            "percent": 50, "min_requests": 100, "max_minutes": 10, "max_error_rate_increase": 0.05,
            "max_accuracy_drop": 0.05, "min_labels": 50,
        },
    }  # fmt: skip
    services.loops.declare(LoopPolicy.parse(retraining))
    services.automation.create_trigger(
        "retrain-on-drift", MONITOR, JobKind.RETRAIN, DEPLOYMENT, rule="input-drift", cooldown_s=1800
    )
    worker = Worker(
        backends.store, run_job, WorkerOptions(lease_s=120), periodic=[services.loops.advance_all]
    )
    say.say(
        "deploy",
        f"{DEPLOYMENT} serves models:/{MODEL}@champion; monitor, trigger and retraining loop declared",
    )

    from loopline.serving.server import serving_in_thread

    with serving_in_thread(services, backends.tables, (DEPLOYMENT,)) as client:
        say.say("serve", f"HTTP server up at {client.base_url}")
        arms = _traffic(client, _jitter(early, 150, seed=1))
        say.say("traffic", f"150 requests with labels: {_counts(arms)}")
        outcome = services.monitors.run(MONITOR)
        say.say("monitor", _describe(outcome.run.values, "before the change"))

        shifted_early, shifted_late = _shift(early), _shift(late)
        arms = _traffic(client, _jitter(shifted_early, 300, seed=2))
        say.say(
            "drift", f"devices recalibrated: {', '.join(SHIFTED[:3])}... now read 40% larger; 300 requests"
        )
        outcome = services.monitors.run(MONITOR)
        say.say("monitor", _describe(outcome.run.values, "after the change"))
        for alert in outcome.opened:
            say.say("alert", alert.message)
        job = worker.tick()  # the trigger queues the retraining; the worker runs it
        if job is not None:
            say.say(
                "worker", f"job {job.id} ({job.reason.split(':')[0]}): {job.result.get('message', job.error)}"
            )
        time.sleep(1.0)  # the server follows policy changes within its refresh interval (0.3 s)
        for seed in range(3, 23):  # traffic until the worker has decided the canary
            arms = _traffic(client, _jitter(shifted_late, 60, seed=seed))
            say.say("canary", f"60 requests: {_counts(arms)}")
            worker.tick()
            if services.loops.get(DEPLOYMENT).state.value == "idle":
                break
        decision = services.loops.events(DEPLOYMENT)[-1]
        say.say(decision.kind.replace("_", " "), decision.message.split(": ", 1)[0])
        for check in decision.evidence.get("judgement", {}).get("checks", []):
            say.say("evidence", _check_line(check))
        time.sleep(1.0)
        arms = _traffic(client, _jitter(shifted_late, 100, seed=20))
        say.say("traffic", f"100 more requests: {_counts(arms)}")
        outcome = services.monitors.run(MONITOR)
        say.say("monitor", _describe(outcome.run.values, "after the loop"))

    report_path = home / "demo-report.html"
    _write_report(
        report_path, say, backends, services.loops.events(DEPLOYMENT), services.monitors.runs(MONITOR)
    )
    say.say("report", f"{report_path}")
    _print_timeline(console, services.loops.events(DEPLOYMENT))
    _print_where_to_look(console, home)
    return home


def _write_contract(home: Path, features: list[str]) -> Path:
    """Sizes and shapes are never negative; the label is 0 or 1; nothing is missing."""
    from loopline.specs.contract import Contract

    columns: dict[str, Any] = {name: {"type": "number", "nullable": False, "min": 0} for name in features}
    columns[TARGET] = {"type": "integer", "nullable": False, "allowed": [0, 1]}
    contract = Contract.parse({"rows": {"min": 100}, "columns": columns})
    path = home / "breast-cancer-contract.yaml"
    path.write_text(contract.to_yaml(), encoding="utf-8")
    return path


def _shift(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{c: frame[c] * 1.4 for c in SHIFTED})


def _jitter(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """`rows` requests drawn from `frame`, each value moved by up to 2%: simulated clients."""
    import numpy as np

    rng = np.random.default_rng(seed)
    drawn = frame.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    values = drawn.drop(columns=TARGET)
    return values.mul(rng.uniform(0.98, 1.02, values.shape)).assign(**{TARGET: drawn[TARGET].to_numpy()})


def _traffic(client: Any, frame: pd.DataFrame) -> list[str]:
    """One request per row, then the true labels as feedback; the arm that answered each."""
    arms, labels = [], []
    url = f"/v1/deployments/{DEPLOYMENT}/predict"
    for record, label in zip(frame.drop(columns=TARGET).to_dict("records"), frame[TARGET], strict=True):
        response = client.post(url, json={"records": [record]})
        if response.status_code != 200:
            arms.append(f"error {response.status_code}")
            continue
        body = response.json()
        arms.append(f"{body['arm']} (v{body['version']})")
        labels.append({"request_id": body["request_id"], "label": int(label)})
    if labels:
        client.post(f"/v1/deployments/{DEPLOYMENT}/feedback", json={"labels": labels}).raise_for_status()
    time.sleep(0.5)  # the prediction log is written every 0.2 s
    return arms


def _check_line(check: dict[str, Any]) -> str:
    """One check of the canary's verdict: the effect, its interval, the margin, the verdict."""
    if check["estimate"] is None or check["low"] is None:
        return f"{check['metric']}: no evidence yet -> {check['verdict']}"
    return (
        f"{check['metric']}: challenger - champion = {check['estimate']:+.3g}, interval "
        f"[{check['low']:+.3g}, {check['high']:+.3g}], margin {check['margin']:g} -> "
        f"{check['verdict'].replace('_', '-')} ({check['samples'][1]} vs {check['samples'][0]} samples)"
    )


def _counts(arms: list[str]) -> str:
    return ", ".join(f"{n} by {arm}" for arm, n in sorted(pd.Series(arms).value_counts().items()))


def _describe(values: dict[str, float | None], when: str) -> str:
    def show(key: str) -> str:
        value = values.get(key)
        return "n/a" if value is None else f"{value:.2f}"

    return (
        f"{when}: drift share {show('drift.share')}, accuracy {show('perf.accuracy')} "
        f"(estimated before labels: {show('est.accuracy')})"
    )


def _write_report(path: Path, say: Narrator, backends: Any, events: list[Any], runs: list[Any]) -> None:
    """One page: the timeline, drift and accuracy per monitor run, the traffic split over time."""
    import html

    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from loopline.predictions.log import PREDICTIONS

    log = backends.tables.read(PREDICTIONS, [("deployment", DEPLOYMENT)]).to_pandas()
    log = log[log["row"] == 0]
    start = log["at_ms"].min()
    log["second"] = ((log["at_ms"] - start) // 1000).astype(int)
    split = log.groupby(["second", "version"]).size().unstack(fill_value=0)
    runs = sorted(runs, key=lambda r: r.at)
    figure = make_subplots(
        rows=2, cols=1, subplot_titles=("monitor runs", "requests per second by model version")
    )
    labels = [f"run {i + 1}" for i in range(len(runs))]
    for key, name in (
        ("drift.share", "drift share"),
        ("perf.accuracy", "accuracy"),
        ("est.accuracy", "estimated accuracy"),
    ):
        figure.add_trace(
            go.Scatter(x=labels, y=[r.values.get(key) for r in runs], name=name, mode="lines+markers"), 1, 1
        )
    for version in split.columns:
        figure.add_trace(go.Bar(x=split.index, y=split[version], name=f"version {version}"), 2, 1)
    figure.update_layout(barmode="stack", height=750, title="loopline demo: the loop")
    rows = "".join(
        f"<tr><td>{s:.1f}s</td><td>{html.escape(stage)}</td><td>{html.escape(message)}</td></tr>"
        for s, stage, message in say.entries
    )
    decisions = "".join(
        f"<tr><td>{html.escape(e.kind)}</td><td>{html.escape(e.message)}</td></tr>" for e in events
    )
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>loopline demo</title></head><body>"
        f"<h1>loopline demo</h1>{figure.to_html(full_html=False, include_plotlyjs=True)}"
        f"<h2>timeline</h2><table>{rows}</table>"
        f"<h2>decisions of the retraining loop</h2><table>{decisions}</table>"
        "</body></html>",
        encoding="utf-8",
    )


def _print_timeline(console: Console, events: list[Any]) -> None:
    table = Table("event", "what happened", title=f"the retraining loop of {DEPLOYMENT}")
    for event in events:
        table.add_row(event.kind, event.message)
    console.print(table)


def _print_where_to_look(console: Console, home: Path) -> None:
    cli = f"{_cli_command()} --home {home}"
    console.print(f"store:      {home}")
    console.print("look at it:")
    for command in (
        f"loop status {DEPLOYMENT}",
        "pipelines list",
        f"models versions {MODEL}",
        f"models alias-history {MODEL}",
        f"monitor show {MONITOR}",
        "jobs list",
        f"lineage models:/{MODEL}@champion",
        f"datasets show {DATASET}",
    ):
        console.print(f"  {cli} {command}")
    console.print(f"see all of it in the browser:\n  {cli} ui   (then open http://127.0.0.1:5050/)")


def _cli_command() -> str:
    """`loopline` if it is on the PATH, else the path of the one beside this Python."""
    if shutil.which("loopline"):
        return "loopline"
    beside = Path(sys.executable).parent / "loopline"
    with contextlib.suppress(ValueError):
        return str(beside.relative_to(Path.cwd()))
    return str(beside)
