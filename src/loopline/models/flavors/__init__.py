"""Model flavors: each saves a native model to files and loads it back as a Predictor."""

from __future__ import annotations

from loopline.core.errors import InvalidInput
from loopline.models.flavors.base import Flavor, LoadOptions, Predictor, SavedModel
from loopline.models.flavors.lightgbm import LightGBMFlavor
from loopline.models.flavors.onnx import OnnxFlavor
from loopline.models.flavors.pyfunc import PythonFunctionFlavor
from loopline.models.flavors.pytorch import PyTorchFlavor
from loopline.models.flavors.sklearn import SklearnFlavor
from loopline.models.flavors.xgboost import XGBoostFlavor

# Detection order: native formats first; a pickle only for what nothing else can store.
FLAVORS: dict[str, Flavor] = {
    flavor.name: flavor
    for flavor in (
        XGBoostFlavor(),
        LightGBMFlavor(),
        SklearnFlavor(),
        OnnxFlavor(),
        PyTorchFlavor(),
        PythonFunctionFlavor(),
    )
}

__all__ = ["FLAVORS", "Flavor", "LoadOptions", "Predictor", "SavedModel", "flavor_for", "flavor_named"]


def flavor_named(name: str) -> Flavor:
    flavor = FLAVORS.get(name)
    if flavor is None:
        raise InvalidInput(f"unknown model flavor {name!r}; loopline knows {sorted(FLAVORS)}")
    return flavor


def flavor_for(model: object) -> Flavor:
    """The flavor that stores `model` natively."""
    for flavor in FLAVORS.values():
        if flavor.matches(model):
            return flavor
    raise InvalidInput(
        f"cannot log a {type(model).__module__}.{type(model).__name__}: it is no scikit-learn, XGBoost, "
        "LightGBM, ONNX or PyTorch model and has no predict method"
    )
