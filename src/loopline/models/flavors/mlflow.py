"""Models in MLflow's format that no native flavor reads: a pickled scikit-learn model, a
custom `mlflow.pyfunc` model, any other MLflow flavor. They are loaded by MLflow itself
(`mlflow.pyfunc.load_model`), which runs code the files carry, so they load only with
`trust=True`: a maintainer's audited `loopline models trust NAME VERSION --code` gives it to
every loader of that version. They arrive through the MLflow-compatible API or
`loopline import mlflow`; loopline never saves a model this way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopline.core.errors import InvalidInput, UntrustedModel
from loopline.models.flavors.base import LoadOptions, Predictor, SavedModel


class _MlflowPredictor:
    def __init__(self, model: Any) -> None:
        self.native = model
        get_raw = getattr(model, "get_raw_model", None)
        try:
            raw = get_raw() if get_raw is not None else None
        except Exception:  # a pyfunc without one underneath
            raw = None
        classes = getattr(raw, "classes_", None)
        self.classes = (
            None if classes is None else [c.item() if isinstance(c, np.generic) else c for c in classes]
        )
        self._proba = getattr(raw, "predict_proba", None)

    def predict(self, inputs: pd.DataFrame | np.ndarray) -> Any:
        return self.native.predict(inputs)

    def predict_proba(self, inputs: pd.DataFrame | np.ndarray) -> np.ndarray | None:
        return None if self._proba is None else np.asarray(self._proba(inputs))

    def for_arrays(self) -> None:
        return None


class MlflowFlavor:
    name: ClassVar[str] = "mlflow"
    packages: ClassVar[tuple[str, ...]] = ("mlflow",)

    def matches(self, model: object) -> bool:
        return False  # never chosen for saving: loopline saves natively

    def save(self, model: Any, directory: Path, input_example: Any) -> SavedModel:
        raise InvalidInput(
            "loopline does not save models in MLflow's format; they arrive through the "
            "MLflow-compatible API or `loopline import mlflow`"
        )

    def load(self, directory: Path, options: Mapping[str, Any], load: LoadOptions) -> Predictor:
        if not load.trust:
            raise UntrustedModel(
                f"this model is in MLflow's {options.get('mlflow_flavor', 'python_function')!r} format, "
                "which runs the code its files carry when it loads. Trust it once for every loader "
                "(`loopline models trust NAME VERSION --code`, a maintainer's decision), or load it "
                "with trust=True only if you trust whoever logged it"
            )
        try:
            import mlflow.pyfunc
        except ImportError:
            raise InvalidInput(
                "this model is in MLflow's format: install MLflow to load it (pip install mlflow-skinny)"
            ) from None
        return _MlflowPredictor(mlflow.pyfunc.load_model(str(directory)))
