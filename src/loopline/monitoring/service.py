"""Monitors: a deployment watched against a reference dataset, one window of its
prediction log at a time.

Creating a monitor computes its reference once: the input profile stored with the
dataset, the profile of the model's outputs and of the labels on that dataset, and (for
classifiers) the calibration that performance estimation needs. Each run then reads one
window and records every monitored value: input, output and label drift, realized and
estimated performance, latency and errors. Alert rules are evaluated on the run's values
and those of the runs before it; an alert opens once, stays open while its rule fires,
and resolves when it stops, each change sent to the monitor's notifiers.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from loopline.artifacts import BlobStore
from loopline.artifacts.tables import TableArea
from loopline.core.access import Role
from loopline.core.clock import now_ms
from loopline.core.entities import Principal
from loopline.core.errors import AlreadyExists, InvalidInput
from loopline.core.monitoring import Alert, Monitor, MonitorRun
from loopline.data.datasets import DatasetService
from loopline.governance.authorization import OPERATIONS_PROJECT, Authorizer
from loopline.models.metrics import classification_metrics, regression_metrics
from loopline.monitoring.drift import detect_drift
from loopline.monitoring.estimation import Calibration, estimate
from loopline.monitoring.notify import notify
from loopline.monitoring.profile import (
    FINE_BINS,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    build_profile,
    category_counts,
    category_key,
    fine_range,
)
from loopline.monitoring.spec import MonitorSpec
from loopline.monitoring.window import Window, read_window
from loopline.registry.names import model_name
from loopline.serving.deployments import DeploymentService
from loopline.store import MetadataStore

REFERENCE_ROWS = 50_000  # rows of the reference dataset the model scores at creation
HISTOGRAM_BINS = 30
TOP_CATEGORIES = 15


@dataclass
class Reference:
    dataset: str
    model: str  # the model version scored on the reference
    task: str | None
    classes: list[str] | None
    target: str | None
    inputs: ReferenceProfile
    outputs: ReferenceProfile
    labels: ReferenceProfile | None
    calibration: Calibration | None
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "model": self.model,
            "task": self.task,
            "classes": self.classes,
            "target": self.target,
            "inputs": self.inputs.to_dict(),
            "outputs": self.outputs.to_dict(),
            "labels": None if self.labels is None else self.labels.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reference:
        return cls(
            dataset=data["dataset"],
            model=data["model"],
            task=data["task"],
            classes=data["classes"],
            target=data["target"],
            inputs=ReferenceProfile.from_dict(data["inputs"]),
            outputs=ReferenceProfile.from_dict(data["outputs"]),
            labels=None if data["labels"] is None else ReferenceProfile.from_dict(data["labels"]),
            calibration=None if data["calibration"] is None else Calibration.from_dict(data["calibration"]),
            metrics=data["metrics"],
        )


@dataclass
class MonitorOutcome:
    run: MonitorRun
    opened: list[Alert] = field(default_factory=list)  # newly firing
    resolved: list[Alert] = field(default_factory=list)
    still_firing: list[Alert] = field(default_factory=list)


class MonitorService:
    def __init__(
        self, store: MetadataStore, blobs: BlobStore, tables: TableArea, principal: Principal
    ) -> None:
        self._store = store
        self._blobs = blobs
        self._tables = tables
        self.principal = principal
        self.datasets = DatasetService(store, blobs, principal)
        self.deployments = DeploymentService(store, blobs, principal)
        self._access = Authorizer(store, principal)

    # definition ------------------------------------------------------------------------

    def create(
        self,
        name: str,
        deployment: str,
        reference: str,
        *,
        target: str | None = None,
        spec: MonitorSpec | None = None,
        replace: bool = False,
        trust: bool = False,
    ) -> Monitor:
        """Watch `deployment` against dataset `reference` (NAME or NAME@VERSION); `target`
        names the dataset's label column, which label drift and estimation need."""
        name = model_name(name)
        self._access.operations(Role.MAINTAINER)
        spec = spec or MonitorSpec()
        built = self._reference(deployment, reference, target, trust)
        blob = self._blobs.put_bytes(gzip.compress(orjson.dumps(built.to_dict()), 1, mtime=0))
        at = now_ms()
        monitor = Monitor(
            name,
            model_name(deployment),
            spec.model_dump(mode="json"),
            blob.digest,
            at,
            self.principal.name,
            at,
        )
        if replace:
            try:
                return self._store.monitors.create(monitor)
            except AlreadyExists:
                return self._store.monitors.replace(monitor)
        return self._store.monitors.create(monitor)

    def _reference(self, deployment: str, ref: str, target: str | None, trust: bool) -> Reference:
        policy = self.deployments.policy(deployment)
        version = self.deployments.registry.resolve(policy.answering_arms[0].target)
        model = self.deployments.registry.load(version.uri, trust=trust)
        dataset = self.datasets.get(ref)
        inputs = [c for c in model.signature.input_names if c in dataset.schema] if model.signature else []
        inputs = inputs or [c for c in dataset.schema if c != target]
        if target is not None and target not in dataset.schema:
            raise InvalidInput(f"{dataset.uri} has no column {target!r}; it has {list(dataset.schema)}")
        frame = self.datasets.read(dataset, [*inputs, *([target] if target else [])]).to_pandas()
        if len(frame) > REFERENCE_ROWS:
            frame = frame.sample(REFERENCE_ROWS, random_state=0)
        predicted, proba, _ = model.score(frame[inputs])
        stored = self.datasets.reference_profile(dataset)
        classes = None if model.classes is None else [category_key(c) for c in model.classes]
        calibration, metrics = None, {}
        if target is not None:
            truth = frame[target].to_numpy()
            if classes is not None:
                truth_text = np.asarray([category_key(v) for v in truth])
                predicted_text = np.asarray([category_key(v) for v in predicted])
                metrics = classification_metrics(truth_text, predicted_text, proba, classes)
                if proba is not None:
                    calibration = Calibration.fit(np.asarray(proba, dtype=float), truth_text, classes)
            else:
                metrics = regression_metrics(truth.astype(float), np.asarray(predicted, dtype=float))
        return Reference(
            dataset=dataset.uri,
            model=version.uri,
            task=model.metadata.task,
            classes=classes,
            target=target,
            inputs=ReferenceProfile(
                stored.rows, {c: stored.columns[c] for c in inputs if c in stored.columns}
            ),
            outputs=build_profile(pd.DataFrame({"prediction": _plain(predicted, classes)})),
            labels=None
            if target is None
            else ReferenceProfile(stored.rows, {target: stored.columns[target]}),
            calibration=calibration,
            metrics=metrics,
        )

    def reference(self, monitor: Monitor) -> Reference:
        raw = self._blobs.read(monitor.reference_blob, f"monitor {monitor.name} (reference)")
        return Reference.from_dict(orjson.loads(gzip.decompress(raw)))

    def get(self, name: str) -> Monitor:
        self._access.operations(Role.VIEWER)
        return self._store.monitors.get(model_name(name))

    def list_all(self) -> list[Monitor]:
        if not self._access.visible(OPERATIONS_PROJECT):
            return []
        return self._store.monitors.list_all()

    def runs(self, name: str, limit: int = 100, with_details: bool = False) -> list[MonitorRun]:
        self._access.operations(Role.VIEWER)
        return self._store.monitors.runs(model_name(name), limit, with_details)

    def run_record(self, name: str, run_id: int | None = None) -> MonitorRun:
        self._access.operations(Role.VIEWER)
        if run_id is None:
            newest = self._store.monitors.runs(model_name(name), 1)
            if not newest:
                raise InvalidInput(f"monitor {name!r} has not run yet: `loopline monitor run {name}`")
            run_id = newest[0].id
        return self._store.monitors.run(model_name(name), run_id)

    def alerts(self, name: str | None = None, status: str | None = None) -> list[Alert]:
        self._access.operations(Role.VIEWER)
        return self._store.monitors.alerts(None if name is None else model_name(name), status)

    def report_html(self, name: str, run_id: int | None = None, *, inline_js: bool = True) -> str:
        from loopline.monitoring.report import render_html

        run = self.run_record(name, run_id)
        history = [r for r in self.runs(name, 200) if r.at <= run.at]
        period = [a for a in self.alerts(name) if a.first_at <= run.at]
        return render_html(self.get(name), run, history, period, inline_js)

    def report_png(self, name: str, target: Path, run_id: int | None = None) -> None:
        from loopline.monitoring.report import render_png

        run = self.run_record(name, run_id)
        render_png(self.get(name), run, [r for r in self.runs(name, 200) if r.at <= run.at], target)

    # a run ---------------------------------------------------------------------------------

    def run(self, name: str, at_ms: int | None = None) -> MonitorOutcome:
        """Evaluate the monitor on its window as of now (or `at_ms`), store the run, and
        open, update or resolve alerts."""
        self._access.operations(Role.MAINTAINER)
        monitor = self.get(name)
        spec = MonitorSpec.parse(monitor.spec)
        reference = self.reference(monitor)
        at = at_ms if at_ms is not None else now_ms()
        policy = self.deployments.policy(monitor.deployment)
        arms = [a.name for a in policy.answering_arms]
        window = read_window(self._tables, monitor.deployment, spec.window, arms, at)
        values, details = evaluate_window(window, reference, spec)
        run = self._store.monitors.add_run(
            monitor.name, at, (window.start_ms, window.end_ms), len(window.rows), values, details
        )
        return self._alerts(monitor, spec, run)

    def _alerts(self, monitor: Monitor, spec: MonitorSpec, run: MonitorRun) -> MonitorOutcome:
        outcome = MonitorOutcome(run)
        if not spec.alerts:
            return outcome
        history = self._store.monitors.runs(monitor.name, max(r.windows for r in spec.alerts))
        for rule in spec.alerts:
            recent = history[: rule.windows]
            breached = len(recent) == rule.windows and all(
                rule.breached(r.values.get(rule.value)) for r in recent
            )
            if not breached:
                resolved = self._store.monitors.resolve_alert(monitor.name, rule.name, run.at)
                if resolved is not None:
                    outcome.resolved.append(self._notify(monitor, spec, resolved, "resolved"))
                continue
            value = run.values.get(rule.value)
            evidence = {
                "rule": rule.describe(),
                "runs": [{"run": r.id, "at": r.at, "value": r.values.get(rule.value)} for r in recent],
                "window": [run.window_start, run.window_end],
                "drifted_columns": run.details.get("drifted_columns", []),
            }
            message = f"{rule.name}: {rule.value} = {value:.4g} ({rule.describe()})"
            draft = Alert(
                0,
                monitor.name,
                rule.name,
                rule.severity,
                "firing",
                run.at,
                run.at,
                None,
                1,
                value,
                message,
                evidence,
            )
            alert, new = self._store.monitors.open_alert(monitor.name, draft)
            if new:
                outcome.opened.append(self._notify(monitor, spec, alert, "firing"))
            else:
                outcome.still_firing.append(alert)
        return outcome

    def _notify(self, monitor: Monitor, spec: MonitorSpec, alert: Alert, event: str) -> Alert:
        if not spec.notify:
            return alert
        payload = {
            "event": event,
            "monitor": monitor.name,
            "deployment": monitor.deployment,
            "rule": alert.rule,
            "severity": alert.severity,
            "message": alert.message if event == "firing" else f"resolved: {alert.message}",
            "value": alert.value,
            "first_at": alert.first_at,
            "evidence": alert.evidence,
        }
        outcomes = [{**o, "event": event, "at": now_ms()} for o in notify(spec.notify, payload)]
        self._store.monitors.record_notifications(monitor.name, alert.id, outcomes)
        return self._store.monitors.alert(monitor.name, alert.id)


