"""Automatic logging of training: `loopline.autolog()` and the PyTorch loop logger.

Importing this package imports no training library: each is patched when autolog is
switched on if the program has imported it already, else right after it does.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from loopline.autolog._registry import PATCHES, AutologOptions
from loopline.autolog._safety import attempt
from loopline.autolog.torch import TrainingLoopLogger, torch_logger
from loopline.core.names import display_model_name

__all__ = ["TrainingLoopLogger", "autolog", "torch_logger"]


def _patch_sklearn() -> None:
    from loopline.autolog.sklearn import patch

    patch()


def _patch_xgboost() -> None:
    from loopline.autolog.boosting import patch_xgboost

    patch_xgboost()


def _patch_lightgbm() -> None:
    from loopline.autolog.boosting import patch_lightgbm

    patch_lightgbm()


def _patch_lightning() -> None:
    from loopline.autolog.torch import patch_lightning

    patch_lightning("lightning")


def _patch_pytorch_lightning() -> None:
    from loopline.autolog.torch import patch_lightning

    patch_lightning("pytorch_lightning")


# Each library autolog knows, by the top-level module whose import triggers its patch.
_INTEGRATIONS: dict[str, Callable[[], None]] = {
    "sklearn": _patch_sklearn,
    "xgboost": _patch_xgboost,
    "lightgbm": _patch_lightgbm,
    "lightning": _patch_lightning,
    "pytorch_lightning": _patch_pytorch_lightning,
}


def autolog(
    disable: bool = False,
    *,
    log_models: bool = True,
    silent: bool = False,
    registered_model_name: str | None = None,
) -> None:
    """Log training without logging code, into the active run (or a run of its own, named
    after the estimator, for each training call made outside one).

    - scikit-learn: each `fit` called by the program (a Pipeline's or a search's, not its
      steps' or candidates') logs the estimator's parameters, training metrics (accuracy,
      weighted F1 and log loss; R2, MSE and MAE; else `score`), the training data's hash as
      an input, and the model, registered with its first 5 rows as input example.
    - XGBoost, LightGBM (`train` and the scikit-learn wrappers): the metrics of each eval
      set at each round (`validation_0-logloss`, step = round), the parameters, a
      `feature_importance.parquet` table and the model.
    - Lightning: each `Trainer` logs the module's hyperparameters and, at each epoch's end,
      `trainer.callback_metrics`. A plain PyTorch loop uses `loopline.torch_logger`.
    - Optuna: `loopline.tune` already logs each trial as a child run.

    `log_models=False` logs no model; `registered_model_name` names the model versions
    (default: the estimator class, lowercased). Logging never breaks training: a failing
    step is one RuntimeWarning starting "loopline autolog:" (none if `silent`), and the
    training call returns as it would without autolog. `disable=True` puts back every
    original method.
    """
    with PATCHES.lock:
        if disable:
            PATCHES.restore()
            PATCHES.options = None
            return
        if registered_model_name is not None:
            display_model_name(registered_model_name)  # a bad name fails here, not at each fit
        PATCHES.options = AutologOptions(
            log_models=log_models, silent=silent, registered_model_name=registered_model_name
        )
        for module, patch in _INTEGRATIONS.items():
            if _installed(module):
                PATCHES.on_import.watch(module, _guarded(module, patch, silent))


def _guarded(module: str, patch: Callable[[], None], silent: bool) -> Callable[[], None]:
    """`patch`, a failure of which warns rather than breaking autolog or an import."""
    return lambda: attempt(f"patch {module}", patch, silent=silent)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module in sys.modules without a spec
        return False
