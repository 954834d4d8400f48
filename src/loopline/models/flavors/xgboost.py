"""XGBoost models in XGBoost's own binary JSON (UBJSON) format."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopline.core.errors import InvalidInput
from loopline.models.flavors.base import LoadOptions, Predictor, SavedModel, module_is_loaded

FILE = "model.ubj"
_CLASSES = ("XGBClassifier", "XGBRegressor", "XGBRanker", "Booster")


class _XGBoostPredictor:
    def __init__(self, model: Any, classes: list[Any] | None) -> None:
        self.native = model
        self.classes = classes
        self._is_booster = type(model).__name__ == "Booster"

    def predict(self, inputs: pd.DataFrame | np.ndarray) -> Any:
        if self._is_booster:
            import xgboost

            return self.native.predict(xgboost.DMatrix(inputs))
        predicted = self.native.predict(inputs)
        if self.classes is not None:
            return np.asarray(self.classes)[predicted]
        return predicted

    def predict_proba(self, inputs: pd.DataFrame | np.ndarray) -> np.ndarray | None:
        if self.classes is None:
            return None
        return np.asarray(self.native.predict_proba(inputs))

    def for_arrays(self) -> _XGBoostPredictor:
        return self  # takes arrays as they are


class XGBoostFlavor:
    name: ClassVar[str] = "xgboost"
    packages: ClassVar[tuple[str, ...]] = ("xgboost", "numpy", "pandas")

    def matches(self, model: object) -> bool:
        if not module_is_loaded("xgboost"):
            return False
        import xgboost

        return isinstance(model, xgboost.XGBModel | xgboost.Booster)

    def save(self, model: Any, directory: Path, input_example: Any) -> SavedModel:
        kind = type(model).__name__
        if kind not in _CLASSES:
            raise InvalidInput(f"XGBoost model class {kind} is not supported; use one of {_CLASSES}")
        model.save_model(directory / FILE)
        classes = (
            [c.item() if isinstance(c, np.generic) else c for c in model.classes_]
            if kind == "XGBClassifier"
            else None
        )
        return SavedModel(options={"file": FILE, "class": kind}, classes=classes)

    def load(self, directory: Path, options: Mapping[str, Any], load: LoadOptions) -> Predictor:
        import xgboost

        kind = options["class"]
        if kind not in _CLASSES:  # the class is picked from this list, never imported by name
            raise InvalidInput(f"unknown XGBoost model class {kind!r}")
        model = getattr(xgboost, kind)()
        model.load_model(directory / FILE)
        return _XGBoostPredictor(model, options.get("classes"))
