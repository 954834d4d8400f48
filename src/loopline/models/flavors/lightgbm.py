"""LightGBM models in LightGBM's own text format, served through the Booster."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopline.models.flavors.base import LoadOptions, Predictor, SavedModel, module_is_loaded

FILE = "model.txt"


class _LightGBMPredictor:
    def __init__(self, booster: Any, classes: list[Any] | None) -> None:
        self.native = booster
        self.classes = classes

    def predict(self, inputs: pd.DataFrame | np.ndarray) -> Any:
        proba = self.predict_proba(inputs)
        if proba is None:
            return self.native.predict(inputs)
        return np.asarray(self.classes)[proba.argmax(axis=1)]

    def predict_proba(self, inputs: pd.DataFrame | np.ndarray) -> np.ndarray | None:
        if self.classes is None:
            return None
        raw = np.asarray(self.native.predict(inputs))
        return np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw

    def for_arrays(self) -> _LightGBMPredictor:
        return self  # takes arrays as they are


class LightGBMFlavor:
    name: ClassVar[str] = "lightgbm"
    packages: ClassVar[tuple[str, ...]] = ("lightgbm", "numpy", "pandas")

    def matches(self, model: object) -> bool:
        if not module_is_loaded("lightgbm"):
            return False
        import lightgbm

        return isinstance(model, lightgbm.LGBMModel | lightgbm.Booster)

    def save(self, model: Any, directory: Path, input_example: Any) -> SavedModel:
        import lightgbm

        booster = model.booster_ if isinstance(model, lightgbm.LGBMModel) else model
        booster.save_model(str(directory / FILE))
        classes = None
        if isinstance(model, lightgbm.LGBMClassifier):
            classes = [c.item() if isinstance(c, np.generic) else c for c in model.classes_]
        return SavedModel(options={"file": FILE}, classes=classes)

    def load(self, directory: Path, options: Mapping[str, Any], load: LoadOptions) -> Predictor:
        import lightgbm

        return _LightGBMPredictor(lightgbm.Booster(model_file=str(directory / FILE)), options.get("classes"))
