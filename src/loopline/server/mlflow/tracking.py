"""MLflow's experiments, runs and metrics endpoints over loopline's tracking service."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field

from loopline.core.entities import DEFAULT_PROJECT, Metric, RunStatus, Source
from loopline.core.errors import InvalidInput, NotFound
from loopline.server.deps import Tracking
from loopline.server.mlflow import wire
from loopline.server.mlflow.requests import (
    Body,
    KeyValue,
    MaxResults,
    MetricIn,
    RunRef,
    experiment_of,
    name_filter,
    page,
    pairs,
)
from loopline.tracking.service import TrackingService

router = APIRouter()
DATASETS_PREFIX = "mlflow-datasets"  # where a run keeps what MLflow said of the datasets it read
_NOTE_TAG = "mlflow.note.content"
_STATUSES = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"}
Text = Annotated[str, Query(max_length=1000)]


# experiments ---------------------------------------------------------------------------


class NewExperiment(Body):
    name: str
    artifact_location: str | None = None  # loopline decides where artifacts live
    tags: list[KeyValue] = Field(default=[], max_length=100)


class ExperimentSearch(Body):
    max_results: int = MaxResults
    page_token: str | None = None
    filter: str | None = None
    view_type: str | None = None


@router.get("/experiments/get-by-name")
def get_experiment_by_name(tracking: Tracking, experiment_name: Text) -> Response:
    return wire.answer({"experiment": wire.experiment(tracking.get_experiment(experiment_name))})


@router.post("/experiments/create")
def create_experiment(tracking: Tracking, body: NewExperiment) -> Response:
    note = pairs(body.tags).get(_NOTE_TAG, "")
    created = tracking.create_experiment(body.name, DEFAULT_PROJECT, note)
    return wire.answer({"experiment_id": str(created.id)})


@router.get("/experiments/get")
def get_experiment(tracking: Tracking, experiment_id: Text) -> Response:
    return wire.answer({"experiment": wire.experiment(experiment_of(tracking, experiment_id))})


@router.post("/experiments/search")
def search_experiments(tracking: Tracking, body: ExperimentSearch) -> Response:
    if body.view_type == "DELETED_ONLY":  # loopline does not delete experiments
        return wire.answer({"experiments": []})
    matches = name_filter(body.filter)
    found = [e for e in tracking.list_experiments() if matches({"name": e.name})]
    shown, token = page(sorted(found, key=lambda e: e.id), body.page_token, body.max_results)
    return wire.answer({"experiments": [wire.experiment(e) for e in shown], "next_page_token": token})


# runs ----------------------------------------------------------------------------------


class NewRun(Body):
    experiment_id: str | None = None
    user_id: str | None = None  # loopline records the token's owner
    start_time: int | None = None
    tags: list[KeyValue] = Field(default=[], max_length=100)
    run_name: str | None = None


class RunUpdate(RunRef):
    status: str | None = None
    end_time: int | None = None
    run_name: str | None = None


class LogMetric(RunRef, MetricIn):
    pass


class LogKeyValue(RunRef, KeyValue):
    pass


class LogBatch(RunRef):
    metrics: list[MetricIn] = Field(default=[], max_length=1000)
    params: list[KeyValue] = Field(default=[], max_length=100)
    tags: list[KeyValue] = Field(default=[], max_length=100)


class DatasetIn(Body):
    name: str
    digest: str
    source_type: str = ""
    source: str = ""
    schema_: str | None = Field(default=None, alias="schema")
    profile: str | None = None


class DatasetInputIn(Body):
    tags: list[KeyValue] = Field(default=[], max_length=100)
    dataset: DatasetIn


class LogInputs(RunRef):
    datasets: list[DatasetInputIn] = Field(default=[], max_length=100)


class ModelOutput(Body):
    model_id: str
    step: int = 0


class LogOutputs(RunRef):
    models: list[ModelOutput] = Field(default=[], max_length=100)


class RunSearch(Body):
    experiment_ids: list[str] = Field(default=[], max_length=1000)
    filter: str | None = None
    run_view_type: str = "ACTIVE_ONLY"
    max_results: int = Field(default=1000, ge=1, le=10_000)
    order_by: list[str] = Field(default=[], max_length=20)
    page_token: str | None = None


@router.post("/runs/create")
def create_run(tracking: Tracking, body: NewRun) -> Response:
    exp = experiment_of(tracking, body.experiment_id)
    tags = pairs(body.tags)
    name = body.run_name or tags.pop(wire.RUN_NAME_TAG, None)
    tags.pop(wire.RUN_NAME_TAG, None)
    parent = tags.pop(wire.PARENT_RUN_TAG, None)
    source = Source(
        entry_point=tags.get("mlflow.source.name"), git_commit=tags.get("mlflow.source.git.commit")
    )
    started = tracking.start_run(
        exp.id, project=exp.project, run_name=name or None, tags=tags, parent_id=parent, source=source
    )
    return wire.answer({"run": wire.run(started)})


@router.post("/runs/update")
def update_run(tracking: Tracking, body: RunUpdate) -> Response:
    status = body.status or "RUNNING"
    if status not in _STATUSES:
        raise InvalidInput(f"status {status!r:.40} is none of {', '.join(sorted(_STATUSES))}")
    current = tracking.get_run(body.id)
    if body.run_name and body.run_name != current.name:
        raise InvalidInput("loopline does not rename runs: a run keeps the name it started with")
    if status in ("RUNNING", "SCHEDULED"):
        return wire.answer({"run_info": wire.run_info(current)})
    return wire.answer({"run_info": wire.run_info(tracking.end_run(body.id, RunStatus(status)))})


@router.post("/runs/delete")
def delete_run(tracking: Tracking, body: RunRef) -> Response:
    tracking.delete_run(body.id)
    return wire.answer()


@router.post("/runs/log-metric")
def log_metric(tracking: Tracking, body: LogMetric) -> Response:
    tracking.log_batch(body.id, [body.parsed()])
    return wire.answer()


@router.post("/runs/log-parameter")
def log_param(tracking: Tracking, body: LogKeyValue) -> Response:
    tracking.log_batch(body.id, params={body.key: body.value})
    return wire.answer()


@router.post("/runs/set-tag")
def set_tag(tracking: Tracking, body: LogKeyValue) -> Response:
    tracking.log_batch(body.id, tags={body.key: body.value})
    return wire.answer()


@router.post("/runs/log-batch")
def log_batch(tracking: Tracking, body: LogBatch) -> Response:
    metrics = [m.parsed() for m in body.metrics if m.model_id is None]
    linked = [m.parsed() for m in body.metrics if m.model_id is not None]
    tracking.log_batch(
        body.id, metrics + _not_logged(tracking, body.id, linked), pairs(body.params), pairs(body.tags)
    )
    return wire.answer()


def _not_logged(tracking: TrackingService, run_id: str, metrics: list[Metric]) -> list[Metric]:
    """Of values MLflow links to a logged model, those the run does not hold yet: its
    `log_model` sends the run's whole history again, which MLflow's store deduplicates."""
    held: dict[str, set[tuple[int, int]]] = {}
    for m in metrics:
        if m.key not in held:
            held[m.key] = {(h.step, h.timestamp) for h in tracking.metric_history(run_id, m.key)}
    return [m for m in metrics if (m.step, m.timestamp) not in held[m.key]]


@router.post("/runs/log-inputs")
def log_inputs(tracking: Tracking, body: LogInputs) -> Response:
    """Each dataset is a lineage input of the run, named by the sha256 of what MLflow said of
    it (name, digest, source, schema, profile), which is kept as an artifact of the run."""
    for item in body.datasets:
        described = item.model_dump(by_alias=True, exclude_none=True)
        raw = orjson.dumps(described, option=orjson.OPT_SORT_KEYS)
        digest = hashlib.sha256(raw).hexdigest()
        tracking.log_artifact_bytes(body.id, f"{DATASETS_PREFIX}/{digest}.json", raw, "application/json")
        tracking.log_input(body.id, item.dataset.name, digest)
    return wire.answer()


@router.post("/runs/outputs")
def log_outputs(tracking: Tracking, body: LogOutputs) -> Response:
    """A logged model is the run's output already (it is logged under the run)."""
    for output in body.models:
        if tracking.get_logged_model(output.model_id).run_id != body.id:
            raise InvalidInput(f"logged model {output.model_id} was not logged by run {body.id}")
    return wire.answer()


