"""The retention policy and garbage collection, for administrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import Field

from loopline.core.lifecycle import GcReport, RetentionPolicy
from loopline.server.deps import Backend, Caller
from loopline.server.encoding import json_response
from loopline.server.schemas import Body

router = APIRouter(tags=["storage"])


class NewRetention(Body):
    """The ages after which gc removes things; no value keeps them forever."""

    deleted_runs_days: float | None = Field(description="purge runs deleted this many days ago")
    prediction_log_days: float | None = Field(description="remove prediction-log days this old")
    unreferenced_blob_hours: float = Field(description="remove blobs nothing refers to, this old")
    reason: str = Field(default="", max_length=2000, description="recorded on the audit trail")


class GcRequest(Body):
    dry_run: bool = Field(default=False, description="report what would be removed, remove nothing")


@router.get("/storage/retention", response_model=RetentionPolicy)
def retention(b: Backend, who: Caller) -> Response:
    """The retention policy in force (the default one if none was set)."""
    return json_response(b.services(who).storage.retention())


@router.put("/storage/retention", response_model=RetentionPolicy)
def set_retention(b: Backend, who: Caller, body: NewRetention) -> Response:
    """Replace the retention policy (administrators only; on the audit trail)."""
    policy = b.services(who).storage.set_retention(
        deleted_runs_days=body.deleted_runs_days,
        prediction_log_days=body.prediction_log_days,
        unreferenced_blob_hours=body.unreferenced_blob_hours,
        reason=body.reason,
    )
    return json_response(policy)


@router.post("/storage/gc", response_model=GcReport)
def gc(b: Backend, who: Caller, body: GcRequest) -> Response:
    """Remove what the policy no longer keeps, or with dry_run report it (administrators only)."""
    return json_response(b.services(who).storage.gc(dry_run=body.dry_run))
