"""Retraining loops: declared, read and reset. Their retrainings run on workers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from loopline.core.loops import Loop, LoopEvent
from loopline.server.deps import Backend, Caller, Paging, page
from loopline.server.encoding import json_response
from loopline.server.schemas import Page, Reason
from loopline.specs.loop import LoopPolicy

router = APIRouter(tags=["loops"])


@router.put("/loops/{deployment}", response_model=Loop)
def declare(b: Backend, who: Caller, deployment: str, body: dict[str, Any]) -> Response:
    """Declare (or replace) the retraining policy of `deployment` (the YAML document as JSON)."""
    policy = LoopPolicy.parse({**body, "deployment": deployment}, "the retraining policy")
    return json_response(b.services(who).loops.declare(policy))


@router.get("/loops/{deployment}", response_model=Loop)
def get(b: Backend, who: Caller, deployment: str) -> Response:
    return json_response(b.services(who).loops.get(deployment))


@router.get("/loops/{deployment}/events", response_model=Page[LoopEvent])
def events(b: Backend, who: Caller, deployment: str, paging: Paging) -> Response:
    """The loop's decisions with their reasons and evidence, oldest first."""
    return json_response(page(b.services(who).loops.events(deployment), paging))


@router.post("/loops/{deployment}/reset", response_model=LoopEvent)
def reset(b: Backend, who: Caller, deployment: str, body: Reason) -> Response:
    """Abandon what the loop was doing: the champion serves again."""
    return json_response(b.services(who).loops.reset(deployment, body.reason))
