"""How a deployment retrains itself: the loop policy people declare in YAML (`loopline loop declare`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from loopline.specs.document import Document, Strict
from loopline.specs.monitor import NotifierSpec


class RolloutSpec(Strict):
    """How a challenger is tried on live traffic and judged (`loopline.automation.canary`).
    The margins say how much worse it may be; each check is an always-valid test at
    `alpha / 3`, so an equal challenger is rolled back with probability at most `alpha`
    however often the worker looks."""

    mode: Literal["canary", "shadow"] = "canary"  # shadow: it answers copies, never a client
    percent: float = Field(20.0, gt=0, lt=100)  # canary: the challenger's share of live traffic
    min_requests: int = Field(200, gt=0)  # promote no sooner than this many challenger requests
    max_minutes: float = Field(60.0, gt=0)  # then `on_inconclusive` decides
    on_inconclusive: Literal["promote", "rollback", "hold"] = "rollback"
    alpha: float = Field(0.05, gt=0, lt=1)  # the chance of rolling back an equal challenger
    max_error_rate_increase: float = Field(0.02, ge=0)
    max_latency_ratio: float = Field(2.0, gt=1)  # of mean latency, over the champion's median
    min_latency_regression_ms: float = Field(10.0, ge=0)  # a smaller regression never rolls back
    warmup_requests: int = Field(20, ge=0)  # each arm's first requests: left out of latency
    max_accuracy_drop: float = Field(0.02, ge=0)  # classification
    max_mae_ratio: float = Field(1.1, gt=1)  # regression: mean absolute error over the champion's
    min_labels: int = Field(50, gt=0)  # per arm, before accuracy is judged


class GuardSpec(Strict):
    """Bounds the live champion must keep while no challenger is out. Past one (by an
    always-valid interval at `alpha`, so that watching every tick does not cry wolf), the
    loop rolls @champion back to the previous champion if that one does better on the same
    labelled requests, and otherwise asks a person; at most once per `every_minutes`."""

    max_error_rate: float | None = Field(None, gt=0, lt=1)
    min_accuracy: float | None = Field(None, gt=0, lt=1)  # realized, on labelled answers
    min_estimated_accuracy: float | None = Field(None, gt=0, lt=1)  # a monitor's est.accuracy
    window_minutes: float = Field(60.0, gt=0)  # the evidence: the champion's answers this recent
    min_requests: int = Field(100, gt=0)
    min_labels: int = Field(50, gt=0)
    alpha: float = Field(0.05, gt=0, lt=1)
    every_minutes: float = Field(60.0, ge=0)


class LoopPolicy(Document):
    """How a deployment retrains itself. The pipeline gets `dataset` (a dataset version: the
    reference data plus labelled production rows) and returns a version of `model`."""

    kind: ClassVar[str] = "loop policy"
    deployment: str
    model: str
    pipeline: str  # MODULE:PIPELINE
    params: dict[str, Any] = Field(default_factory=dict)
    reference_dataset: str  # NAME or NAME@VERSION: the data the champion learned from
    target: str  # its label column
    window_rows: int = Field(5000, gt=0)  # production rows read from the prediction log
    holdout_share: float = Field(0.3, gt=0, lt=1)  # of labelled production rows, for the gates
    gates: dict[str, Any] = Field(
        default_factory=lambda: {"gates": ["signature_compatible", {"better_than_current": {}}]}
    )
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    cooldown_minutes: float = Field(60.0, ge=0)
    contract: dict[str, Any] | None = None  # a data contract the fresh labelled rows must pass
    on_invalid_data: Literal["last_good", "stop"] = "stop"  # retrain without them, or not at all
    max_rollbacks: int = Field(3, ge=1)  # in a row: then the loop stops and asks a person
    guard: GuardSpec | None = None  # watch the champion between retrainings
    notify: list[NotifierSpec] = Field(default_factory=list)  # who hears what needs a person