@router.get("/runs/get")
def get_run(
    tracking: Tracking, run_id: Annotated[str | None, Query(max_length=64)] = None,
    run_uuid: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:  # fmt: skip
    found = tracking.get_run(RunRef(run_id=run_id, run_uuid=run_uuid).id)
    return wire.answer({"run": wire.run(found, _dataset_inputs(tracking, found.id))})


def _dataset_inputs(tracking: TrackingService, run_id: str) -> list[dict[str, Any]]:
    found = []
    for name, digest in tracking.inputs(run_id):
        try:
            found.append(orjson.loads(tracking.read_artifact(run_id, f"{DATASETS_PREFIX}/{digest}.json")))
        except NotFound:  # a loopline dataset version: described by its name and digest
            dataset = {"name": name, "digest": digest[:8], "source_type": "loopline", "source": "{}"}
            found.append({"tags": [], "dataset": dataset})
    return found


@router.post("/runs/search")
def search_runs(tracking: Tracking, body: RunSearch) -> Response:
    experiments = [experiment_of(tracking, e).id for e in body.experiment_ids]
    found = tracking.search_runs(
        experiments,
        filter=body.filter or None,
        order_by=body.order_by or None,
        max_results=body.max_results,
        page_token=body.page_token or None,
        include_deleted=body.run_view_type != "ACTIVE_ONLY",
    )
    runs = [r for r in found.runs if r.deleted or body.run_view_type != "DELETED_ONLY"]
    return wire.answer({"runs": [wire.run(r) for r in runs], "next_page_token": found.next_page_token})


@router.get("/metrics/get-history")
def metric_history(
    tracking: Tracking,
    metric_key: Annotated[str, Query(max_length=250)],
    run_id: Annotated[str | None, Query(max_length=64)] = None,
    run_uuid: Annotated[str | None, Query(max_length=64)] = None,
    max_results: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000,
    page_token: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    history = tracking.metric_history(RunRef(run_id=run_id, run_uuid=run_uuid).id, metric_key)
    shown, token = page(history, page_token, max_results)
    return wire.answer({"metrics": [wire.metric(m) for m in shown], "next_page_token": token})
