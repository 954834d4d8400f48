"""Hyperparameter search on Optuna, every trial a tracked child run.

The objective takes an Optuna trial and returns its score, or `(score, model)`; the best
trial's model is registered when `register` names a model. Intermediate values reported
with `trial.report` become the trial run's metric history and feed the pruner. With
`ray_address`, trials run as Ray tasks sharing a journal file as Optuna's storage.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.compute.ray_cluster import connect_ray
from loopline.core.errors import InvalidInput, LooplineError
from loopline.core.registry import ModelVersion
from loopline.pipelines.execution import param_text

if TYPE_CHECKING:
    import optuna

    from loopline.pipelines.executors import EnvironmentFactory
    from loopline.tracking.tracker import Tracker

Objective = Callable[["optuna.Trial"], Any]
PRUNERS = ("median", "none")


@dataclass
class TuningResult:
    best_value: float
    best_params: dict[str, Any]
    best_run_id: str
    trials: int
    pruned: int
    failed: int
    model_version: ModelVersion | None = None
    values: list[float | None] = field(default_factory=list)  # per trial, in order


class TuningFailed(LooplineError):
    pass


@dataclass(frozen=True)
class _Outcome:
    value: float
    model: Any
    run_id: str
    params: dict[str, Any]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise InvalidInput("hyperparameter search needs Optuna: pip install 'loopline[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # each trial's run records its outcome
    return optuna


def _split(outcome: Any) -> tuple[float, Any]:
    score, model = outcome if isinstance(outcome, tuple) else (outcome, None)
    value = float(score)
    if not math.isfinite(value):
        raise InvalidInput(f"the objective returned {score!r}; a score must be a finite number")
    return value, model


def _run_trial(
    tracker: Tracker, objective: Objective, trial: optuna.Trial, metric: str, parent_id: str | None
) -> _Outcome:
    """One trial as a child run: params, the score, its intermediate values; raises
    TrialPruned (the run ends FINISHED, tagged pruned) or the objective's error (FAILED)."""
    optuna = _optuna()
    with tracker.start_run(
        run_name=f"trial-{trial.number}", tags={"loopline.trial": trial.number}, parent_id=parent_id
    ) as run:
        report = trial.report

        def tracked_report(value: float, step: int) -> None:  # live in the trial run's history
            run.log_metric(f"{metric}/intermediate", value, step=step)
            report(value, step)

        trial.report = tracked_report  # type: ignore[method-assign]
        try:
            value, model = _split(objective(trial))
        except optuna.TrialPruned as exc:
            pruned: Exception | None = exc  # raised once the run has ended FINISHED
            run.set_tag("loopline.trial_state", "pruned")
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise
        else:
            pruned = None
            run.log_metric(metric, value)
            run.set_tag("loopline.trial_state", "complete")
        finally:
            run.log_params({k: param_text(v) for k, v in trial.params.items()})
    if pruned is not None:
        raise pruned
    return _Outcome(value, model, run.id, dict(trial.params))


