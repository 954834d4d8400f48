"""ONNX models, run with onnxruntime on the CPU.

One input takes every signature column as a float matrix (what skl2onnx produces for a
numeric pipeline); several inputs take one column each, by name. A second output, when
there is one, holds class probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopline.models.flavors.base import LoadOptions, Predictor, SavedModel, module_is_loaded

FILE = "model.onnx"
_NUMPY_OF_ONNX = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64}


class _OnnxPredictor:
    def __init__(self, session: Any, classes: list[Any] | None) -> None:
        self.native = session
        self._inputs = session.get_inputs()
        self._outputs = [o.name for o in session.get_outputs()]
        self.classes = classes

    def _feed(self, inputs: pd.DataFrame | np.ndarray) -> dict[str, np.ndarray]:
        if len(self._inputs) == 1:
            spec = self._inputs[0]
            array = inputs.to_numpy() if isinstance(inputs, pd.DataFrame) else inputs
            return {spec.name: array.astype(_NUMPY_OF_ONNX.get(spec.type, np.float32), copy=False)}
        assert isinstance(inputs, pd.DataFrame)
        feed = {}
        for spec in self._inputs:
            column = inputs[spec.name].to_numpy().reshape(-1, 1)
            dtype = _NUMPY_OF_ONNX.get(spec.type)
            feed[spec.name] = column.astype(dtype) if dtype is not None else column.astype(str)
        return feed

    def _run(self, inputs: pd.DataFrame | np.ndarray) -> list[Any]:
        return list(self.native.run(None, self._feed(inputs)))

    def predict(self, inputs: pd.DataFrame | np.ndarray) -> Any:
        return self._run(inputs)[0]

    def predict_proba(self, inputs: pd.DataFrame | np.ndarray) -> np.ndarray | None:
        if self.classes is None or len(self._outputs) < 2:
            return None
        return np.asarray(self._run(inputs)[1])

    def for_arrays(self) -> _OnnxPredictor | None:
        return self if len(self._inputs) == 1 else None  # one input: a float matrix already


class OnnxFlavor:
    name: ClassVar[str] = "onnx"
    packages: ClassVar[tuple[str, ...]] = ("onnx", "onnxruntime", "numpy", "pandas")

    def matches(self, model: object) -> bool:
        if not module_is_loaded("onnx"):
            return False
        import onnx

        return isinstance(model, onnx.ModelProto)

    def save(self, model: Any, directory: Path, input_example: Any) -> SavedModel:
        import onnx

        onnx.checker.check_model(model)
        (directory / FILE).write_bytes(model.SerializeToString())
        classes = _class_labels(model)
        return SavedModel(options={"file": FILE}, classes=classes)

    def load(self, directory: Path, options: Mapping[str, Any], load: LoadOptions) -> Predictor:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(directory / FILE), providers=["CPUExecutionProvider"])
        return _OnnxPredictor(session, options.get("classes"))


def _class_labels(model: Any) -> list[Any] | None:
    """Class labels that skl2onnx stores in a ZipMap or classifier node, if any."""
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.name in ("classlabels_ints", "classlabels_int64s") and attribute.ints:
                return list(attribute.ints)
            if attribute.name == "classlabels_strings" and attribute.strings:
                return [s.decode() for s in attribute.strings]
    return None
