"""scikit-learn models in skops format, loaded only with an explicit list of trusted types.

skops refuses types it does not trust by default. The list below names the internal
types common estimators need (tree storage, optimiser state...); it is reviewed code,
never read from the file being loaded. A caller can add types for custom estimators.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopline.core.errors import UntrustedModel
from loopline.models.flavors.base import LoadOptions, Predictor, SavedModel, module_is_loaded

FILE = "model.skops"
TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.feature_selection._univariate_selection.chi2",
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.tree._tree.Tree",
    "sklearn.utils._bunch.Bunch",
)


class _SklearnPredictor:
    def __init__(self, model: Any) -> None:
        self._model = model
        self.classes = [
            c.item() if isinstance(c, np.generic) else c for c in getattr(model, "classes_", [])
        ] or None
        self._proba = getattr(model, "predict_proba", None)

    def predict(self, inputs: pd.DataFrame | np.ndarray) -> Any:
        return self._model.predict(inputs)

    def predict_proba(self, inputs: pd.DataFrame | np.ndarray) -> np.ndarray | None:
        return None if self._proba is None else np.asarray(self._proba(inputs))

    def for_arrays(self) -> _SklearnPredictor:
        """A copy that forgets the feature names it was fitted with, so that it takes plain
        arrays without warnings. Only safe when columns arrive in the fitted order, which
        the signature guarantees; a model that selects columns by name fails the caller's
        check on the input example and keeps taking DataFrames."""
        return _SklearnPredictor(_without_feature_names(copy.deepcopy(self._model)))


def _without_feature_names(model: Any) -> Any:
    pending = [model]
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, list | tuple):
            pending.extend(item)
        elif hasattr(item, "get_params") and hasattr(item, "__dict__"):
            item.__dict__.pop("feature_names_in_", None)
            pending.extend(vars(item).values())
    return model


class SklearnFlavor:
    name: ClassVar[str] = "sklearn"
    packages: ClassVar[tuple[str, ...]] = ("sklearn", "skops", "numpy", "scipy", "pandas")

    def matches(self, model: object) -> bool:
        if not module_is_loaded("sklearn"):
            return False
        from sklearn.base import BaseEstimator

        return isinstance(model, BaseEstimator)

    def save(self, model: Any, directory: Path, input_example: Any) -> SavedModel:
        import skops.io

        skops.io.dump(model, directory / FILE)
        untrusted = sorted(set(skops.io.get_untrusted_types(file=directory / FILE)) - set(TRUSTED_TYPES))
        # Recorded to warn readers of the model card; never used to decide what to trust.
        return SavedModel(
            options={"file": FILE, "types_needing_trust": untrusted}, classes=_SklearnPredictor(model).classes
        )

    def load(self, directory: Path, options: Mapping[str, Any], load: LoadOptions) -> Predictor:
        import skops.io
        from skops.io.exceptions import UntrustedTypesFoundException

        trusted = [*TRUSTED_TYPES, *load.trusted_types]
        try:
            model = skops.io.load(directory / FILE, trusted=trusted)
        except UntrustedTypesFoundException as exc:
            found = sorted(set(skops.io.get_untrusted_types(file=directory / FILE)) - set(trusted))
            raise UntrustedModel(
                f"the scikit-learn model contains types loopline does not trust: {found}. Review them, then "
                "pass trusted_types=[...] naming them to load it"
            ) from exc
        return _SklearnPredictor(model)
