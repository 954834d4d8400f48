"""Evaluation plots as PNG bytes: confusion matrix, ROC and calibration for classifiers,
residuals for regressors. Needs matplotlib (`loopline[plots]`); without it, no plots."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np


def _png(figure: Any) -> bytes:
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def evaluation_plots(
    task: str,
    truth: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray | None,
    classes: Sequence[Any] | None,
) -> dict[str, bytes]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
        from sklearn.calibration import CalibrationDisplay
        from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay
    except ImportError:
        return {}
    plots: dict[str, bytes] = {}
    if task == "classification":
        display = ConfusionMatrixDisplay.from_predictions(truth, predicted, labels=classes)
        plots["confusion_matrix.png"] = _png(display.figure_)
        if proba is not None and classes is not None and len(classes) == 2 and len(set(truth.tolist())) == 2:
            positive = truth == classes[1]
            plots["roc.png"] = _png(RocCurveDisplay.from_predictions(positive, proba[:, 1]).figure_)
            plots["calibration.png"] = _png(
                CalibrationDisplay.from_predictions(positive, proba[:, 1]).figure_
            )
    else:
        figure, axes = plt.subplots()
        axes.scatter(predicted, truth - predicted, s=6, alpha=0.6)
        axes.axhline(0, color="grey", linewidth=1)
        axes.set_xlabel("predicted")
        axes.set_ylabel("residual (actual - predicted)")
        plots["residuals.png"] = _png(figure)
    return plots
