"""Registered models, their versions and files, aliases, approvals and promotion."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from loopline.core.access import AliasRequest, Role
from loopline.core.registry import AliasEvent, ModelVersion, RegisteredModel
from loopline.server.deps import Id, Paging, Registry, page, staging
from loopline.server.encoding import json_response
from loopline.server.routes.uploads import (
    discard_upload,
    new_upload,
    stream_to,
    upload_files,
    upload_target,
)
from loopline.server.schemas import (
    AliasMove,
    Decision,
    ModelUpdate,
    NewModel,
    NewVersion,
    Page,
    TrustedCode,
    TrustedTypes,
    Upload,
)

router = APIRouter(tags=["registry"])


@router.get("/models", response_model=Page[RegisteredModel])
def list_models(registry: Registry, paging: Paging) -> Response:
    return json_response(page(registry.list_models(), paging))


@router.post("/models", response_model=RegisteredModel, status_code=201)
def create_model(registry: Registry, body: NewModel) -> Response:
    return json_response(registry.create_model(body.name, body.description, body.tags, body.project), 201)


@router.get("/models/{name}", response_model=RegisteredModel)
def get_model(registry: Registry, name: str) -> Response:
    return json_response(registry.get_model(name))


@router.patch("/models/{name}", response_model=RegisteredModel)
def update_model(registry: Registry, name: str, body: ModelUpdate) -> Response:
    return json_response(registry.update_model(name, body.description, body.tags))


@router.delete("/models/{name}", status_code=204)
def delete_model(registry: Registry, name: str) -> Response:
    registry.delete_model(name)
    return Response(status_code=204)


@router.get("/models/{name}/versions", response_model=Page[ModelVersion])
def list_versions(registry: Registry, name: str, paging: Paging) -> Response:
    return json_response(page(registry.list_versions(name), paging))


@router.post("/uploads", response_model=Upload, status_code=201)
def start_upload(request: Request, registry: Registry) -> Response:
    """A staging area for a model's files; register it with `POST /models/{name}/versions`."""
    registry.require_role_somewhere(Role.EDITOR)
    return json_response({"upload_id": new_upload(staging(request), registry.principal)}, 201)


@router.put("/uploads/{upload_id}/files/{path:path}", status_code=204)
async def upload_file(request: Request, registry: Registry, upload_id: str, path: str) -> Response:
    await run_in_threadpool(registry.require_role_somewhere, Role.EDITOR)
    files = upload_files(staging(request), upload_id, registry.principal)
    await stream_to(request, upload_target(files, path))
    return Response(status_code=204)


@router.post("/models/{name}/versions", response_model=ModelVersion, status_code=201)
def register_version(request: Request, registry: Registry, name: str, body: NewVersion) -> Response:
    """Register the uploaded files as the next version. The server reads only the model's
    description and checks every file's hash; it never loads the model."""
    files = upload_files(staging(request), body.upload_id, registry.principal)
    try:
        version = registry.register(
            name, files, run_id=body.run_id, description=body.description, tags=body.tags,
            project=body.project,
        )  # fmt: skip
    finally:
        discard_upload(files)
    return json_response(version, 201)


@router.get("/models/{name}/versions/{version}", response_model=ModelVersion)
def get_version(registry: Registry, name: str, version: Id) -> Response:
    return json_response(registry.get_version(name, version))


@router.patch("/models/{name}/versions/{version}", response_model=ModelVersion)
def update_version(registry: Registry, name: str, version: Id, body: ModelUpdate) -> Response:
    return json_response(registry.update_version(name, version, body.description, body.tags))


@router.put("/models/{name}/versions/{version}/trusted-code", response_model=ModelVersion)
def trust_code(registry: Registry, name: str, version: Id, body: TrustedCode) -> Response:
    """Trust the version to run the code its files carry, for every loader (maintainers)."""
    return json_response(registry.trust_code(name, version, body.trusted))


@router.put("/models/{name}/versions/{version}/trusted-types", response_model=ModelVersion)
def trust_types(registry: Registry, name: str, version: Id, body: TrustedTypes) -> Response:
    """Vouch for the types the version needs loaded beyond the reviewed list (maintainers)."""
    return json_response(registry.trust_types(name, version, body.types))


@router.delete("/models/{name}/versions/{version}", status_code=204)
def delete_version(registry: Registry, name: str, version: Id) -> Response:
    registry.delete_version(name, version)
    return Response(status_code=204)


@router.get("/models/{name}/versions/{version}/files/{path:path}", response_class=FileResponse)
def download_file(registry: Registry, name: str, version: Id, path: str) -> Response:
    return FileResponse(registry.version_file(name, version, path), media_type="application/octet-stream")


@router.get("/resolve", response_model=ModelVersion)
def resolve(registry: Registry, uri: Annotated[str, Query(max_length=600)]) -> Response:
    """The version `models:/NAME/VERSION`, `models:/NAME@ALIAS` or `models:/NAME/latest` names."""
    return json_response(registry.resolve(uri))


@router.put("/models/{name}/aliases/{alias}", response_model=AliasEvent)
def set_alias(registry: Registry, name: str, alias: str, body: AliasMove) -> Response:
    """Move the alias. A protected alias answers 409 `approval_required` with the request's id."""
    return json_response(registry.set_alias(name, alias, body.version, reason=body.reason))


@router.delete("/models/{name}/aliases/{alias}", response_model=AliasEvent)
def remove_alias(registry: Registry, name: str, alias: str, reason: str = "") -> Response:
    return json_response(registry.remove_alias(name, alias, reason=reason))


@router.get("/models/{name}/alias-history", response_model=Page[AliasEvent])
def alias_history(registry: Registry, name: str, paging: Paging, alias: str | None = None) -> Response:
    return json_response(page(registry.alias_history(name, alias), paging))


@router.put("/models/{name}/aliases/{alias}/protection", status_code=204)
def protect_alias(registry: Registry, name: str, alias: str) -> Response:
    registry.protect_alias(name, alias)
    return Response(status_code=204)


@router.delete("/models/{name}/aliases/{alias}/protection", status_code=204)
def unprotect_alias(registry: Registry, name: str, alias: str) -> Response:
    registry.unprotect_alias(name, alias)
    return Response(status_code=204)


@router.get("/models/{name}/protected-aliases", response_model=list[str])
def protected_aliases(registry: Registry, name: str) -> Response:
    """The aliases of the model whose moves need a second person's approval."""
    return json_response(registry.protected_aliases(name))


@router.get("/alias-requests", response_model=Page[AliasRequest])
def alias_requests(
    registry: Registry, paging: Paging, model: str | None = None, status: str | None = None
) -> Response:
    return json_response(page(registry.alias_requests(model, status), paging))


@router.post("/alias-requests/{request_id}/approve", response_model=AliasEvent)
def approve(registry: Registry, request_id: Id, body: Decision) -> Response:
    return json_response(registry.approve(request_id, body.reason))


@router.post("/alias-requests/{request_id}/reject", response_model=AliasRequest)
def reject(registry: Registry, request_id: Id, body: Decision) -> Response:
    return json_response(registry.reject(request_id, body.reason))
