"""XGBoost and LightGBM: each boosting round's evaluation results through the libraries' own
callbacks (key `<eval set>-<metric>`, step = the round), the parameters, the feature
importance as a table, and the model; for the native `train` functions and the
scikit-learn wrappers alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loopline.autolog._registry import PATCHES, Wrapper
from loopline.autolog._training import (
    TrainingLog,
    fit_data,
    input_example,
    logged_training,
    with_callback,
)

if TYPE_CHECKING:
    import pandas as pd

IMPORTANCE_TABLE = "feature_importance.parquet"


def patch_xgboost() -> None:
    """Wrap `xgboost.train` and `fit` of XGBoost's scikit-learn estimators."""
    import xgboost

    for cls in (
        xgboost.XGBModel,
        xgboost.XGBClassifier,
        xgboost.XGBRegressor,
        xgboost.XGBRanker,
        xgboost.XGBRFClassifier,
        xgboost.XGBRFRegressor,
    ):
        if "fit" in vars(cls):
            PATCHES.wrap(cls, "fit", _xgboost_fit)
    PATCHES.wrap(xgboost, "train", _xgboost_train)


def patch_lightgbm() -> None:
    """Wrap `lightgbm.train` and `fit` of LightGBM's scikit-learn estimators."""
    import lightgbm

    for cls in (lightgbm.LGBMModel, lightgbm.LGBMClassifier, lightgbm.LGBMRegressor, lightgbm.LGBMRanker):
        if "fit" in vars(cls):
            PATCHES.wrap(cls, "fit", _lightgbm_fit)
    PATCHES.wrap(lightgbm, "train", _lightgbm_train)


# XGBoost ------------------------------------------------------------------------------


def _xgboost_fit(original: Wrapper) -> Wrapper:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        def train(log: TrainingLog | None) -> Any:
            if log is None:
                return original(self, *args, **kwargs)
            log.params(lambda: self.get_params(deep=False))
            # The wrappers take callbacks as a constructor parameter: lent for this fit only.
            # Random forests refuse callbacks (one round, nothing to follow).
            previous = getattr(self, "callbacks", None)
            callback = (
                None if _is_xgboost_forest(self) else log.attempt("follow the rounds", lambda: _rounds(log))
            )
            if callback is not None:
                self.callbacks = [*(previous or ()), callback]
            try:
                return original(self, *args, **kwargs)
            finally:
                if callback is not None:
                    self.callbacks = previous

        after = _after_fit(original, self, args, kwargs, lambda: _sklearn_api_importance(self))
        return logged_training(type(self).__name__, train, after)

    return fit


def _xgboost_train(original: Wrapper) -> Wrapper:
    @functools.wraps(original)
    def train(*args: Any, **kwargs: Any) -> Any:
        def run(log: TrainingLog | None) -> Any:
            if log is None:
                return original(*args, **kwargs)
            log.params(lambda: _native_params(original, args, kwargs))
            call = log.attempt(
                "follow the rounds", lambda: with_callback(original, args, kwargs, _rounds(log))
            )
            return original(*args, **kwargs) if call is None else original(*call[0], **call[1])

        def after(log: TrainingLog, booster: Any) -> None:
            log.table(IMPORTANCE_TABLE, lambda: _xgboost_booster_importance(booster))
            log.model(booster, "xgboost")

        return logged_training("xgboost.train", run, after)

    return train


def _rounds(log: TrainingLog) -> Any:
    """An XGBoost callback logging each round's evaluation results."""
    from xgboost.callback import TrainingCallback

    class RoundMetrics(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: TrainingCallback.EvalsLog) -> bool:
            log.metrics(lambda: _latest(evals_log), epoch)
            return False  # never asks to stop

    return RoundMetrics()


def _latest(evals_log: Mapping[str, Mapping[str, Sequence[Any]]]) -> dict[str, float]:
    """The last value of each metric of each eval set (the mean, for a cross-validation)."""
    found = {}
    for data, metrics in evals_log.items():
        for metric, values in metrics.items():
            last = values[-1]
            found[f"{data}-{metric}"] = float(last[0] if isinstance(last, tuple) else last)
    return found


def _is_xgboost_forest(model: Any) -> bool:
    import xgboost

    return isinstance(model, xgboost.XGBRFClassifier | xgboost.XGBRFRegressor)


def _xgboost_booster_importance(booster: Any) -> pd.DataFrame:
    scores = booster.get_score(importance_type="gain")  # features never split on are absent: 0
    features = booster.feature_names or list(scores)
    return importance_frame(features, [scores.get(feature, 0.0) for feature in features])


