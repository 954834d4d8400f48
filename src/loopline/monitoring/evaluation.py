"""One window of a deployment's prediction log evaluated against a monitor's reference:
input, output and label drift, realized and estimated performance, latency and errors."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopline.core.errors import InvalidInput
from loopline.models.metrics import classification_metrics, regression_metrics
from loopline.monitoring.estimation import estimate
from loopline.monitoring.reference import Reference, plain_values
from loopline.predictions.window import Window
from loopline.profiling.drift import detect_drift
from loopline.profiling.profile import (
    FINE_BINS,
    CategoricalProfile,
    NumericProfile,
    category_counts,
    category_key,
    fine_range,
)
from loopline.specs.monitor import MonitorSpec

HISTOGRAM_BINS = 30
TOP_CATEGORIES = 15


def monitored_values(reference: Reference, columns: Sequence[str] = ()) -> list[str]:
    """Every value a run of a monitor on `reference` can produce (what `evaluate_window`
    writes): the names alert rules may watch."""
    names = ["rows", "requests", "errors.count", "errors.rate", "drift.share", "drift.dataset",
             "drift.columns", "drift.prediction", "perf.labelled"]  # fmt: skip
    names += [f"latency.{q}" for q in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")]
    names += [f"drift.{c}" for c in (columns or reference.inputs.columns)]
    if reference.target is not None:
        names.append("drift.label")
    if reference.classes is None:
        names += ["perf.rmse", "perf.mae", "perf.r2"]
    else:
        names += ["perf.accuracy", "perf.f1", "perf.roc_auc"]
        if reference.calibration is not None:
            names += ["est.accuracy", "est.f1", "est.roc_auc"]
    return names


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
            frame[window.inputs],  # the log's own columns (ids, arm, latency...) are not inputs
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
    outputs = pd.DataFrame({"prediction": plain_values(frame["prediction"].to_numpy(), reference.classes)})
    output_drift = detect_drift(reference.outputs, outputs)
    values["drift.prediction"] = output_drift.columns[0].statistic
    details["histograms_outputs"] = {
        "prediction": _histogram(reference.outputs.columns["prediction"], outputs["prediction"])
    }
    _labels(window, reference, values, details)
    _estimated(window, reference, values)
    return values, details


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
