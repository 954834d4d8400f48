"""scikit-learn: each outermost `fit` logs its parameters, training metrics, the model and
the training data's fingerprint.

`fit` is patched where it is defined, on the classes `sklearn.utils.all_estimators()` lists
and their bases, so a Pipeline, a search or an ensemble logs once: its steps' and
candidates' fits run nested inside it and log nothing.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from loopline.autolog._registry import PATCHES, Wrapper
from loopline.autolog._training import TrainingLog, fit_data, input_example, logged_training


def patch() -> None:
    """Wrap `fit` of every scikit-learn estimator class."""
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.utils import all_estimators

    classes = [cls for _, cls in all_estimators()] + [Pipeline, GridSearchCV, RandomizedSearchCV]
    for cls in classes:
        owner = next((c for c in cls.__mro__ if "fit" in vars(c)), None)
        if owner is not None and inspect.isfunction(vars(owner)["fit"]):
            PATCHES.wrap(owner, "fit", _logged_fit)


def _logged_fit(original: Wrapper) -> Wrapper:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        def train(log: TrainingLog | None) -> Any:
            if log is not None:  # before fitting: a failed fit keeps the record of what was tried
                log.params(lambda: self.get_params(deep=False))
            return original(self, *args, **kwargs)

        def after(log: TrainingLog, _result: Any) -> None:
            data, target, weight = fit_data(original, (self, *args), kwargs)
            log_fitted(log, self, data, target, weight)

        return logged_training(type(self).__name__, train, after)

    return fit


def log_fitted(log: TrainingLog, estimator: Any, data: Any, target: Any, weight: Any = None) -> None:
    """Log what a fitted estimator learned: metrics on its training data, a search's best
    candidate, the training data's fingerprint, then the model (whose version records them)."""
    log.metrics(lambda: training_metrics(log, estimator, data, target, weight))
    best = getattr(estimator, "best_params_", None)
    if isinstance(best, dict):
        log.params(lambda: {f"best_{key}": value for key, value in best.items()})
        score = getattr(estimator, "best_score_", None)
        if score is not None:
            log.metrics(lambda: {"best_cv_score": float(score)})
    log.training_data(data)
    model = getattr(estimator, "best_estimator_", None)
    model = estimator if model is None else model
    # The registry holds models that predict; a fitted scaler on its own is no model to serve.
    if hasattr(model, "predict"):
        log.model(model, type(estimator).__name__.lower(), input_example(data))


def training_metrics(
    log: TrainingLog, estimator: Any, data: Any, target: Any, weight: Any
) -> dict[str, float]:
    """Classification or regression metrics on the training data, else what `score` says;
    each metric that cannot be computed is one warning, not the loss of the others."""
    from sklearn import metrics
    from sklearn.base import is_classifier, is_regressor

    found: dict[str, float] = {}

    def add(key: str, compute: Callable[[], Any]) -> None:
        value = log.attempt(f"compute {key}", lambda: float(compute()))
        if value is not None:
            found[key] = value

    predicts = hasattr(estimator, "predict") and target is not None
    if predicts and is_classifier(estimator):
        predicted = log.attempt("predict the training data", lambda: estimator.predict(data))
        if predicted is not None:
            add(
                "training_accuracy_score",
                lambda: metrics.accuracy_score(target, predicted, sample_weight=weight),
            )
            add(
                "training_f1_score",
                lambda: metrics.f1_score(target, predicted, average="weighted", sample_weight=weight),
            )
        if hasattr(estimator, "predict_proba"):
            add(
                "training_log_loss",
                lambda: metrics.log_loss(
                    target, estimator.predict_proba(data), labels=estimator.classes_, sample_weight=weight
                ),
            )
    elif predicts and is_regressor(estimator):
        predicted = log.attempt("predict the training data", lambda: estimator.predict(data))
        if predicted is not None:
            add("training_r2_score", lambda: metrics.r2_score(target, predicted, sample_weight=weight))
            add(
                "training_mean_squared_error",
                lambda: metrics.mean_squared_error(target, predicted, sample_weight=weight),
            )
            add(
                "training_mean_absolute_error",
                lambda: metrics.mean_absolute_error(target, predicted, sample_weight=weight),
            )
    elif hasattr(estimator, "score"):
        add(
            "training_score",
            lambda: estimator.score(data) if target is None else estimator.score(data, target),
        )
    return found