# --- the values of one window -----------------------------------------------------------------


def evaluate_window(
    window: Window, reference: Reference, spec: MonitorSpec
) -> tuple[dict[str, float | None], dict[str, Any]]:
    """Every monitored value of `window`, and the details a report draws."""
    frame = window.rows
    values: dict[str, float | None] = {"rows": float(len(frame)), "requests": float(window.requests)}
    details: dict[str, Any] = {
        "warnings": list(window.warnings),
        "reference": reference.dataset,
        "model": reference.model,
    }
    attempts = window.requests + window.errors
    values["errors.count"] = float(window.errors)
    values["errors.rate"] = window.errors / attempts if attempts else None
    if len(window.latency_ms):
        for label, q in (("p50", 50), ("p95", 95), ("p99", 99)):
            values[f"latency.{label}_ms"] = float(np.percentile(window.latency_ms, q))
        values["latency.mean_ms"] = float(window.latency_ms.mean())
    if frame.empty:
        details["warnings"].append("the window is empty: nothing was predicted in it")
        return values, details
    columns = spec.columns or [c for c in window.inputs if c in reference.inputs.columns]
    if missing := [c for c in spec.columns or [] if c not in reference.inputs.columns]:
        raise InvalidInput(f"monitor columns {missing} are not in the reference {reference.dataset}")
    if not columns:
        details["warnings"].append("no logged input is in the reference: input drift not tested")
    else:
        drift = detect_drift(
            reference.inputs,
            frame,
            columns=columns,
            tests=spec.drift.tests,
            thresholds=spec.drift.thresholds,
            drift_share=spec.drift.drift_share,
        )
        values["drift.share"] = drift.share
        values["drift.dataset"] = float(drift.dataset_drift)
        values["drift.columns"] = float(len(drift.drifted_columns))
        for column in drift.columns:
            values[f"drift.{column.column}"] = column.statistic
        details["drift"] = [vars(c) for c in drift.columns]
        details["drifted_columns"] = drift.drifted_columns
        details["warnings"] += drift.warnings
        details["histograms"] = {c: _histogram(reference.inputs.columns[c], frame[c]) for c in columns}
    outputs = pd.DataFrame({"prediction": _plain(frame["prediction"].to_numpy(), reference.classes)})
    output_drift = detect_drift(reference.outputs, outputs)
    values["drift.prediction"] = output_drift.columns[0].statistic
    details["histograms_outputs"] = {
        "prediction": _histogram(reference.outputs.columns["prediction"], outputs["prediction"])
    }
    _labels(window, reference, values, details)
    _estimated(window, reference, values)
    return values, details


