"""One interface over every flavor: predict(DataFrame | records) -> DataFrame."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loopline.core.errors import InvalidInput
from loopline.models.flavors import Predictor
from loopline.models.signature import InputChecker, as_frame

if TYPE_CHECKING:
    from loopline.models.package import ModelMetadata


_PREDICTION = pd.Index(["prediction"])  # built once: a fresh Index per call costs more than predicting


def to_frame(predicted: Any, index: pd.Index | None) -> pd.DataFrame:
    if isinstance(predicted, pd.DataFrame):
        return predicted
    if isinstance(predicted, pd.Series):
        return predicted.to_frame("prediction")
    array = np.asarray(predicted)
    if array.ndim <= 1:
        return pd.DataFrame(array.reshape(-1, 1), columns=_PREDICTION, index=index, copy=False)
    flat = array.reshape(len(array), -1)
    return pd.DataFrame(flat, columns=[f"prediction_{i}" for i in range(flat.shape[1])], index=index)


class LoadedModel:
    """A model ready to predict: input checked against its signature, output a DataFrame."""

    def __init__(self, predictor: Predictor, metadata: ModelMetadata, uri: str | None = None) -> None:
        self._predictor = predictor
        self.metadata = metadata
        self.uri = uri
        self._check = None if metadata.signature is None else InputChecker(metadata.signature)

    def __repr__(self) -> str:
        return f"<LoadedModel {self.uri or ''} flavor={self.flavor} task={self.metadata.task}>"

    @property
    def flavor(self) -> str:
        return self.metadata.flavor

    @property
    def signature(self) -> Any:
        return self.metadata.signature

    @property
    def native(self) -> Any:
        """The flavor's own model object (the scikit-learn estimator, the XGBoost model, the
        torch module, the ONNX session...), for what loopline's interface does not cover."""
        return getattr(self._predictor, "native", None)

    @property
    def classes(self) -> list[Any] | None:
        return None if self.metadata.classes is None else list(self.metadata.classes)

    def _inputs(self, data: Any) -> pd.DataFrame | np.ndarray:
        if self._check is not None:
            return self._check(data)
        return data if isinstance(data, np.ndarray) else as_frame(data)

    def predict(self, data: Any) -> pd.DataFrame:
        inputs = self._inputs(data)
        index = inputs.index if isinstance(inputs, pd.DataFrame) else None
        return to_frame(self._predictor.predict(inputs), index)

    def score(self, data: Any) -> tuple[np.ndarray, np.ndarray | None, pd.DataFrame | np.ndarray]:
        """Predictions, class probabilities (or None) and the checked inputs, in one pass."""
        inputs = self._inputs(data)
        predicted = np.asarray(to_frame(self._predictor.predict(inputs), None).iloc[:, 0].to_numpy())
        proba = self._predictor.predict_proba(inputs) if self.metadata.classes is not None else None
        return predicted, proba, inputs

    def array_scorer(self) -> ArrayScorer | None:
        """The serving fast path for all-double signatures, or None where it does not apply."""
        return build_array_scorer(self, self._predictor)

    def predict_proba(self, data: Any) -> pd.DataFrame:
        """Class probabilities, one column per class label."""
        inputs = self._inputs(data)
        proba = self._predictor.predict_proba(inputs)
        if proba is None or self.metadata.classes is None:
            raise InvalidInput(f"this {self.flavor} model gives no class probabilities")
        index = inputs.index if isinstance(inputs, pd.DataFrame) else None
        return pd.DataFrame(proba, columns=[str(c) for c in self.metadata.classes], index=index)


class ArrayScorer:
    """Scores a float matrix whose columns are the signature's, in order: the serving fast
    path, without DataFrames. Built by `LoadedModel.array_scorer` once it has checked, on
    the input example, that this path answers exactly as `predict` does."""

    def __init__(self, predictor: Predictor, classes: list[Any] | None, labels_from_proba: bool) -> None:
        self._predictor = predictor
        self.classes = classes
        self._labels = None if classes is None else np.asarray(classes)
        self._labels_from_proba = labels_from_proba

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(predictions, class probabilities or None)."""
        proba = self._predictor.predict_proba(x) if self._labels is not None else None
        if proba is not None and self._labels_from_proba:
            assert self._labels is not None
            return self._labels[proba.argmax(axis=1)], proba  # one model call instead of two
        return np.asarray(self._predictor.predict(x)).reshape(len(x), -1)[:, 0], proba


def build_array_scorer(loaded: LoadedModel, predictor: Predictor) -> ArrayScorer | None:
    signature = loaded.metadata.signature
    if signature is None or not isinstance(signature.inputs, tuple):
        return None
    if not all(c.type == "double" for c in signature.inputs):
        return None
    example = loaded.metadata.example_frame()
    fast = predictor.for_arrays()
    if fast is None or not isinstance(example, pd.DataFrame) or example.empty:
        return None
    x = example[signature.input_names].to_numpy(dtype=np.float64)
    try:
        reference = loaded.predict(example)["prediction"].to_numpy()
        candidate = ArrayScorer(fast, loaded.classes, labels_from_proba=False)
        predicted, proba = candidate(x)
    except Exception:  # a model that needs its DataFrame (columns selected by name...)
        return None
    if not np.array_equal(np.asarray(predicted), reference):
        return None
    derived = (
        proba is not None
        and loaded.classes is not None
        and bool(np.array_equal(np.asarray(loaded.classes)[proba.argmax(axis=1)], reference))
    )
    return ArrayScorer(fast, loaded.classes, labels_from_proba=derived)
