"""Experiments, runs, metrics and artifacts."""

from __future__ import annotations

import math
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from loopline.core.entities import (
    ArtifactEntry,
    Experiment,
    ExperimentActivity,
    Metric,
    MetricSeries,
    Project,
    Run,
    Source,
)
from loopline.core.errors import InvalidInput
from loopline.core.wire import decode, metric_to_wire
from loopline.server.deps import Id, Paging, Tracking, page, staging
from loopline.server.encoding import json_response
from loopline.server.routes.uploads import stream_to, temporary_file
from loopline.server.schemas import (
    REF_TEMPLATE,
    BatchStored,
    DatasetInput,
    Heartbeat,
    LogBatch,
    MetricBody,
    ModelFilesLink,
    NewExperiment,
    NewRun,
    Page,
    RunEnd,
    RunImport,
    RunSearch,
)

router = APIRouter(tags=["tracking"])
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@router.get("/projects", response_model=Page[Project])
def list_projects(tracking: Tracking, paging: Paging) -> Response:
    return json_response(page(tracking.list_projects(), paging))


@router.get("/experiments", response_model=Page[Experiment])
def list_experiments(tracking: Tracking, paging: Paging, project: str | None = None) -> Response:
    return json_response(page(tracking.list_experiments(project), paging))


@router.post("/experiments", response_model=Experiment, status_code=201)
def create_experiment(tracking: Tracking, body: NewExperiment) -> Response:
    return json_response(tracking.create_experiment(body.name, body.project, body.description), 201)


@router.get("/experiments/activity", response_model=Page[ExperimentActivity])
def experiment_activity(tracking: Tracking, paging: Paging, project: str | None = None) -> Response:
    """Each visible experiment's run count and newest run start."""
    return json_response(page(tracking.experiment_activity(project), paging))


@router.get("/experiments/{experiment_id}", response_model=Experiment)
def get_experiment(tracking: Tracking, experiment_id: Id) -> Response:
    return json_response(tracking.get_experiment(experiment_id))


@router.get("/projects/{project}/experiments/{name}", response_model=Experiment)
def get_experiment_by_name(tracking: Tracking, project: str, name: str) -> Response:
    return json_response(tracking.get_experiment(name, project))


@router.post("/runs", response_model=Run, status_code=201)
def start_run(tracking: Tracking, body: NewRun) -> Response:
    source = Source(**body.source.model_dump()) if body.source else None
    run = tracking.start_run(
        body.experiment,
        project=body.project,
        run_name=body.run_name,
        tags=body.tags,
        parent_id=body.parent_id,
        source=source,
        environment=body.environment,
    )
    return json_response(run, 201)


@router.post("/runs/import", response_model=Run)
def import_run(tracking: Tracking, body: RunImport) -> Response:
    """Recreate a run kept by another tracking system (maintainers); idempotent."""
    try:
        run = decode(Run, body.run)
    except (TypeError, ValueError, KeyError) as exc:
        raise InvalidInput(f"run: not a run as GET /runs/{{id}} gives it ({exc})") from None
    return json_response(tracking.import_run(run, body.experiment, body.project))


@router.get("/runs/{run_id}", response_model=Run)
def get_run(tracking: Tracking, run_id: str) -> Response:
    return json_response(tracking.get_run(run_id))


@router.post("/runs/heartbeat", status_code=204)
def heartbeat(tracking: Tracking, body: Heartbeat) -> Response:
    """The process running these runs is alive."""
    tracking.heartbeat(body.run_ids)
    return Response(status_code=204)


@router.post("/runs/{run_id}/end", response_model=Run)
def end_run(tracking: Tracking, run_id: str, body: RunEnd) -> Response:
    return json_response(tracking.end_run(run_id, body.status, body.error))


@router.delete("/runs/{run_id}", status_code=204)
def delete_run(tracking: Tracking, run_id: str) -> Response:
    tracking.delete_run(run_id)
    return Response(status_code=204)


@router.post("/runs/search", response_model=Page[Run])
def search_runs(tracking: Tracking, body: RunSearch) -> Response:
    found = tracking.search_runs(
        body.experiments,
        project=body.project,
        filter=body.filter,
        order_by=body.order_by,
        max_results=body.max_results,
        page_token=body.page_token,
        include_deleted=body.include_deleted,
        columns=body.columns,
    )
    return json_response({"items": found.runs, "next_page_token": found.next_page_token})


_BATCH_KEYS = {"metrics", "params", "tags", "batch_id"}
_LOG_BATCH_BODY = {
    "required": True,
    "content": {"application/json": {"schema": LogBatch.model_json_schema(ref_template=REF_TEMPLATE)}},
}


