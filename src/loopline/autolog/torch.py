"""PyTorch: a logger for hand-written training loops, and a Lightning callback that autolog
adds to every `Trainer`.

Neither imports torch: values are read through `.item()` and optimizers through their
`param_groups`, so this module stays cheap to import.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from loopline.autolog._registry import PATCHES, AutologOptions, Wrapper
from loopline.autolog._safety import attempt
from loopline.autolog._training import TrainingLog, end_run, open_run
from loopline.core.errors import InvalidInput

# The Lightning packages autolog patches, and the module holding their Trainer and Callback.
LIGHTNING = {"lightning": "lightning.pytorch", "pytorch_lightning": "pytorch_lightning"}


def scalar(value: Any) -> float:
    """A number, numpy scalar or one-element tensor as a float. Through `.item()`: `float()`
    of a tensor that requires grad warns."""
    item = getattr(value, "item", None)
    return float(item() if callable(item) else value)


def optimizer_params(optimizer: Any) -> dict[str, Any]:
    """The optimizer's class and the numeric hyperparameters of its parameter groups (lr,
    momentum, weight_decay, betas...): the first group's by name, the others' as `group<i>.name`."""
    found: dict[str, Any] = {"optimizer": type(optimizer).__name__}
    for index, group in enumerate(optimizer.param_groups):
        prefix = f"group{index}." if index else ""
        for key, value in group.items():
            if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a tensor lr
                value = value.item()
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if numeric or (isinstance(value, tuple) and all(isinstance(v, int | float) for v in value)):
                found[prefix + key] = value
    return found


class TrainingLoopLogger:
    """Logs a hand-written training loop into the active run, or into a run of its own that
    the `with` block ends (FAILED if the loop raised). Failures to log only warn."""

    def __init__(
        self,
        optimizer: Any = None,
        *,
        every_n_steps: int = 1,
        run_name: str = "training-loop",
        silent: bool = False,
    ) -> None:
        if type(every_n_steps) is not int or every_n_steps < 1:
            raise InvalidInput(f"every_n_steps must be a whole number of at least 1, got {every_n_steps!r}")
        self.optimizer = optimizer
        self.every_n_steps = every_n_steps
        self.run_name = run_name
        self._options = AutologOptions(silent=silent)
        self._log: TrainingLog | None = None
        self._owned = False
        self._optimizer_logged = False

    def __enter__(self) -> TrainingLoopLogger:
        self._open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._log is not None and self._owned:
            end_run(self._log, exc)
        self._log = None
        self._owned = False

    def log(self, step: int, loss: Any = None, **metrics: Any) -> None:
        """Log `loss` and `metrics` (numbers, or one-element tensors) at `step` when it is a
        multiple of `every_n_steps`; on the first call, the optimizer's hyperparameters too."""
        # Reading a tensor's value waits for the device: skipped steps cost nothing. A step
        # that is no int is not skipped: the store's check of it then warns.
        if isinstance(step, int) and step % self.every_n_steps:
            return
        log = self._open()
        if log is None:
            return
        if self.optimizer is not None and not self._optimizer_logged:
            self._optimizer_logged = True
            log.params(lambda: optimizer_params(self.optimizer))
        values = metrics if loss is None else {"loss": loss, **metrics}
        log.metrics(lambda: {key: scalar(value) for key, value in values.items()}, step)

    def _open(self) -> TrainingLog | None:
        if self._log is None:
            opened = attempt("start a run", lambda: open_run(self.run_name), silent=self._options.silent)
            if opened is not None:
                run, self._owned = opened
                self._log = TrainingLog(run, self._options)
        return self._log


def torch_logger(
    optimizer: Any = None, *, every_n_steps: int = 1, run_name: str = "training-loop", silent: bool = False
) -> TrainingLoopLogger:
    """A logger for a plain PyTorch training loop: `with ll.torch_logger(optimizer) as tl:`
    then `tl.log(step, loss=loss, accuracy=acc)` in the loop. It logs every `every_n_steps`
    steps, and once the optimizer's hyperparameters (lr, momentum, weight_decay...)."""
    return TrainingLoopLogger(optimizer, every_n_steps=every_n_steps, run_name=run_name, silent=silent)


class EpochMetricsHooks:
    """Lightning hooks logging a fit: the module's hyperparameters and the optimizer's when
    training starts, `trainer.callback_metrics` at each training epoch's end (step = epoch,
    after that epoch's validation). Mixed into each Lightning package's own `Callback`."""

    def __init__(self, options: AutologOptions | None = None) -> None:
        self._options = options or PATCHES.options or AutologOptions()
        self._log: TrainingLog | None = None
        self._owned = False

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        opened = attempt(
            "start a run", lambda: open_run(type(pl_module).__name__), silent=self._options.silent
        )
        if opened is not None:
            run, self._owned = opened
            self._log = TrainingLog(run, self._options)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if self._log is not None:
            self._log.params(lambda: _lightning_params(trainer, pl_module))

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._log is not None:
            self._log.metrics(
                lambda: {key: scalar(value) for key, value in trainer.callback_metrics.items()},
                trainer.current_epoch,
            )

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._end(None)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._end(exception)

    def _end(self, error: BaseException | None) -> None:
        if self._log is not None and self._owned:
            end_run(self._log, error)
        self._log = None
        self._owned = False


def _lightning_params(trainer: Any, pl_module: Any) -> dict[str, Any]:
    hyperparameters: Mapping[str, Any] = getattr(pl_module, "hparams", None) or {}
    found = {**hyperparameters, "max_epochs": trainer.max_epochs}
    for optimizer in trainer.optimizers[:1]:
        found.update(optimizer_params(optimizer))
    return found


def patch_lightning(package: str) -> None:
    """Make every `Trainer` of `package` (lightning, or pytorch_lightning) log through
    loopline: its `__init__` adds the callback unless the caller passed one."""
    module = importlib.import_module(LIGHTNING[package])
    callback = type(
        "LooplineCallback",
        (EpochMetricsHooks, module.Callback),
        {"__module__": __name__, "__doc__": EpochMetricsHooks.__doc__},
    )
    PATCHES.wrap(module.Trainer, "__init__", functools.partial(_adding_callback, callback=callback))


def _adding_callback(original: Wrapper, callback: type[EpochMetricsHooks]) -> Wrapper:
    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        options = PATCHES.options
        if options is not None:
            added = attempt("add loopline's callback", lambda: _with(kwargs, callback), silent=options.silent)
            kwargs = kwargs if added is None else added
        original(self, *args, **kwargs)

    return __init__


def _with(kwargs: dict[str, Any], callback: type[EpochMetricsHooks]) -> dict[str, Any]:
    given = kwargs.get("callbacks")
    listed = [] if given is None else list(given) if isinstance(given, list | tuple) else [given]
    if any(isinstance(c, EpochMetricsHooks) for c in listed):
        return kwargs
    return {**kwargs, "callbacks": [*listed, callback()]}
