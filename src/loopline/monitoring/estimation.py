"""Performance estimated before labels arrive, for classifiers (confidence-based
performance estimation, CBPE).

If predicted probabilities are calibrated, a row predicted as class k is right with
probability p_k, so the expected confusion matrix of a window, and every metric read off
it, follows from the probabilities alone. Models are rarely calibrated, so an isotonic
map per class is fitted on a labelled reference window (the reference dataset) and
applied to live probabilities first. This holds under covariate shift (inputs move, the
relation between inputs and labels stays); under concept drift only labels can tell,
which is why the realized metrics are reported beside the estimate once labels arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Calibration:
    """Per class, an increasing map from raw to calibrated probability (isotonic), stored as
    its knots: JSON, not a pickled estimator."""

    classes: list[Any]
    knots: list[tuple[list[float], list[float]]]

    @classmethod
    def fit(cls, proba: np.ndarray, truth: np.ndarray, classes: list[Any]) -> Calibration:
        from sklearn.isotonic import IsotonicRegression

        knots = []
        for k, label in enumerate(classes):
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(proba[:, k], (truth == label).astype(float))
            knots.append((iso.X_thresholds_.tolist(), iso.y_thresholds_.tolist()))
        return cls(list(classes), knots)

    def apply(self, proba: np.ndarray) -> np.ndarray:
        calibrated = np.column_stack(
            [np.interp(proba[:, k], np.asarray(x), np.asarray(y)) for k, (x, y) in enumerate(self.knots)]
        )
        if len(self.classes) == 2:  # one free probability: take the positive class's map
            calibrated[:, 0] = 1.0 - calibrated[:, 1]
        totals = calibrated.sum(axis=1, keepdims=True)
        fallback = np.full_like(calibrated, 1.0 / len(self.classes))
        return np.where(totals > 0, calibrated / np.where(totals > 0, totals, 1.0), fallback)

    def to_dict(self) -> dict[str, Any]:
        return {"classes": self.classes, "knots": self.knots}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(list(data["classes"]), [(list(x), list(y)) for x, y in data["knots"]])


def estimate(proba: np.ndarray, predicted_index: np.ndarray) -> dict[str, float]:
    """Expected accuracy, F1 (positive class when binary, else macro) and ROC AUC of a window
    from calibrated probabilities and the classes the model predicted (as column indices)."""
    n, k = proba.shape
    if n == 0:
        return {}
    chosen = proba[np.arange(n), predicted_index]
    result = {"accuracy": float(chosen.mean())}
    f1s, aucs = [], []
    for c in range(k):
        said = predicted_index == c
        tp = proba[said, c].sum()  # expected true positives of class c
        fp = (1.0 - proba[said, c]).sum()
        fn = proba[~said, c].sum()
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0)
        aucs.append(_expected_auc(proba[:, c]))
    result["f1"] = float(f1s[1]) if k == 2 else float(np.mean(f1s))
    auc = aucs[1] if k == 2 else np.nanmean(aucs)
    if np.isfinite(auc):
        result["roc_auc"] = float(auc)
    return result


def _expected_auc(p: np.ndarray) -> float:
    """ROC AUC when each row is positive with probability p: the ROC curve's expected true
    and false positive counts above each threshold, integrated."""
    order = np.argsort(-p, kind="stable")
    positives, negatives = np.cumsum(p[order]), np.cumsum(1.0 - p[order])
    if positives[-1] <= 0 or negatives[-1] <= 0:
        return float("nan")
    tpr = np.concatenate([[0.0], positives / positives[-1]])
    fpr = np.concatenate([[0.0], negatives / negatives[-1]])
    return float((np.diff(fpr) * (tpr[1:] + tpr[:-1])).sum() / 2)  # the trapezoid rule
