"""One logged training call: the run it logs into, and each logging step guarded.

Every integration (scikit-learn, XGBoost, LightGBM) goes through `logged_training`: only
the outermost training call of a context logs; it logs into the active run, or into a run
of its own that it ends (FAILED if training raised); training's own result and exceptions
pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from loopline.autolog._registry import PATCHES, AutologOptions
from loopline.autolog._safety import attempt
from loopline.core.validation import MAX_PARAM_VALUE_LENGTH

if TYPE_CHECKING:
    import pandas as pd

    from loopline.tracking.active_run import ActiveRun

T = TypeVar("T")

EXAMPLE_ROWS = 5
TRAINING_DATA = "training_data"  # the name of the input the training data is recorded as


class TrainingLog:
    """The run one outermost training call logs into; a failing step only warns."""

    def __init__(self, run: ActiveRun, options: AutologOptions) -> None:
        self.run = run
        self.options = options
        self._metrics_failed = False

    def attempt(self, what: str, action: Callable[[], T]) -> T | None:
        """`action()`, or None and a warning (unless silent) if it raised."""
        return attempt(what, action, silent=self.options.silent)

    def params(self, read: Callable[[], Mapping[str, Any]]) -> None:
        """Log the parameters `read()` returns as text, each value cut to the store's limit."""

        def log() -> None:
            self.run.log_params({str(key): param_text(value) for key, value in read().items()})

        self.attempt("log the parameters", log)

    def metrics(self, read: Callable[[], Mapping[str, float]], step: int = 0) -> None:
        """Log the metric values `read()` returns at `step`. After a first failure it stops:
        a callback called at every boosting round or batch must not warn a thousand times."""
        if self._metrics_failed:
            return

        def log() -> bool:
            values = read()
            if values:
                self.run.log_metrics(values, step)
            return True

        if self.attempt("log metrics", log) is None:
            self._metrics_failed = True

    def training_data(self, data: Any) -> None:
        """Record the training data's content hash as an input of the run, for lineage."""
        table = training_table(data)
        if table is not None:
            self.attempt("record the training data", lambda: self.run.log_input(table, TRAINING_DATA))

    def table(self, name: str, make: Callable[[], pd.DataFrame]) -> None:
        """Store the frame `make()` returns as the Parquet artifact `name`."""
        self.attempt(f"log {name}", lambda: self.run.log_table(make(), name))

    def model(self, model: Any, default_name: str, input_example: Any = None) -> None:
        """Register `model` as a version of the chosen model name (`default_name` unless
        autolog was given `registered_model_name`), if autolog logs models."""
        if not self.options.log_models:
            return
        name = self.options.registered_model_name or default_name
        self.attempt(
            f"log the model {name!r}", lambda: self.run.log_model(model, name, input_example=input_example)
        )


def logged_training(
    run_name: str,
    train: Callable[[TrainingLog | None], T],
    after: Callable[[TrainingLog, T], None],
) -> T:
    """`train(log)`, then `after(log, result)` if this is the outermost training call of the
    context and autolog is on; nested calls get `train(None)` and log nothing."""
    options = PATCHES.options
    with PATCHES.training_call() as outermost:
        if options is None or not outermost:
            return train(None)
        opened = attempt("start a run", lambda: open_run(run_name), silent=options.silent)
        if opened is None:
            return train(None)
        run, owned = opened
        log = TrainingLog(run, options)
        try:
            result = train(log)
        except BaseException as exc:
            if owned:
                end_run(log, exc)
            raise
        log.attempt("log the training", lambda: after(log, result))
        if owned:
            end_run(log, None)
        return result


def open_run(run_name: str) -> tuple[ActiveRun, bool]:
    """The active run, or a new one; and whether it is new (then the caller ends it)."""
    from loopline import _sdk

    run = _sdk.active_run()
    if run is not None:
        return run, False
    return _sdk.start_run(run_name=run_name), True


def end_run(log: TrainingLog, error: BaseException | None) -> None:
    """End a run autolog started: FINISHED, or as a `with` block would on `error` (FAILED
    with the traceback, KILLED on Ctrl-C)."""
    if error is None:
        log.attempt("end the run", log.run.end)
    else:
        log.attempt("end the run", lambda: log.run.__exit__(type(error), error, error.__traceback__))


def param_text(value: Any) -> str:
    """A parameter value as text, cut to the store's limit rather than refused by it."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_PARAM_VALUE_LENGTH:
        text = text[: MAX_PARAM_VALUE_LENGTH - 3] + "..."
    return text.replace("\x00", "")


def input_example(data: Any) -> Any:
    """The first rows of training data, as the model's input example; None for data that
    cannot be one (a sparse matrix, text...)."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame) and all(isinstance(c, str) for c in data.columns):
        return data.iloc[:EXAMPLE_ROWS]
    if data is None or hasattr(data, "toarray"):  # sparse: its rows are no example of a table
        return None
    # A frame with unnamed (numbered) columns trains a model as an array would: its example is an array.
    array = np.asarray(data.iloc[:EXAMPLE_ROWS] if isinstance(data, pd.DataFrame) else data)
    return array[:EXAMPLE_ROWS] if array.ndim == 2 and array.dtype.kind in "biuf" else None


def training_table(data: Any) -> pd.DataFrame | None:
    """Training data as a DataFrame to fingerprint, or None when it is no table."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if data is None or hasattr(data, "toarray"):
        return None
    array = np.asarray(data)
    if array.ndim != 2:
        return None
    return pd.DataFrame(array, columns=[str(i) for i in range(array.shape[1])])


def fit_data(
    fit: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Any, Any, Any]:
    """(X, y, sample_weight) of a call `fit(*args, **kwargs)`, `args` starting with the
    estimator: X is the first argument after it, whatever its name (`raw_documents`...)."""
    import inspect

    bound = inspect.signature(fit).bind(*args, **kwargs)
    names = list(bound.signature.parameters)
    arguments = bound.arguments
    extra: Mapping[str, Any] = next(
        (arguments.get(p.name, {}) for p in bound.signature.parameters.values() if p.kind is p.VAR_KEYWORD),
        {},
    )
    data = arguments.get(names[1]) if len(names) > 1 else None
    target = arguments.get("y", extra.get("y"))
    weight = arguments.get("sample_weight", extra.get("sample_weight"))
    return data, target, weight


def with_callback(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], callback: Any
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments of `function(*args, **kwargs)` with `callback` appended to its
    `callbacks` argument, however the caller passed it."""
    import inspect

    bound = inspect.signature(function).bind(*args, **kwargs)
    given = bound.arguments.get("callbacks")
    bound.arguments["callbacks"] = [*(given or ()), callback]
    return bound.args, bound.kwargs
