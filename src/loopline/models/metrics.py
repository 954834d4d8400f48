"""Standard model quality metrics, per dataset and per slice.

Classification: accuracy, precision, recall, F1 (of the positive class when binary,
macro-averaged otherwise), ROC AUC, log loss and expected calibration error. Regression:
RMSE, MAE, R2. Missing inputs (a model without probabilities) leave a metric out rather
than guessing it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

CALIBRATION_BINS = 10
MAX_NUMERIC_SLICES = 4  # numeric slice columns with many values are cut into quartiles


def expected_calibration_error(truth: np.ndarray, proba: np.ndarray, classes: Sequence[Any]) -> float:
    """Mean |confidence - accuracy| over equal-width confidence bins, weighted by size."""
    confidence = proba.max(axis=1)
    predicted = np.asarray(classes)[proba.argmax(axis=1)]
    correct = (predicted == truth).astype(float)
    bins = np.minimum((confidence * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    error = 0.0
    for b in range(CALIBRATION_BINS):
        members = bins == b
        if members.any():
            error += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(error)


def classification_metrics(
    truth: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None, classes: Sequence[Any] | None
) -> dict[str, float]:
    from sklearn import metrics

    binary = classes is not None and len(classes) == 2
    average = "binary" if binary else "macro"
    positive = classes[1] if binary and classes is not None else 1
    labels = list(classes) if classes is not None else None
    result = {
        "accuracy": metrics.accuracy_score(truth, predicted),
        "precision": metrics.precision_score(
            truth, predicted, average=average, pos_label=positive, zero_division=0
        ),
        "recall": metrics.recall_score(
            truth, predicted, average=average, pos_label=positive, zero_division=0
        ),
        "f1": metrics.f1_score(truth, predicted, average=average, pos_label=positive, zero_division=0),
    }
    if proba is not None and classes is not None and len(set(truth.tolist())) > 1:
        if binary:
            result["roc_auc"] = metrics.roc_auc_score(truth == positive, proba[:, 1])
        elif set(truth.tolist()) <= set(classes):
            result["roc_auc"] = metrics.roc_auc_score(truth, proba, multi_class="ovr", labels=labels)
        result["log_loss"] = metrics.log_loss(truth, np.clip(proba, 1e-15, 1), labels=labels)
        result["calibration_error"] = expected_calibration_error(truth, proba, classes)
    return {k: float(v) for k, v in result.items()}


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn import metrics

    result = {
        "rmse": math.sqrt(metrics.mean_squared_error(truth, predicted)),
        "mae": metrics.mean_absolute_error(truth, predicted),
    }
    if len(truth) > 1:
        result["r2"] = metrics.r2_score(truth, predicted)
    return {k: float(v) for k, v in result.items()}


def task_metrics(
    task: str,
    truth: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray | None,
    classes: Sequence[Any] | None,
) -> dict[str, float]:
    if task == "classification":
        return classification_metrics(truth, predicted, proba, classes)
    return regression_metrics(truth.astype(float), predicted.astype(float))


def slice_groups(column: pd.Series) -> dict[str, np.ndarray]:
    """Row masks per slice: one per value, or per quartile for a many-valued number."""
    if column.dtype.kind in "if" and column.nunique() > 10:
        bins = pd.qcut(column, MAX_NUMERIC_SLICES, duplicates="drop")
        return {str(interval): (bins == interval).to_numpy() for interval in bins.cat.categories}
    return {str(value): (column == value).to_numpy() for value in column.dropna().unique()}


def sliced_metrics(
    task: str,
    frame: pd.DataFrame,
    columns: Sequence[str],
    truth: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray | None,
    classes: Sequence[Any] | None,
) -> dict[str, dict[str, dict[str, float]]]:
    """{column: {slice: {"count": n, metric: value}}}."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        result[column] = {}
        for label, mask in slice_groups(frame[column]).items():
            if not mask.any():
                continue
            part_proba = None if proba is None else proba[mask]
            values = task_metrics(task, truth[mask], predicted[mask], part_proba, classes)
            result[column][label] = {"count": float(mask.sum()), **values}
    return result
