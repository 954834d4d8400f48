"""Export of scikit-learn models to ONNX for faster serving, refused unless the ONNX model
reproduces the original's predictions on the input example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.core.errors import InvalidInput

ONNX_DIR = "onnx"


def export_sklearn_to_onnx(
    model: Any, example: pd.DataFrame, directory: Path, tolerance: float
) -> dict[str, Any]:
    """Write `directory/onnx/model.onnx`; returns what the model description records of it."""
    from skl2onnx import to_onnx

    non_numeric = [str(c) for c in example.columns if example[c].dtype.kind not in "biuf"]
    if non_numeric:
        raise InvalidInput(f"ONNX export takes numeric columns only; {non_numeric} are not")
    features = example.to_numpy(dtype=np.float32)
    classifier = hasattr(model, "predict_proba")
    options = {id(model): {"zipmap": False}} if classifier else None
    try:
        exported = to_onnx(model, features[:1], options=options)
    except Exception as exc:  # skl2onnx has no converter for some estimators
        raise InvalidInput(f"skl2onnx cannot convert this model: {exc}") from exc
    target = directory / ONNX_DIR
    target.mkdir()
    (target / "model.onnx").write_bytes(exported.SerializeToString())

    import onnxruntime

    session = onnxruntime.InferenceSession(str(target / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: features})
    if classifier:
        if not (np.asarray(outputs[0]) == np.asarray(model.predict(example))).all():
            raise InvalidInput("the ONNX export predicts other classes than the model on the input example")
        difference = float(np.abs(np.asarray(outputs[1]) - model.predict_proba(example)).max())
    else:
        predicted = np.asarray(outputs[0]).reshape(len(example), -1)
        difference = float(
            np.abs(predicted - np.asarray(model.predict(example)).reshape(len(example), -1)).max()
        )
    if difference > tolerance:
        raise InvalidInput(
            f"the ONNX export differs from the model by {difference:.2e} (tolerance {tolerance:.0e})"
        )
    return {"dir": ONNX_DIR, "max_abs_difference": difference}
