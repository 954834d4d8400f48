"""Erasure of one entity's personal data, for administrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field

from loopline.core.privacy import Erasure
from loopline.server.deps import Backend, Caller
from loopline.server.encoding import json_response
from loopline.server.schemas import Body

router = APIRouter(tags=["privacy"])


class NewErasure(Body):
    """Whose rows to erase: those whose `column` equals `value`."""

    column: str = Field(min_length=1, max_length=250)
    value: str = Field(
        min_length=1, max_length=10_000, description="as text; a number column matches its number"
    )
    dry_run: bool = Field(default=False, description="report what would be erased, change nothing")
    reason: str = Field(default="", max_length=2000, description="recorded on the audit trail")


@router.post("/erasures", response_model=Erasure)
def erase(b: Backend, who: Caller, body: NewErasure) -> Response:
    """Remove the entity's rows from prediction logs and dataset versions (administrators
    only); the report names what was removed and what could not be, never the value."""
    found = b.services(who).privacy.erase(body.column, body.value, dry_run=body.dry_run, reason=body.reason)
    return json_response(found)
