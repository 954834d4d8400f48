"""scikit-learn models in skops format, loaded only with an explicit list of trusted types.

skops refuses types it does not trust by default. The list below names the internal
types common estimators need (tree storage, optimiser state...); it is reviewed code,
never read from the file being loaded. A caller can add types for custom estimators.
"""

from __future__ import annotations

import copy
import importlib.abc
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopline.artifacts.names import check_artifact_name
from loopline.core.errors import InvalidInput, UntrustedModel
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
        self.native = model
        self.classes = [
            c.item() if isinstance(c, np.generic) else c for c in getattr(model, "classes_", [])
        ] or None
        self._proba = getattr(model, "predict_proba", None)

    def predict(self, inputs: pd.DataFrame | np.ndarray) -> Any:
        return self.native.predict(inputs)

    def predict_proba(self, inputs: pd.DataFrame | np.ndarray) -> np.ndarray | None:
        return None if self._proba is None else np.asarray(self._proba(inputs))

    def for_arrays(self) -> _SklearnPredictor:
        """A copy that forgets the feature names it was fitted with, so that it takes plain
        arrays without warnings. Only safe when columns arrive in the fitted order, which
        the signature guarantees; a model that selects columns by name fails the caller's
        check on the input example and keeps taking DataFrames."""
        return _SklearnPredictor(_without_feature_names(copy.deepcopy(self.native)))


def _parts(model: Any) -> Iterator[Any]:
    """The model and every estimator, list and array inside it, each once."""
    pending = [model]
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, np.ndarray) and item.dtype == object:
            pending.extend(item.ravel().tolist())
        elif hasattr(item, "get_params") and hasattr(item, "__dict__"):
            pending.extend(vars(item).values())


def check_trees(model: Any) -> None:
    """Refuse trees whose structure a crafted file could have bent. scikit-learn walks a
    tree's node arrays in C without bounds checks, so a child index out of range reads
    memory it must not (the reason MLflow does not trust `sklearn.tree._tree.Tree` by
    default). loopline trusts the type and checks every tree instead: each internal node's
    children come after it and within the tree, its feature is one the model has, and a leaf
    is a leaf on both sides. The same holds for the nodes of histogram gradient boosting."""
    from sklearn.tree._tree import Tree

    for part in _parts(model):
        tree = getattr(part, "tree_", None)
        if isinstance(tree, Tree):
            _check_nodes(
                tree.children_left, tree.children_right, tree.feature, tree.n_features, tree.node_count
            )
        nodes = getattr(part, "nodes", None)
        if type(part).__name__ == "TreePredictor" and isinstance(nodes, np.ndarray):
            leaf = nodes["is_leaf"].astype(bool)
            left = np.where(leaf, -1, nodes["left"].astype(np.int64))
            right = np.where(leaf, -1, nodes["right"].astype(np.int64))
            _check_nodes(left, right, nodes["feature_idx"].astype(np.int64), None, len(nodes))


def _check_nodes(left: Any, right: Any, feature: Any, n_features: int | None, count: int) -> None:
    left, right, feature = (np.asarray(a, dtype=np.int64) for a in (left, right, feature))
    if not len(left) == len(right) == len(feature) == count:
        raise InvalidInput("a tree of the scikit-learn model has node arrays of different lengths")
    index = np.arange(count)
    leaf = left == -1
    inner = ~leaf
    bad = (
        (leaf != (right == -1))
        | (inner & ((left <= index) | (left >= count) | (right <= index) | (right >= count)))
        | (inner & (feature < 0))
        | (inner & (n_features is not None) & (feature >= (n_features or 0)))
    )
    if bad.any():
        raise InvalidInput(
            f"a tree of the scikit-learn model is malformed at node {int(np.argmax(bad))} "
            "(a child out of range or before it, or a feature the model does not have): refused"
        )


def _without_feature_names(model: Any) -> Any:
    for part in _parts(model):
        if hasattr(part, "get_params") and hasattr(part, "__dict__"):
            part.__dict__.pop("feature_names_in_", None)
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
        skops_io = _skops_io()
        skops_io.dump(model, directory / FILE)
        untrusted = sorted(set(skops_io.get_untrusted_types(file=directory / FILE)) - set(TRUSTED_TYPES))
        # Recorded to warn readers of the model card; never used to decide what to trust.
        return SavedModel(
            options={"file": FILE, "types_needing_trust": untrusted}, classes=_SklearnPredictor(model).classes
        )

    def load(self, directory: Path, options: Mapping[str, Any], load: LoadOptions) -> Predictor:
        skops_io = _skops_io()
        from skops.io.exceptions import UntrustedTypesFoundException

        trusted = [*TRUSTED_TYPES, *load.trusted_types]
        path = directory / check_artifact_name(options.get("file", FILE))  # MLflow's may differ
        try:
            model = skops_io.load(path, trusted=trusted)
        except UntrustedTypesFoundException as exc:
            found = sorted(set(skops_io.get_untrusted_types(file=path)) - set(trusted))
            raise UntrustedModel(
                f"the scikit-learn model contains types loopline does not trust: {found}. Review them, then "
                "vouch for them once for every loader (`loopline models trust NAME VERSION TYPE...`), or "
                "pass trusted_types=[...] to this load"
            ) from exc
        check_trees(model)
        return _SklearnPredictor(model)


class _SkipTorchShim(importlib.abc.MetaPathFinder):
    """Refuses scikit-learn's array-API shim for PyTorch, which imports torch (about a second)."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname == _TORCH_SHIM:
            raise ImportError(f"{_TORCH_SHIM} is skipped while skops lists scikit-learn's estimators")
        return None


_TORCH_SHIM = "sklearn.externals.array_api_compat.torch"


def _skops_io() -> Any:
    """`skops.io`, imported without importing torch. On import, skops lists scikit-learn's
    estimators, and `pkgutil.walk_packages` imports every subpackage on the way, the torch
    shim included, even though the listing then skips it. Refused, the shim is passed over
    (walk_packages ignores import errors), and it is still imported normally when scikit-learn
    meets a torch tensor. When torch is loaded already it costs nothing and is let through."""
    if "skops.io" in sys.modules or "torch" in sys.modules:
        import skops.io

        return skops.io
    finder = _SkipTorchShim()
    sys.meta_path.insert(0, finder)
    try:
        import skops.io
    finally:
        sys.meta_path.remove(finder)
    return skops.io
