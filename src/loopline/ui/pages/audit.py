"""The audit trail: entries filtered by who, what, on what and from and until when, a page at
a time (older pages by key), and a button that verifies the hash chain through the REST API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from loopline.ui.deps import Viewer
from loopline.ui.rendering import render

router = APIRouter()
SIZES = (25, 50, 100, 200)


@router.get("/audit")
def audit_page(
    request: Request,
    services: Viewer,
    actor: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=200)] = "",
    target: Annotated[str, Query(max_length=1000)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    size: Annotated[int, Query(ge=1, le=max(SIZES))] = 50,
) -> Response:
    """One page of the audit trail, newest first: with `before`, the entries older than that
    id. `action` and `target` match as prefixes; `since` and `until` are UTC times
    (YYYY-MM-DD or YYYY-MM-DDTHH:MM). Who may read it is the audit service's decision: others
    get its refusal as the error page."""
    since_ms, since_problem = _moment("since", since)
    until_ms, until_problem = _moment("until", until)
    problem = since_problem or until_problem
    found = services.audit.entries(
        actor=actor or None,
        action=action or None,
        target=target or None,
        since_ms=since_ms,
        until_ms=until_ms,
        before_id=before,
        limit=size + 1,  # one more than shown: is there an older page?
    )
    if problem:  # asked all the same: the service decides who may read the trail
        found = []
    shown = found[:size]
    filters = {
        "actor": actor,
        "action": action,
        "target": target,
        "since": since,
        "until": until,
        "size": size,
    }
    return render(
        request,
        "audit.html",
        entries=shown,
        filters=filters,
        size=size,
        sizes=SIZES,
        newest=before is not None,
        older=shown[-1].id if len(found) > size else None,
        problem=problem,
    )


def _moment(name: str, text: str) -> tuple[int | None, str | None]:
    """`text` (an ISO date or time, UTC unless it says otherwise) in ms since the epoch, or
    the problem with it."""
    if not text.strip():
        return None, None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None, f"{name} {text!r}: write a time as YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000), None