@router.post(
    "/runs/{run_id}/log-batch", response_model=BatchStored, openapi_extra={"requestBody": _LOG_BATCH_BODY}
)
async def log_batch(tracking: Tracking, request: Request, run_id: str) -> Response:
    """Params, tags and metric values at once; a retry with the same `batch_id` stores nothing twice.

    The hot path of remote logging: the body is parsed with orjson and checked by the
    service, not validated field by field first (that tripled its cost)."""
    metrics, params, tags, batch_id = _parse_batch(await request.body())
    await run_in_threadpool(tracking.log_batch, run_id, metrics, params, tags, batch_id)
    return json_response({"stored": True})


def _parse_batch(raw: bytes) -> tuple[list[Metric], dict[str, Any], dict[str, Any], str | None]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict) or not set(data) <= _BATCH_KEYS:
        raise InvalidInput(f"the body must be an object with some of {sorted(_BATCH_KEYS)}")
    metrics, params, tags = data.get("metrics") or [], data.get("params") or {}, data.get("tags") or {}
    batch_id = data.get("batch_id")
    if not isinstance(metrics, list) or not isinstance(params, dict) or not isinstance(tags, dict):
        raise InvalidInput("metrics is a list; params and tags are objects")
    if batch_id is not None and (not isinstance(batch_id, str) or len(batch_id) > 64):
        raise InvalidInput("batch_id is a string of at most 64 characters")
    try:
        parsed = [Metric(m["key"], _number(m["value"]), m.get("step", 0), m["timestamp"]) for m in metrics]
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"each metric is an object with key, value, timestamp and step ({exc})") from None
    return parsed, params, tags, batch_id


def _number(value: Any) -> Any:
    """JSON numbers as they are; "NaN", "Infinity" and "-Infinity" as floats. The service
    checks the rest."""
    return _SPECIAL.get(value, value) if isinstance(value, str) else value


@router.get("/runs/{run_id}/metrics/{key:path}", response_model=Page[MetricBody])
def metric_history(tracking: Tracking, run_id: str, key: str, paging: Paging) -> Response:
    found = page(tracking.metric_history(run_id, key), paging)
    return json_response({**found, "items": [metric_to_wire(*m) for m in found["items"]]})


@router.get("/runs/{run_id}/series", response_model=MetricSeries)
def metric_series(
    tracking: Tracking,
    run_id: str,
    key: Annotated[str, Query(max_length=250)],
    buckets: Annotated[int, Query(ge=1, le=2000)] = 300,
    axis: Annotated[str, Query(pattern="^(step|time)$")] = "step",
    start: Annotated[int | None, Query(ge=-(2**63), le=2**63 - 1)] = None,
    end: Annotated[int | None, Query(ge=-(2**63), le=2**63 - 1)] = None,
) -> Response:
    """Metric `key` downsampled by the store to at most `buckets` buckets (min, max, newest
    value each) over `start`..`end` on `axis`: a chart's data, whatever the history's length."""
    return json_response(
        tracking.metric_series(run_id, key, buckets=buckets, axis=axis, start=start, end=end)
    )


@router.get("/runs/{run_id}/inputs", response_model=Page[DatasetInput])
def run_inputs(tracking: Tracking, run_id: str, paging: Paging) -> Response:
    inputs = [{"name": name, "digest": digest} for name, digest in tracking.inputs(run_id)]
    return json_response(page(inputs, paging))


@router.post("/runs/{run_id}/inputs", status_code=204)
def log_input(tracking: Tracking, run_id: str, body: DatasetInput) -> Response:
    tracking.log_input(run_id, body.name, body.digest)
    return Response(status_code=204)


@router.post("/runs/{run_id}/model-files", status_code=204)
def link_model_files(tracking: Tracking, run_id: str, body: ModelFilesLink) -> Response:
    """List a registered version's files among the run's artifacts."""
    tracking.link_model_files(run_id, body.model, body.version)
    return Response(status_code=204)


@router.get("/runs/{run_id}/artifacts", response_model=Page[ArtifactEntry])
def list_artifacts(tracking: Tracking, run_id: str, paging: Paging, prefix: str = "") -> Response:
    return json_response(page(tracking.list_artifacts(run_id, prefix), paging))


@router.put("/runs/{run_id}/artifacts/{name:path}", response_model=ArtifactEntry, status_code=201)
async def upload_artifact(tracking: Tracking, request: Request, run_id: str, name: str) -> Response:
    """The request body, streamed, becomes artifact `name` of the run."""
    await run_in_threadpool(tracking.get_run, run_id)  # a run the caller can see, before the body is read
    with temporary_file(staging(request)) as path:
        await stream_to(request, path)
        entries = await run_in_threadpool(tracking.log_artifact_path, run_id, path, name)
    return json_response(entries[0], 201)


@router.get("/runs/{run_id}/artifacts/{name:path}", response_class=FileResponse)
def download_artifact(tracking: Tracking, run_id: str, name: str) -> Response:
    """The artifact's bytes, checked against their sha256 (also sent as X-Loopline-Sha256)."""
    entry, path = tracking.artifact_file(run_id, name)
    headers = {"x-loopline-sha256": entry.digest}
    return FileResponse(path, media_type="application/octet-stream", headers=headers)
