"""Deployments and traffic, monitors and alerts, datasets, pipeline runs and jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from loopline.core.automation import Job, JobKind, Schedule, Trigger
from loopline.core.datasets import DatasetVersion
from loopline.core.errors import InvalidInput
from loopline.core.monitoring import Alert, Monitor, MonitorRun
from loopline.core.pipelines import PipelineRun
from loopline.core.registry import Deployment, DeploymentRevision
from loopline.server.app import json_response
from loopline.server.deps import Automation, Backend, Caller, Deployments, Id, Paging, page, staging
from loopline.server.routes.uploads import discard_upload, upload_files
from loopline.server.schemas import (
    MonitorRunOutcome,
    NewDatasetVersion,
    NewDeployment,
    NewJob,
    NewSchedule,
    NewTrigger,
    Page,
    RegisteredDataset,
    TrafficChange,
)
from loopline.serving.policy import TrafficPolicy

DATASET_FILE = "data.parquet"

router = APIRouter()


# deployments -----------------------------------------------------------------------------


@router.get("/deployments", response_model=Page[Deployment], tags=["deployments"])
def list_deployments(deployments: Deployments, paging: Paging) -> Response:
    return json_response(page(deployments.list_all(), paging))


@router.post("/deployments", response_model=Deployment, status_code=201, tags=["deployments"])
def create_deployment(deployments: Deployments, body: NewDeployment) -> Response:
    policy = TrafficPolicy.from_dict(body.policy)
    return json_response(deployments.create(body.name, policy, body.reason), 201)


@router.get("/deployments/{name}", response_model=Deployment, tags=["deployments"])
def get_deployment(deployments: Deployments, name: str) -> Response:
    return json_response(deployments.get(name))


@router.put("/deployments/{name}/traffic", response_model=Deployment, tags=["deployments"])
def set_traffic(deployments: Deployments, name: str, body: TrafficChange) -> Response:
    policy = TrafficPolicy.from_dict(body.policy)
    return json_response(deployments.set_traffic(name, policy, body.reason, body.expected_revision))


@router.get("/deployments/{name}/revisions", response_model=Page[DeploymentRevision], tags=["deployments"])
def deployment_revisions(deployments: Deployments, name: str, paging: Paging) -> Response:
    return json_response(page(deployments.revisions(name), paging))


@router.post("/deployments/{name}/rollback", response_model=Deployment, tags=["deployments"])
def rollback(deployments: Deployments, name: str, reason: str = "") -> Response:
    return json_response(deployments.rollback(name, reason))


@router.delete("/deployments/{name}", status_code=204, tags=["deployments"])
def delete_deployment(deployments: Deployments, name: str) -> Response:
    deployments.delete(name)
    return Response(status_code=204)


# monitors and alerts -----------------------------------------------------------------------


@router.get("/monitors", response_model=Page[Monitor], tags=["monitoring"])
def list_monitors(b: Backend, who: Caller, paging: Paging) -> Response:
    return json_response(page(b.monitors(who).list_all(), paging))


@router.get("/monitors/{name}", response_model=Monitor, tags=["monitoring"])
def get_monitor(b: Backend, who: Caller, name: str) -> Response:
    return json_response(b.monitors(who).get(name))


@router.get("/monitors/{name}/runs", response_model=Page[MonitorRun], tags=["monitoring"])
def monitor_runs(b: Backend, who: Caller, name: str, paging: Paging, details: bool = False) -> Response:
    """The newest first; `details` adds each run's per-column results."""
    return json_response(page(b.monitors(who).runs(name, paging.end + 1, details), paging))


@router.get("/monitors/{name}/runs/{run_id}", response_model=MonitorRun, tags=["monitoring"])
def monitor_run(b: Backend, who: Caller, name: str, run_id: Id) -> Response:
    return json_response(b.monitors(who).run_record(name, run_id))


@router.post("/monitors/{name}/run", response_model=MonitorRunOutcome, tags=["monitoring"])
async def run_monitor(b: Backend, who: Caller, name: str) -> Response:
    """Evaluate the window now: the stored run and the alerts it opened, resolved or kept firing."""
    return json_response(await run_in_threadpool(b.monitors(who).run, name))


@router.get(
    "/monitors/{name}/report",
    tags=["monitoring"],
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "the report"}},
)
def monitor_report(
    b: Backend,
    who: Caller,
    name: str,
    run_id: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    inline_js: bool = True,
) -> Response:
    """Self-contained by default; with `inline_js=false` the charts load plotly from its CDN."""
    return HTMLResponse(b.monitors(who).report_html(name, run_id, inline_js=inline_js))


@router.get("/alerts", response_model=Page[Alert], tags=["monitoring"])
def list_alerts(
    b: Backend, who: Caller, paging: Paging, monitor: str | None = None, status: str | None = None
) -> Response:
    return json_response(page(b.monitors(who).alerts(monitor, status), paging))


# datasets --------------------------------------------------------------------------------


@router.get("/datasets", response_model=Page[DatasetVersion], tags=["datasets"])
def list_datasets(b: Backend, who: Caller, paging: Paging) -> Response:
    return json_response(page(b.datasets(who).list_datasets(), paging))


@router.get("/datasets/{name}/versions", response_model=Page[DatasetVersion], tags=["datasets"])
def dataset_versions(b: Backend, who: Caller, name: str, paging: Paging) -> Response:
    return json_response(page(b.datasets(who).versions(name), paging))


@router.get("/datasets/{name}/versions/{version}", response_model=DatasetVersion, tags=["datasets"])
def get_dataset(b: Backend, who: Caller, name: str, version: Id) -> Response:
    return json_response(b.datasets(who).get(name, version))


@router.post("/datasets/{name}/versions", response_model=RegisteredDataset, tags=["datasets"])
def register_dataset(
    request: Request, b: Backend, who: Caller, name: str, body: NewDatasetVersion
) -> Response:
    """Register the upload's `data.parquet` as the next version of the dataset; the same rows
    give back the version that holds them (`created` false). SQL sources are run by clients."""
    files = upload_files(staging(request), body.upload_id, who)
    try:
        data = files / DATASET_FILE
        if not data.is_file():
            raise InvalidInput(f"upload {body.upload_id} holds no {DATASET_FILE}")
        version, created = b.datasets(who).register(name, data, description=body.description, tags=body.tags)
    finally:
        discard_upload(files)
    return json_response({"version": version, "created": created}, 201 if created else 200)


@router.get("/datasets/{name}/versions/{version}/data", response_class=FileResponse, tags=["datasets"])
def dataset_data(b: Backend, who: Caller, name: str, version: Id) -> Response:
    """The version's rows as one Parquet file."""
    service = b.datasets(who)
    return FileResponse(service.local_path(service.get(name, version)), media_type="application/octet-stream")


@router.get("/datasets/{name}/versions/{version}/profile", response_model=dict[str, Any], tags=["datasets"])
def dataset_profile(b: Backend, who: Caller, name: str, version: Id) -> Response:
    """The reference profile computed at registration: per-column statistics and sketches."""
    service = b.datasets(who)
    return json_response(service.reference_profile(service.get(name, version)).to_dict())


@router.get("/dataset-versions", response_model=Page[DatasetVersion], tags=["datasets"])
def dataset_versions_by_digest(b: Backend, who: Caller, paging: Paging, digest: str) -> Response:
    """Every version holding exactly these rows (their digest), whatever its dataset."""
    return json_response(page(b.datasets(who).versions_with_digest(digest), paging))


# pipelines and jobs ----------------------------------------------------------------------


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
    """Queue a pipeline run, a monitor run or a retraining for `loopline worker` to pick up."""
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
