"""Datasets: versions registered from uploaded Parquet rows, their data and profiles."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from loopline.core.datasets import DatasetVersion, DataValidation, ValidationReport
from loopline.core.errors import InvalidInput
from loopline.server.deps import Backend, Caller, Id, Paging, page, staging
from loopline.server.encoding import json_response
from loopline.server.routes.uploads import uploaded_table
from loopline.server.schemas import (
    NewDatasetVersion,
    NewValidation,
    Page,
    RegisteredDataset,
)
from loopline.specs.contract import Contract

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
    give back the version that holds them (`created` false). SQL sources are run by clients.
    Under a `contract`, rows that break it are refused (422) and the columns it masks or
    hashes are treated here, with this server's hash key, before anything is stored."""
    contract = None if body.contract is None else Contract.parse(body.contract, "the contract")
    with uploaded_table(staging(request), body.upload_id, who) as data:
        version, created = b.services(who).datasets.register(
            name, data, description=body.description, tags=body.tags, contract=contract
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


@router.post("/validations", response_model=ValidationReport, tags=["datasets"])
def validate(request: Request, b: Backend, who: Caller, body: NewValidation) -> Response:
    """Check the upload's `data.parquet`, or a stored dataset version, against a contract; with
    `run_id`, the verdict is recorded on that running run for the `data_validation` gate."""
    service = b.services(who).datasets
    contract = Contract.parse(body.contract, "the contract")
    options: dict[str, Any] = {"run_id": body.run_id, "samples": body.samples, "source": body.source}
    if body.dataset is not None:
        return json_response(service.validate(service.get(body.dataset), contract, **options))
    if body.upload_id is None:
        raise InvalidInput("give the data as an upload (upload_id) or a stored version (dataset)")
    with uploaded_table(staging(request), body.upload_id, who) as data:
        return json_response(service.validate(data, contract, **options))


@router.get("/runs/{run_id}/validations", response_model=Page[DataValidation], tags=["datasets"])
def run_validations(b: Backend, who: Caller, run_id: str, paging: Paging) -> Response:
    """The validations recorded on a run, oldest first: what the `data_validation` gate reads."""
    return json_response(page(b.services(who).datasets.validations(run_id), paging))
