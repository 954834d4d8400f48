"""Model flavors: each saves a native model to files and loads it back as a Predictor.

Other packages add flavors through the entry-point group `loopline.flavors`: each entry
point names a `Flavor` class (or instance). `loopline.models.check_flavor` runs the contract
every flavor must keep; the built-in flavors pass it in loopline's own test suite.
"""

from __future__ import annotations

import functools

from loopline.core.errors import InvalidInput
from loopline.core.plugins import installed_plugins
from loopline.models.flavors.base import Flavor, LoadOptions, Predictor, SavedModel
from loopline.models.flavors.lightgbm import LightGBMFlavor
from loopline.models.flavors.mlflow import MlflowFlavor
from loopline.models.flavors.onnx import OnnxFlavor
from loopline.models.flavors.pyfunc import PythonFunctionFlavor
from loopline.models.flavors.pytorch import PyTorchFlavor
from loopline.models.flavors.sklearn import SklearnFlavor
from loopline.models.flavors.xgboost import XGBoostFlavor

ENTRY_POINTS = "loopline.flavors"
# Detection order: native formats first; a pickle only for what nothing else can store.
BUILT_IN: tuple[Flavor, ...] = (
    XGBoostFlavor(),
    LightGBMFlavor(),
    SklearnFlavor(),
    OnnxFlavor(),
    PyTorchFlavor(),
    MlflowFlavor(),
)
FALLBACK: Flavor = PythonFunctionFlavor()

__all__ = [
    "BUILT_IN",
    "ENTRY_POINTS",
    "Flavor",
    "LoadOptions",
    "Predictor",
    "SavedModel",
    "flavor_for",
    "flavor_named",
    "flavors",
]


@functools.cache
def flavors() -> dict[str, Flavor]:
    """Every flavor by name, in detection order: the built-in ones, then those installed
    packages declare (entry points of group `loopline.flavors`), the pickle last."""
    found = {flavor.name: flavor for flavor in BUILT_IN}
    found.update(installed_plugins(ENTRY_POINTS, "name", {*found, FALLBACK.name}))
    found[FALLBACK.name] = FALLBACK
    return found


def flavor_named(name: str) -> Flavor:
    """The flavor called `name`; InvalidInput names the known ones."""
    flavor = flavors().get(name)
    if flavor is None:
        raise InvalidInput(f"unknown model flavor {name!r}; loopline knows {sorted(flavors())}")
    return flavor


def flavor_for(model: object) -> Flavor:
    """The flavor that stores `model` natively."""
    for flavor in flavors().values():
        if flavor.matches(model):
            return flavor
    raise InvalidInput(
        f"cannot log a {type(model).__module__}.{type(model).__name__}: it is no scikit-learn, XGBoost, "
        "LightGBM, ONNX or PyTorch model, no installed flavor takes it, and it has no predict method"
    )
