"""The feature store: definitions, point-in-time training sets from uploaded entity rows, and
online values. The service checks roles, records the audit trail and confines the files a
view may read to the server's data roots; these handlers only translate."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

import pyarrow.parquet as pq
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from loopline.core.datasets import DatasetVersion
from loopline.core.errors import NotFound
from loopline.core.features import Entity, FeatureView, RegisteredView
from loopline.server.deps import Backend, Caller, Paging, page, staging
from loopline.server.encoding import json_response
from loopline.server.routes.uploads import discard_upload, new_upload, upload_files, uploaded_table
from loopline.server.schemas import (
    FeatureDefinitions,
    HistoricalRequest,
    HistoricalResult,
    MaterializeRequest,
    NewTrainingSet,
    OnlineRequest,
    Page,
)
from loopline.services import Applied, Materialized
from loopline.services.features import Freshness

router = APIRouter(tags=["features"])
RESULT_FILE = "historical.parquet"


@router.get("/features/entities", response_model=Page[Entity])
def list_entities(b: Backend, who: Caller, paging: Paging) -> Response:
    """Every entity, with its join keys."""
    return json_response(page(b.services(who).features.entities(), paging))


@router.get("/features/views", response_model=Page[RegisteredView])
def list_views(b: Backend, who: Caller, paging: Paging) -> Response:
    """The newest version of every feature view."""
    return json_response(page(b.services(who).features.views(), paging))


@router.get("/features/views/{ref}", response_model=RegisteredView)
def get_view(b: Backend, who: Caller, ref: str) -> Response:
    """A view by `name` (its newest version) or `name@N`."""
    return json_response(b.services(who).features.view(ref))


@router.get("/features/views/{name}/versions", response_model=Page[RegisteredView])
def view_versions(b: Backend, who: Caller, name: str, paging: Paging) -> Response:
    """Every version of a feature view, oldest first."""
    return json_response(page(b.services(who).features.versions(name), paging))


@router.post("/features/apply", response_model=Applied)
def apply(b: Backend, who: Caller, body: FeatureDefinitions) -> Response:
    """Register entities and feature views; a view whose definition changed gets a new version."""
    entities = [Entity.from_dict(item) for item in body.entities]
    views = [FeatureView.from_dict(item) for item in body.feature_views]
    return json_response(b.services(who).features.apply(entities, views))


@router.post("/features/historical", response_model=HistoricalResult, status_code=201)
def historical(request: Request, b: Backend, who: Caller, body: HistoricalRequest) -> Response:
    """Join the features to the upload's entity rows (`data.parquet`), as of each row's time.
    The result waits as a Parquet file for `GET /features/historical/{result_id}`, which
    sends it once; one never fetched is removed after a day."""
    service = b.services(who).features
    with uploaded_table(staging(request), body.upload_id, who) as rows:
        result_id = new_upload(staging(request), who)
        target = upload_files(staging(request), result_id, who) / RESULT_FILE
        try:
            service.get_historical(
                rows, body.features, timestamp_column=body.timestamp_column, full_names=body.full_names,
                output=target,
            )  # fmt: skip
            with open(target, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            count = pq.ParquetFile(target).metadata.num_rows
        except BaseException:
            discard_upload(target.parent)
            raise
    return json_response({"result_id": result_id, "sha256": digest, "rows": count}, 201)


@router.get("/features/historical/{result_id}", response_class=FileResponse)
def historical_result(request: Request, who: Caller, result_id: str) -> Response:
    """A result of `POST /features/historical`, to the caller who asked for it, once."""
    files = upload_files(staging(request), result_id, who)
    sending = files / f"{RESULT_FILE}.{uuid.uuid4().hex}"
    try:  # claimed by one rename: two requests at once cannot both have it
        (files / RESULT_FILE).rename(sending)
    except FileNotFoundError:
        raise NotFound(f"historical result {result_id!r} does not exist") from None
    return FileResponse(
        sending, media_type="application/octet-stream", background=BackgroundTask(discard_upload, files)
    )


@router.post("/features/training-sets", response_model=DatasetVersion, status_code=201)
def register_training_set(request: Request, b: Backend, who: Caller, body: NewTrainingSet) -> Response:
    """Build a training set from the upload's entity rows and store it as the next version of
    dataset `name`, its lineage naming the feature view versions it was made from."""
    service = b.services(who).features
    with uploaded_table(staging(request), body.upload_id, who) as rows:
        version = service.register_training_set(
            body.name, rows, body.features, timestamp_column=body.timestamp_column,
            full_names=body.full_names, description=body.description,
        )  # fmt: skip
    return json_response(version, 201)


@router.post("/features/views/{ref}/materialize", response_model=Materialized)
def materialize(b: Backend, who: Caller, ref: str, body: MaterializeRequest | None = None) -> Response:
    """Write the view's newest values known since its last run to the online store."""
    end = None if body is None else body.end
    return json_response(b.services(who).features.materialize(ref, end=end))


@router.get("/features/freshness", response_model=list[Freshness])
def freshness(b: Backend, who: Caller, view: Annotated[list[str] | None, Query()] = None) -> Response:
    """How old each view's newest online value is against its TTL (`?view=` repeated, or all)."""
    service = b.services(who).features
    try:
        return json_response(service.freshness(view or ()))
    finally:
        service.close()


@router.post("/features/online", response_model=dict[str, list[Any]])
def get_online(b: Backend, who: Caller, body: OnlineRequest) -> Response:
    """The newest materialized values of the entities, as columns beside their key columns."""
    service = b.services(who).features
    try:
        found = service.get_online(body.entities, body.features, full_names=body.full_names)
    finally:
        service.close()  # its online store connection lives as long as this request's services
    return json_response(found)
