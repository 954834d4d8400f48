"""How a deployment retrains itself: the loop policy people declare in YAML (`loopline loop declare`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from loopline.specs.document import Document, Strict


class RolloutSpec(Strict):
    mode: Literal["canary", "shadow"] = "canary"  # shadow: it answers copies, never a client
    percent: float = Field(20.0, gt=0, lt=100)  # canary: the challenger's share of live traffic
    min_requests: int = Field(200, gt=0)  # decide once the challenger answered this many
    max_minutes: float = Field(60.0, gt=0)  # or once this long has passed
    max_error_rate_increase: float = Field(0.02, ge=0)
    max_latency_ratio: float = Field(2.0, gt=0)  # challenger p95 over champion p95
    max_accuracy_drop: float = Field(0.02, ge=0)  # when both arms have min_labels labels
    min_labels: int = Field(50, gt=0)


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
