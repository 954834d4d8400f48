"""loopline: the machine-learning lifecycle as one closed loop.

import loopline as ll

with ll.start_run(experiment="churn") as run:
    run.log_params({"model": "rf", "depth": 8})
    run.log_metric("auc", 0.91)
"""

import typing

from loopline import datasets, features
from loopline._sdk import (
    active_run,
    configure,
    create_experiment,
    end_run,
    erase,
    evaluate,
    flush,
    gc,
    get_metric_history,
    get_run,
    list_experiments,
    load_model,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    model_card,
    promote,
    registry_service,
    search_runs,
    set_tag,
    set_tags,
    start_run,
    tracking_service,
)
from loopline.autolog import autolog, torch_logger
from loopline.core.entities import ArtifactEntry, Experiment, Metric, Run, RunPage, RunStatus
from loopline.core.errors import LooplineError
from loopline.core.registry import ModelVersion, RegisteredModel
from loopline.core.version import __version__
from loopline.tracking.active_run import ActiveRun

if typing.TYPE_CHECKING:
    from loopline._pipelines import pipeline, tune
    from loopline.pipelines import PipelineFailed, PipelineResult, step


# Loaded on first use, so that `import loopline` stays cheap for code that never needs them:
# monitoring brings numpy and pandas; pipelines bring inspect, logging and the runner.
_LAZY = {
    "pipeline": "loopline._pipelines",
    "tune": "loopline._pipelines",
    "step": "loopline.pipelines",
    "PipelineFailed": "loopline.pipelines",
    "PipelineResult": "loopline.pipelines",
}


def __getattr__(name: str) -> object:
    import importlib

    if name == "monitoring":
        return importlib.import_module("loopline.monitoring")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'loopline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "ActiveRun",
    "ArtifactEntry",
    "Experiment",
    "LooplineError",
    "Metric",
    "ModelVersion",
    "PipelineFailed",
    "PipelineResult",
    "RegisteredModel",
    "Run",
    "RunPage",
    "RunStatus",
    "__version__",
    "active_run",
    "autolog",
    "configure",
    "create_experiment",
    "datasets",
    "end_run",
    "erase",
    "evaluate",
    "features",
    "flush",
    "gc",
    "get_metric_history",
    "get_run",
    "list_experiments",
    "load_model",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "model_card",
    "pipeline",
    "promote",
    "registry_service",
    "search_runs",
    "set_tag",
    "set_tags",
    "start_run",
    "step",
    "torch_logger",
    "tracking_service",
    "tune",
]