def tune(
    tracker: Tracker,
    objective: Objective,
    *,
    n_trials: int,
    direction: str = "maximize",
    metric: str = "score",
    seed: int | None = None,
    pruner: str = "median",
    register: str | None = None,
    input_example: Any = None,
    ray_address: str | None = None,
    open_env: EnvironmentFactory | None = None,
    workers: int | None = None,
) -> TuningResult:
    """Search with Optuna's TPE sampler (seeded) and a median pruner; see the module doc."""
    optuna = _optuna()
    if n_trials < 1:
        raise InvalidInput(f"n_trials must be at least 1, got {n_trials}")
    if direction not in ("maximize", "minimize"):
        raise InvalidInput(f"direction must be maximize or minimize, got {direction!r}")
    if pruner not in PRUNERS:
        raise InvalidInput(f"pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    active = tracker.active_run()
    parent_id = active.id if active else None
    sign = 1.0 if direction == "maximize" else -1.0
    best: list[_Outcome] = []

    def keep(outcome: _Outcome) -> None:
        if not best or sign * outcome.value > sign * best[0].value:
            best[:] = [outcome]

    with tempfile.TemporaryDirectory(prefix="loopline-tune-") as tmp:
        journal = str(Path(tmp) / "study.journal")
        storage = _journal(journal) if ray_address is not None else None
        study = optuna.create_study(
            study_name="loopline",
            storage=storage,
            direction=direction,
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=_pruner(pruner),
        )
        if ray_address is None:

            def local_objective(trial: Any) -> float:
                outcome = _run_trial(tracker, objective, trial, metric, parent_id)
                keep(outcome)
                return outcome.value

            study.optimize(local_objective, n_trials=n_trials, catch=(Exception,))
        else:
            if open_env is None:
                raise InvalidInput("trials on Ray need a way to open the stores in the Ray workers")
            trial = _RayTrial(open_env, objective, journal, metric, parent_id, pruner)
            for outcome in _on_ray(ray_address, trial, n_trials, workers):
                keep(outcome)
            study = optuna.load_study(study_name="loopline", storage=storage)
        trials = study.trials  # read before the journal goes with its folder
    states = [t.state for t in trials]
    if not best:
        errors = {t.user_attrs.get("error") for t in trials} - {None}
        raise TuningFailed(
            f"no trial of {len(states)} completed" + (f": {'; '.join(errors)}" if errors else "")
        )
    winner = best[0]
    version = None
    if register is not None:
        if winner.model is None:
            raise InvalidInput("register= needs the objective to return (score, model)")
        if active is None:
            raise InvalidInput("register= needs an active run to log the best model in")
        version = active.log_model(winner.model, register, input_example=input_example)
    if active is not None:
        active.set_tags({"loopline.best_trial_run": winner.run_id})
    return TuningResult(
        best_value=winner.value,
        best_params=winner.params,
        best_run_id=winner.run_id,
        trials=len(states),
        pruned=states.count(optuna.trial.TrialState.PRUNED),
        failed=states.count(optuna.trial.TrialState.FAIL),
        model_version=version,
        values=[t.value if t.state == optuna.trial.TrialState.COMPLETE else None for t in trials],
    )


def _journal(path: str) -> Any:
    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(path))


def _pruner(name: str) -> Any:
    optuna = _optuna()
    return optuna.pruners.MedianPruner(n_warmup_steps=1) if name == "median" else optuna.pruners.NopPruner()


@dataclass(frozen=True)
class _RayTrial:
    """One trial in a Ray worker: it asks the shared study for parameters and tells the
    outcome. Workers sample unseeded, so parallel searches are not reproducible."""

    open_env: EnvironmentFactory
    objective: Objective
    journal: str
    metric: str
    parent_id: str | None
    pruner: str

    def __call__(self) -> _Outcome | None:
        optuna = _optuna()
        env = self.open_env()
        study = optuna.load_study(
            study_name="loopline", storage=_journal(self.journal), pruner=_pruner(self.pruner)
        )
        trial = study.ask()
        try:
            outcome = _run_trial(env.tracker, self.objective, trial, self.metric, self.parent_id)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return None
        except Exception:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return None
        study.tell(trial, outcome.value)
        return outcome


def _run_remote(trial: _RayTrial) -> _Outcome | None:
    return trial()


def _on_ray(address: str, trial: _RayTrial, n_trials: int, workers: int | None) -> list[_Outcome]:
    started_here = connect_ray(address, "trials")
    import ray

    try:
        remote = ray.remote(max_retries=0)(_run_remote)
        limit = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
        pending: list[Any] = []
        finished: list[_Outcome] = []
        for _ in range(n_trials):
            if len(pending) >= limit:
                ready, pending = ray.wait(pending, num_returns=1)
                finished += [r for r in ray.get(ready) if r is not None]
            pending.append(remote.remote(trial))
        finished += [r for r in ray.get(pending) if r is not None]
        return finished
    finally:
        if started_here:
            ray.shutdown()