# LightGBM -----------------------------------------------------------------------------


class _LightGBMRounds:
    """A LightGBM callback logging each round's evaluation results."""

    def __init__(self, log: TrainingLog) -> None:
        self._log = log
        # Before early stopping (order 30), which ends training by raising; as record_evaluation.
        # An instance attribute: LightGBM gives callbacks without one an order of its own.
        self.order = 20

    def __call__(self, env: Any) -> None:
        results = env.evaluation_result_list or ()
        self._log.metrics(lambda: {f"{r[0]}-{r[1]}": float(r[2]) for r in results}, env.iteration)


def _lightgbm_fit(original: Wrapper) -> Wrapper:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        def train(log: TrainingLog | None) -> Any:
            if log is None:
                return original(self, *args, **kwargs)
            log.params(lambda: self.get_params(deep=False))
            call = log.attempt(
                "follow the rounds",
                lambda: with_callback(original, (self, *args), kwargs, _LightGBMRounds(log)),
            )
            return original(self, *args, **kwargs) if call is None else original(*call[0], **call[1])

        importance = lambda: importance_frame(self.feature_name_, self.feature_importances_)  # noqa: E731
        return logged_training(
            type(self).__name__, train, _after_fit(original, self, args, kwargs, importance)
        )

    return fit


def _lightgbm_train(original: Wrapper) -> Wrapper:
    @functools.wraps(original)
    def train(*args: Any, **kwargs: Any) -> Any:
        raw: list[Any] = [None]

        def run(log: TrainingLog | None) -> Any:
            if log is None:
                return original(*args, **kwargs)
            log.params(lambda: _native_params(original, args, kwargs))
            # Taken now: the Dataset lets go of its raw data once constructed.
            raw[0] = log.attempt("read the training data", lambda: _lightgbm_raw_data(original, args, kwargs))
            call = log.attempt(
                "follow the rounds", lambda: with_callback(original, args, kwargs, _LightGBMRounds(log))
            )
            return original(*args, **kwargs) if call is None else original(*call[0], **call[1])

        def after(log: TrainingLog, booster: Any) -> None:
            log.table(
                IMPORTANCE_TABLE,
                lambda: importance_frame(booster.feature_name(), booster.feature_importance()),
            )
            log.training_data(raw[0])
            log.model(booster, "lightgbm", input_example(raw[0]))

        return logged_training("lightgbm.train", run, after)

    return train


def _lightgbm_importance(model: Any) -> pd.DataFrame:
    """A Booster's split counts, or a wrapper's importances of the type it was given."""
    if hasattr(model, "feature_importances_"):
        return importance_frame(model.feature_name_, model.feature_importances_)
    return importance_frame(model.feature_name(), model.feature_importance())


def _lightgbm_raw_data(train: Wrapper, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    import inspect

    dataset = inspect.signature(train).bind(*args, **kwargs).arguments.get("train_set")
    return getattr(dataset, "data", None)


# shared -------------------------------------------------------------------------------


def _native_params(train: Wrapper, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The `params` of a native `train(params, data, num_boost_round, ...)` call, and its rounds."""
    import inspect

    bound = inspect.signature(train).bind(*args, **kwargs)
    bound.apply_defaults()
    return {**(bound.arguments["params"] or {}), "num_boost_round": bound.arguments["num_boost_round"]}


def _after_fit(
    original: Wrapper,
    model: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    importance: Callable[[], pd.DataFrame],
) -> Callable[[TrainingLog, Any], None]:
    """What a scikit-learn-style `fit` logs once it has trained: the feature importances, the
    training data's fingerprint and the model with an input example."""

    def after(log: TrainingLog, _result: Any) -> None:
        data = fit_data(original, (model, *args), kwargs)[0]
        log.table(IMPORTANCE_TABLE, importance)
        log.training_data(data)
        log.model(model, type(model).__name__.lower(), input_example(data))

    return after


def _sklearn_api_importance(model: Any) -> pd.DataFrame:
    importances = model.feature_importances_
    names = model.get_booster().feature_names or [f"f{i}" for i in range(len(importances))]
    return importance_frame(names, importances)


def importance_frame(features: Sequence[Any], importances: Sequence[Any]) -> pd.DataFrame:
    """A table of columns feature (text) and importance (float)."""
    import pandas as pd

    return pd.DataFrame(
        {"feature": [str(f) for f in features], "importance": [float(v) for v in importances]}
    )