def _plain(values: Any, classes: list[str] | None) -> Any:
    """Class labels as text (as the reference stored them); numbers as they are."""
    return np.asarray([category_key(v) for v in values]) if classes is not None else np.asarray(values)


def _labels(
    window: Window, reference: Reference, values: dict[str, float | None], details: dict[str, Any]
) -> None:
    frame = window.rows
    known = frame[frame["label"].notna()]
    values["perf.labelled"] = float(len(known))
    if known.empty:
        return
    classes = reference.classes
    if classes is not None:
        truth = np.asarray([category_key(v) for v in known["label"]])
        predicted = np.asarray([category_key(v) for v in known["prediction"]])
        proba = _proba(known, window.proba, classes)
        metrics = classification_metrics(truth, predicted, proba, classes)
        keys = ("accuracy", "f1", "roc_auc")
    else:
        truth = pd.to_numeric(known["label"], errors="coerce").to_numpy(dtype=float)
        usable = np.isfinite(truth)
        if not usable.any():
            details["warnings"].append("feedback labels are not numbers: regression metrics skipped")
            return
        metrics = regression_metrics(truth[usable], known["prediction"].to_numpy(dtype=float)[usable])
        keys = ("rmse", "mae", "r2")
    values.update({f"perf.{k}": metrics[k] for k in keys if k in metrics})
    if reference.labels is not None and reference.target is not None:
        labels = pd.DataFrame({reference.target: truth if classes is None else known["label"].to_numpy()})
        if classes is not None:
            labels[reference.target] = [category_key(v) for v in labels[reference.target]]
        values["drift.label"] = detect_drift(reference.labels, labels).columns[0].statistic


