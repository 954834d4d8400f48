"""Entities of the closed loop: a deployment's retraining loop and its timeline."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class LoopState(enum.StrEnum):
    IDLE = "idle"
    RETRAINING = "retraining"  # building data, training, gating a challenger
    CANARY = "canary"  # the challenger takes a share of live traffic
    DECIDING = "deciding"  # one worker is promoting or rolling back


@dataclass(frozen=True, slots=True)
class Loop:
    deployment: str
    policy: dict[str, Any]  # a LoopPolicy as JSON
    state: LoopState
    champion: int | None  # versions of the policy's model, while a challenger is out
    challenger: int | None
    stage_started_at: int | None
    cooldown_until: int | None
    updated_at: int


@dataclass(frozen=True, slots=True)
class LoopEvent:
    id: int
    deployment: str
    at: int
    kind: str  # triggered, suppressed, retrained, refused, canary, promoted, rolled_back, failed...
    message: str
    actor: str
    evidence: dict[str, Any] = field(default_factory=dict)
