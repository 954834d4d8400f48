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

    def predict_proba(self, data: Any) -> pd.DataFrame:
        """Class probabilities, one column per class label."""
        inputs = self._inputs(data)
        proba = self._predictor.predict_proba(inputs)
        if proba is None or self.metadata.classes is None:
            raise InvalidInput(f"this {self.flavor} model gives no class probabilities")
        index = inputs.index if isinstance(inputs, pd.DataFrame) else None
        return pd.DataFrame(proba, columns=[str(c) for c in self.metadata.classes], index=index)
