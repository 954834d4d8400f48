"""The interface of retraining loops: retrain, gate, roll out, then promote or roll back.

Starting a retraining runs its pipeline, which happens where the store is: on a worker (a
trigger fires, or a job is queued) or in the process that holds the store (`LoopService.start`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from loopline.core.loops import Loop, LoopEvent

if TYPE_CHECKING:
    from loopline.specs.loop import LoopPolicy


class Loops(Protocol):
    """The retraining loop of each deployment, every decision on its timeline."""

    def declare(self, policy: LoopPolicy) -> Loop:
        """Declare (or replace) how a deployment retrains itself."""

    def get(self, deployment: str) -> Loop:
        """The loop of a deployment: its state, champion and challenger."""

    def events(self, deployment: str) -> list[LoopEvent]:
        """Every decision of the loop with its reason and evidence, oldest first."""

    def reset(self, deployment: str, reason: str) -> LoopEvent:
        """Abandon what the loop was doing: the champion serves again."""