def _proba(frame: pd.DataFrame, columns: list[str], classes: list[str]) -> np.ndarray | None:
    by_label = {c.removeprefix("proba."): c for c in columns}
    if not classes or any(c not in by_label for c in classes):
        return None
    return frame[[by_label[c] for c in classes]].to_numpy(dtype=float)


def _estimated(window: Window, reference: Reference, values: dict[str, float | None]) -> None:
    if reference.calibration is None or reference.classes is None:
        return
    proba = _proba(window.rows, window.proba, reference.classes)
    if proba is None:
        return
    index = {c: i for i, c in enumerate(reference.classes)}
    predicted = np.asarray([index.get(category_key(v), -1) for v in window.rows["prediction"]])
    keep = predicted >= 0
    for key, value in estimate(reference.calibration.apply(proba[keep]), predicted[keep]).items():
        values[f"est.{key}"] = value


def _histogram(reference: NumericProfile | CategoricalProfile, current: pd.Series) -> dict[str, Any]:
    """Reference and current shares over common bins (numbers) or the main categories."""
    if isinstance(reference, NumericProfile) and reference.count:
        values = pd.to_numeric(current, errors="coerce").to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        low = min(reference.minimum, float(values.min())) if len(values) else reference.minimum
        high = max(reference.maximum, float(values.max())) if len(values) else reference.maximum
        edges = np.linspace(low, high if high > low else low + 1, HISTOGRAM_BINS + 1)
        start, end = fine_range(reference.minimum, reference.maximum)
        centres = start + (np.arange(FINE_BINS) + 0.5) * (end - start) / FINE_BINS
        ref_counts = np.histogram(centres, bins=edges, weights=reference.fine_counts)[0]
        cur_counts = np.histogram(values, bins=edges)[0]
        return {
            "kind": "numeric",
            "edges": edges.tolist(),
            "reference": _shares(ref_counts),
            "current": _shares(cur_counts),
        }
    if isinstance(reference, CategoricalProfile):
        counts = pd.Series(category_counts(current)).sort_values(ascending=False)
        top = list(reference.frequencies)[:TOP_CATEGORIES]
        top += [k for k in counts.index[:TOP_CATEGORIES] if k not in top][: TOP_CATEGORIES // 3]
        total_ref, total_cur = max(reference.count, 1), max(int(counts.sum()), 1)
        return {
            "kind": "categorical",
            "categories": top,
            "reference": [reference.frequencies.get(k, 0) / total_ref for k in top],
            "current": [int(counts.get(k, 0)) / total_cur for k in top],
        }
    return {"kind": "empty"}


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
