"""Any Python object with a `predict` method, stored with cloudpickle.

A pickle runs code when it is loaded, so this flavor refuses to load unless the caller
passes `trust=True`. Prefer a native flavor whenever one exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopline.core.errors import UntrustedModel
from loopline.models.flavors.base import LoadOptions, Predictor, SavedModel

FILE = "model.cloudpickle"


class _PythonPredictor:
    def __init__(self, model: Any) -> None:
        self.native = model
        classes = getattr(model, "classes_", None)
        self.classes = list(classes) if classes is not None else None

    def predict(self, inputs: pd.DataFrame | np.ndarray) -> Any:
        return self.native.predict(inputs)

    def predict_proba(self, inputs: pd.DataFrame | np.ndarray) -> np.ndarray | None:
        method = getattr(self.native, "predict_proba", None)
        return None if method is None else np.asarray(method(inputs))

    def for_arrays(self) -> None:
        return None  # arbitrary code: whether it takes arrays is unknowable


class PythonFunctionFlavor:
    name: ClassVar[str] = "python_function"
    packages: ClassVar[tuple[str, ...]] = ("cloudpickle", "numpy", "pandas")

    def matches(self, model: object) -> bool:
        return callable(getattr(model, "predict", None))

    def save(self, model: Any, directory: Path, input_example: Any) -> SavedModel:
        import cloudpickle

        (directory / FILE).write_bytes(cloudpickle.dumps(model))
        return SavedModel(options={"file": FILE}, classes=_PythonPredictor(model).classes)

    def load(self, directory: Path, options: Mapping[str, Any], load: LoadOptions) -> Predictor:
        if not load.trust:
            raise UntrustedModel(
                "this model is a pickle (python_function flavor), and loading a pickle runs its code. "
                "Load it with trust=True only if you trust whoever logged it"
            )
        import cloudpickle

        return _PythonPredictor(cloudpickle.loads((directory / FILE).read_bytes()))
