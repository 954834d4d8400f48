"""Datasets: versions registered from uploaded Parquet rows, their data and profiles."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from loopline.core.datasets import DatasetVersion
from loopline.server.deps import Backend, Caller, Id, Paging, page, staging
from loopline.server.encoding import json_response
from loopline.server.routes.uploads import uploaded_table
from loopline.server.schemas import (
    NewDatasetVersion,
    Page,
    RegisteredDataset,
)

router = APIRouter()


@router.get("/datasets", response_model=Page[DatasetVersion], tags=["datasets"])
def list_datasets(b: Backend, who: Caller, paging: Paging) -> Response:
    return json_response(page(b.services(who).datasets.list_datasets(), paging))


@router.get("/datasets/{name}/versions", response_model=Page[DatasetVersion], tags=["datasets"])
def dataset_versions(b: Backend, who: Caller, name: str, paging: Paging) -> Response:
    return json_response(page(b.services(who).datasets.versions(name), paging))


@router.get("/datasets/{name}/versions/{version}", response_model=DatasetVersion, tags=["datasets"])
def get_dataset(b: Backend, who: Caller, name: str, version: Id) -> Response:
    return json_response(b.services(who).datasets.get(name, version))


@router.post("/datasets/{name}/versions", response_model=RegisteredDataset, tags=["datasets"])
def register_dataset(
    request: Request, b: Backend, who: Caller, name: str, body: NewDatasetVersion
) -> Response:
    """Register the upload's `data.parquet` as the next version of the dataset; the same rows
    give back the version that holds them (`created` false). SQL sources are run by clients."""
    with uploaded_table(staging(request), body.upload_id, who) as data:
        version, created = b.services(who).datasets.register(
            name, data, description=body.description, tags=body.tags
        )
    return json_response({"version": version, "created": created}, 201 if created else 200)


@router.get("/datasets/{name}/versions/{version}/data", response_class=FileResponse, tags=["datasets"])
def dataset_data(b: Backend, who: Caller, name: str, version: Id) -> Response:
    """The version's rows as one Parquet file."""
    service = b.services(who).datasets
    return FileResponse(service.local_path(service.get(name, version)), media_type="application/octet-stream")


@router.get("/datasets/{name}/versions/{version}/profile", response_model=dict[str, Any], tags=["datasets"])
def dataset_profile(b: Backend, who: Caller, name: str, version: Id) -> Response:
    """The reference profile computed at registration: per-column statistics and sketches."""
    service = b.services(who).datasets
    return json_response(service.reference_profile(service.get(name, version)).to_dict())


@router.get("/dataset-versions", response_model=Page[DatasetVersion], tags=["datasets"])
def dataset_versions_by_digest(b: Backend, who: Caller, paging: Paging, digest: str) -> Response:
    """Every version holding exactly these rows (their digest), whatever its dataset."""
    return json_response(page(b.services(who).datasets.versions_with_digest(digest), paging))
