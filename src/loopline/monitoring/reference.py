"""A monitor's reference, computed once when it is created: the input profile stored with the
dataset, the profile of the model's outputs and of the labels on that dataset, the model's
metrics there and (for classifiers) the calibration that performance estimation needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopline.models import LoadedModel
from loopline.models.metrics import classification_metrics, regression_metrics
from loopline.monitoring.estimation import Calibration
from loopline.profiling.profile import (
    ReferenceProfile,
    build_profile,
    category_key,
)

REFERENCE_ROWS = 50_000  # rows of the reference dataset the model scores at creation


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


def plain_values(values: Any, classes: list[str] | None) -> Any:
    """Class labels as text (as the reference stored them); numbers as they are."""
    return np.asarray([category_key(v) for v in values]) if classes is not None else np.asarray(values)


def build_reference(
    model: LoadedModel,
    model_uri: str,
    dataset: str,
    frame: pd.DataFrame,
    stored: ReferenceProfile,
    inputs: list[str],
    target: str | None,
) -> Reference:
    """The reference of `model` on the rows `frame` of `dataset` (whose stored profile is
    `stored`): it scores them once, and profiles its outputs against the labels in `target`."""
    predicted, proba, _ = model.score(frame[inputs])
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
        dataset=dataset,
        model=model_uri,
        task=model.metadata.task,
        classes=classes,
        target=target,
        inputs=ReferenceProfile(stored.rows, {c: stored.columns[c] for c in inputs if c in stored.columns}),
        outputs=build_profile(pd.DataFrame({"prediction": plain_values(predicted, classes)})),
        labels=None if target is None else ReferenceProfile(stored.rows, {target: stored.columns[target]}),
        calibration=calibration,
        metrics=metrics,
    )
