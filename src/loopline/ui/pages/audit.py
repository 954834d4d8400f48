"""The audit trail: entries filtered by who, what, on what and since when, a page at a time,
and a button that verifies the hash chain through the REST API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from loopline.ui.deps import Viewer
from loopline.ui.rendering import render

router = APIRouter()
SIZES = (25, 50, 100, 200)
MAX_OFFSET = 10_000  # the trail is read newest first from the start: deeper pages cost more


@router.get("/audit")
def audit_page(
    request: Request,
    services: Viewer,
    actor: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=200)] = "",
    target: Annotated[str, Query(max_length=1000)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    size: Annotated[int, Query(ge=1, le=max(SIZES))] = 50,
) -> Response:
    """One page of the audit trail, newest first. `action` and `target` match as prefixes;
    `since` is a UTC time (YYYY-MM-DD or YYYY-MM-DDTHH:MM). Who may read it is the audit
    service's decision: others get its refusal as the error page."""
    since_ms, problem = _since(since)
    found = services.audit.entries(
        actor=actor or None,
        action=action or None,
        target=target or None,
        since_ms=since_ms,
        limit=offset + size + 1,  # one more than shown: is there a next page?
    )
    if problem:  # asked all the same: the service decides who may read the trail
        found = []
    filters = {"actor": actor, "action": action, "target": target, "since": since, "size": size}
    return render(
        request,
        "audit.html",
        entries=found[offset : offset + size],
        filters=filters,
        offset=offset,
        size=size,
        sizes=SIZES,
        previous=max(0, offset - size) if offset else None,
        next=offset + size if len(found) > offset + size and offset + size <= MAX_OFFSET else None,
        problem=problem,
    )


def _since(text: str) -> tuple[int | None, str | None]:
    """`text` (an ISO date or time, UTC unless it says otherwise) in ms since the epoch, or
    the problem with it."""
    if not text.strip():
        return None, None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None, f"since {text!r}: write a time as YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000), None
