"""MLflow's logged models, registered models and model versions over loopline's tracking
and registry services. A version registered here is an ordinary loopline model version: its
files are those MLflow uploaded, described for loopline by `loopline.models.mlflow_format`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import Field

from loopline.core.errors import InvalidInput
from loopline.core.registry import RegisteredModel
from loopline.registry.service import RegistryService
from loopline.server.deps import Registry, Tracking
from loopline.server.mlflow import wire
from loopline.server.mlflow.artifacts import _run_path
from loopline.server.mlflow.requests import (
    Body,
    KeyValue,
    experiment_of,
    name_filter,
    page,
    pairs,
    with_tags,
)
from loopline.tracking.service import TrackingService

router = APIRouter()
Name = Annotated[str, Query(max_length=250)]
_FINAL_STATUS = {"LOGGED_MODEL_READY": "READY", "LOGGED_MODEL_UPLOAD_FAILED": "FAILED"}


# logged models -------------------------------------------------------------------------


class NewLoggedModel(Body):
    experiment_id: str
    name: str
    model_type: str = ""
    source_run_id: str | None = None
    params: list[KeyValue] = Field(default=[], max_length=100)
    tags: list[KeyValue] = Field(default=[], max_length=100)


class FinalizeLoggedModel(Body):
    status: str


class LoggedModelTags(Body):
    tags: list[KeyValue] = Field(default=[], max_length=100)


class LoggedModelParams(Body):
    params: list[KeyValue] = Field(default=[], max_length=100)


class LoggedModelSearch(Body):
    experiment_ids: list[str] = Field(default=[], max_length=1000)
    filter: str | None = None
    max_results: int = Field(default=100, ge=1, le=10_000)
    page_token: str | None = None


@router.post("/logged-models")
def create_logged_model(tracking: Tracking, body: NewLoggedModel) -> Response:
    created = tracking.create_logged_model(
        experiment_of(tracking, body.experiment_id).id,
        body.name,
        run_id=body.source_run_id or None,
        model_type=body.model_type,
        tags=pairs(body.tags),
        params=pairs(body.params),
    )
    return wire.answer({"model": wire.logged_model(created)})


@router.post("/logged-models/search")
def search_logged_models(tracking: Tracking, body: LoggedModelSearch) -> Response:
    matches = name_filter(body.filter, ("name", "source_run_id"))
    experiments = [experiment_of(tracking, e).id for e in body.experiment_ids]
    found = [
        m
        for m in tracking.search_logged_models(experiments, max_results=10_000)
        if matches(with_tags({"name": m.name, "source_run_id": m.run_id}, m.tags))
    ]
    shown, token = page(found, body.page_token, body.max_results)
    return wire.answer({"models": [wire.logged_model(m) for m in shown], "next_page_token": token})


@router.get("/logged-models/{model_id}")
def get_logged_model(tracking: Tracking, model_id: str) -> Response:
    return wire.answer({"model": wire.logged_model(tracking.get_logged_model(model_id))})


@router.patch("/logged-models/{model_id}")
def finalize_logged_model(tracking: Tracking, model_id: str, body: FinalizeLoggedModel) -> Response:
    status = _FINAL_STATUS.get(body.status)
    if status is None:
        raise InvalidInput(
            f"a logged model is finalized as {' or '.join(_FINAL_STATUS)}, not {body.status!r:.40}"
        )
    return wire.answer({"model": wire.logged_model(tracking.finalize_logged_model(model_id, status))})


@router.patch("/logged-models/{model_id}/tags")
def set_logged_model_tags(tracking: Tracking, model_id: str, body: LoggedModelTags) -> Response:
    tracking.update_logged_model(model_id, tags=pairs(body.tags))
    return wire.answer()


@router.delete("/logged-models/{model_id}/tags/{key}")
def delete_logged_model_tag(tracking: Tracking, model_id: str, key: str) -> Response:
    tracking.update_logged_model(model_id, removed_tags=[key])
    return wire.answer()


@router.post("/logged-models/{model_id}/params")
def log_logged_model_params(tracking: Tracking, model_id: str, body: LoggedModelParams) -> Response:
    tracking.update_logged_model(model_id, params=pairs(body.params))
    return wire.answer()


# registered models ---------------------------------------------------------------------


class NewModel(Body):
    name: str
    tags: list[KeyValue] = Field(default=[], max_length=100)
    description: str = ""


class ModelRef(Body):
    name: str


class ModelUpdate(ModelRef):
    description: str | None = None


class ModelTag(ModelRef, KeyValue):
    pass


class AliasMove(ModelRef):
    alias: str
    version: str


class AliasRef(ModelRef):
    alias: str


Filter = Annotated[str | None, Query(max_length=1000)]
PageToken = Annotated[str | None, Query(max_length=20)]
MaxResults = Annotated[int, Query(ge=1, le=50_000)]


def _registered(registry: RegistryService, model: RegisteredModel) -> dict[str, object]:
    latest = registry.get_version(model.name, model.latest_version) if model.latest_version else None
    return wire.registered_model(model, latest)


@router.post("/registered-models/create")
def create_model(registry: Registry, body: NewModel) -> Response:
    created = registry.create_model(body.name, body.description, pairs(body.tags))
    return wire.answer({"registered_model": wire.registered_model(created)})


@router.get("/registered-models/get")
def get_model(registry: Registry, name: Name) -> Response:
    return wire.answer({"registered_model": _registered(registry, registry.get_model(name))})


@router.get("/registered-models/search")
def search_models(
    registry: Registry, filter: Filter = None, max_results: MaxResults = 1000, page_token: PageToken = None
) -> Response:
    matches = name_filter(filter)
    found = [m for m in registry.list_models() if matches(with_tags({"name": m.display_name}, m.tags))]
    shown, token = page(found, page_token, max_results)
    return wire.answer(
        {"registered_models": [_registered(registry, m) for m in shown], "next_page_token": token}
    )


@router.patch("/registered-models/update")
def update_model(registry: Registry, body: ModelUpdate) -> Response:
    updated = registry.update_model(body.name, description=body.description)
    return wire.answer({"registered_model": _registered(registry, updated)})


@router.delete("/registered-models/delete")
def delete_model(registry: Registry, body: ModelRef) -> Response:
    registry.delete_model(body.name)
    return wire.answer()


@router.post("/registered-models/set-tag")
def set_model_tag(registry: Registry, body: ModelTag) -> Response:
    registry.update_model(body.name, tags={body.key: body.value})
    return wire.answer()


@router.post("/registered-models/alias")
def set_alias(registry: Registry, body: AliasMove) -> Response:
    registry.set_alias(
        body.name, body.alias, _version_number(body.version), reason="set through the MLflow API"
    )
    return wire.answer()


@router.delete("/registered-models/alias")
def delete_alias(registry: Registry, body: AliasRef) -> Response:
    registry.remove_alias(body.name, body.alias, reason="removed through the MLflow API")
    return wire.answer()


@router.get("/registered-models/alias")
def get_by_alias(registry: Registry, name: Name, alias: Name) -> Response:
    version = registry.resolve(f"models:/{name}@{alias}")
    return wire.answer({"model_version": wire.model_version(version, name)})


@router.post("/registered-models/get-latest-versions")
def latest_versions(registry: Registry, body: ModelRef) -> Response:
    model = registry.get_model(body.name)
    versions = [registry.get_version(model.name, model.latest_version)] if model.latest_version else []
    return wire.answer({"model_versions": [wire.model_version(v, model.display_name) for v in versions]})


# model versions ------------------------------------------------------------------------


class NewVersion(Body):
    name: str
    source: str = ""
    run_id: str | None = None
    model_id: str | None = None
    tags: list[KeyValue] = Field(default=[], max_length=100)
    description: str = ""


class VersionRef(ModelRef):
    version: str


class VersionUpdate(VersionRef):
    description: str | None = None


class VersionTag(VersionRef, KeyValue):
    pass


def _version_number(version: str) -> int:
    if not version.isdigit() or len(version) > 18:
        raise InvalidInput(f"version {version!r:.40} is not a version number")
    return int(version)


def _model_files(tracking: TrackingService, body: NewVersion) -> tuple[str, str, str | None]:
    """The run and artifact folder holding the model a version is created from, and the
    logged model's id if it is one. loopline registers only files it holds already, never a
    location the caller chooses."""
    source = body.source.strip()
    model_id = body.model_id or (source.removeprefix("models:/") if source.startswith("models:/m-") else None)
    if model_id:
        logged = tracking.get_logged_model(model_id)
        return logged.run_id, logged.artifact_prefix, model_id
    if source.startswith("runs:/"):
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        return run_id, path, None
    if source.startswith("mlflow-artifacts:"):
        run_id, path = _run_path(tracking, source.removeprefix("mlflow-artifacts:").lstrip("/"))
        return run_id, path, None
    raise InvalidInput(
        f"source {source!r:.200} is not a model this server holds: use models:/MODEL_ID, runs:/RUN_ID/PATH "
        "or an mlflow-artifacts: URI of a run's artifacts"
    )


@router.post("/model-versions/create")
def create_version(tracking: Tracking, registry: Registry, body: NewVersion) -> Response:
    run_id, path, model_id = _model_files(tracking, body)
    if body.run_id and body.run_id != run_id:
        raise InvalidInput(f"the model's files belong to run {run_id}, not to run {body.run_id}")
    tags = pairs(body.tags) | {wire.SOURCE_TAG: body.source or f"runs:/{run_id}/{path}"}
    if model_id:
        tags[wire.MODEL_ID_TAG] = model_id
    version = registry.register_run_files(body.name, run_id, path, description=body.description, tags=tags)
    return wire.answer({"model_version": wire.model_version(version, body.name)})


@router.get("/model-versions/get")
def get_version(registry: Registry, name: Name, version: Name) -> Response:
    found = registry.get_version(name, _version_number(version))
    return wire.answer({"model_version": wire.model_version(found, name)})


@router.get("/model-versions/get-download-uri")
def download_uri(registry: Registry, name: Name, version: Name) -> Response:
    found = registry.get_version(name, _version_number(version))
    return wire.answer({"artifact_uri": wire.version_download_uri(found)})


@router.patch("/model-versions/update")
def update_version(registry: Registry, body: VersionUpdate) -> Response:
    updated = registry.update_version(body.name, _version_number(body.version), description=body.description)
    return wire.answer({"model_version": wire.model_version(updated, body.name)})


@router.delete("/model-versions/delete")
def delete_version(registry: Registry, body: VersionRef) -> Response:
    registry.delete_version(body.name, _version_number(body.version))
    return wire.answer()


@router.post("/model-versions/set-tag")
def set_version_tag(registry: Registry, body: VersionTag) -> Response:
    registry.update_version(body.name, _version_number(body.version), tags={body.key: body.value})
    return wire.answer()


@router.get("/model-versions/search")
def search_versions(
    registry: Registry, filter: Filter = None, max_results: MaxResults = 1000, page_token: PageToken = None
) -> Response:
    """Versions of the models a filter names (`name = 'x'`), or of every visible model;
    `run_id = '...'` narrows them to a run's."""
    matches = name_filter(filter, ("name", "run_id"))
    found = [
        (version, model.display_name)
        for model in registry.list_models()
        for version in registry.list_versions(model.name)
        if not version.deleted
        and matches(with_tags({"name": model.display_name, "run_id": version.run_id or ""}, version.tags))
    ]
    shown, token = page(found, page_token, max_results)
    return wire.answer(
        {"model_versions": [wire.model_version(v, n) for v, n in shown], "next_page_token": token}
    )
