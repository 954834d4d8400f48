"""Pipeline runs, jobs, schedules and triggers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from loopline.core.automation import Job, JobKind, Schedule, Trigger
from loopline.core.errors import InvalidInput
from loopline.core.pipelines import PipelineRun
from loopline.server.deps import Automation, Paging, page
from loopline.server.encoding import json_response
from loopline.server.schemas import (
    NewJob,
    NewSchedule,
    NewTrigger,
    Page,
)

router = APIRouter()


@router.get("/pipeline-runs", response_model=Page[PipelineRun], tags=["pipelines"])
def pipeline_runs(automation: Automation, paging: Paging, pipeline: str | None = None) -> Response:
    """The newest first."""
    return json_response(page(automation.pipeline_runs(pipeline, paging.end + 1), paging))


@router.get("/pipeline-runs/{run_id}", response_model=PipelineRun, tags=["pipelines"])
def pipeline_run(automation: Automation, run_id: str) -> Response:
    return json_response(automation.pipeline_run(run_id))


@router.get("/jobs", response_model=Page[Job], tags=["pipelines"])
def list_jobs(automation: Automation, paging: Paging) -> Response:
    """The newest first."""
    return json_response(page(automation.jobs(paging.end + 1), paging))


@router.post("/jobs", response_model=Job, status_code=201, tags=["pipelines"])
def enqueue_job(automation: Automation, body: NewJob) -> Response:
    """Queue a pipeline run, a monitor run, a retraining or a feature view's materialization
    for `loopline worker` to pick up."""
    return json_response(automation.enqueue(_kind(body.kind), body.target, body.params), 201)


def _kind(kind: str) -> JobKind:
    kinds = {k.value: k for k in JobKind}
    if kind not in kinds:
        raise InvalidInput(f"job kind {kind!r} is not one of {', '.join(kinds)}")
    return kinds[kind]


@router.get("/schedules", response_model=Page[Schedule], tags=["pipelines"])
def list_schedules(automation: Automation, paging: Paging) -> Response:
    return json_response(page(automation.schedules(), paging))


@router.post("/schedules", response_model=Schedule, status_code=201, tags=["pipelines"])
def create_schedule(automation: Automation, body: NewSchedule) -> Response:
    created = automation.create_schedule(body.name, body.cron, _kind(body.kind), body.target, body.params)
    return json_response(created, 201)


@router.delete("/schedules/{name}", status_code=204, tags=["pipelines"])
def delete_schedule(automation: Automation, name: str) -> Response:
    automation.delete_schedule(name)
    return Response(status_code=204)


@router.get("/triggers", response_model=Page[Trigger], tags=["pipelines"])
def list_triggers(automation: Automation, paging: Paging) -> Response:
    return json_response(page(automation.triggers(), paging))


@router.post("/triggers", response_model=Trigger, status_code=201, tags=["pipelines"])
def create_trigger(automation: Automation, body: NewTrigger) -> Response:
    created = automation.create_trigger(
        body.name, body.monitor, _kind(body.kind), body.target, body.params,
        rule=body.rule, cooldown_s=body.cooldown_s,
    )  # fmt: skip
    return json_response(created, 201)


@router.delete("/triggers/{name}", status_code=204, tags=["pipelines"])
def delete_trigger(automation: Automation, name: str) -> Response:
    automation.delete_trigger(name)
    return Response(status_code=204)
