"""What every flavor provides: save a native model to files, load it back as a Predictor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """What the caller vouches for when loading."""

    trust: bool = False  # may run code the model carries (pickles)
    trusted_types: Sequence[str] = ()  # extra skops types, reviewed by the caller
    module_factory: Any = None  # builds the torch.nn.Module a state_dict is loaded into
    onnx: bool = False  # serve a scikit-learn model's ONNX export instead of the model itself


@dataclass(slots=True)
class SavedModel:
    """What `Flavor.save` reports: options to store beside the files, and what it learned."""

    options: dict[str, Any] = field(default_factory=dict)
    classes: list[Any] | None = None


class Predictor(Protocol):
    """A loaded native model. `predict_proba` is None for models without probabilities."""

    classes: list[Any] | None

    def predict(self, inputs: pd.DataFrame | np.ndarray) -> Any: ...

    def predict_proba(self, inputs: pd.DataFrame | np.ndarray) -> np.ndarray | None: ...

    def for_arrays(self) -> Predictor | None:
        """A predictor that takes a float matrix in signature column order in place of a
        DataFrame (faster to serve), or None. Callers check it on the input example."""
        ...


class Flavor(Protocol):
    name: ClassVar[str]
    packages: ClassVar[tuple[str, ...]]  # modules whose distributions a model pins

    def matches(self, model: object) -> bool: ...

    def save(
        self, model: Any, directory: Path, input_example: pd.DataFrame | np.ndarray | None
    ) -> SavedModel: ...

    def load(self, directory: Path, options: Mapping[str, Any], load: LoadOptions) -> Predictor: ...


def module_is_loaded(name: str) -> bool:
    """Flavors only test `isinstance` against libraries the caller has already imported."""
    import sys

    return name in sys.modules


def as_float_array(inputs: pd.DataFrame | np.ndarray) -> np.ndarray:
    return (
        inputs.to_numpy(dtype=np.float32) if isinstance(inputs, pd.DataFrame) else inputs.astype(np.float32)
    )
