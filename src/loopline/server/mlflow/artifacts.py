"""MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`) over loopline's stores.

Paths are those of the artifact URIs this API hands out: `EXPERIMENT/RUN/artifacts/NAME` for
a run's artifacts (a logged model's files among them), `registry/MODEL/VERSION/FILE` for a
registered version's files, read-only. A path never becomes a storage location: it names a
run or a version, whose service checks the caller's role and the name."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool

from loopline.core.errors import InvalidInput, NotFound
from loopline.server.deps import Registry, Tracking, staging
from loopline.server.mlflow import wire
from loopline.server.routes.uploads import stream_to, temporary_file
from loopline.tracking.service import TrackingService

router = APIRouter()
_REGISTRY = "registry"


def _run_path(tracking: TrackingService, path: str) -> tuple[str, str]:
    """(run id, artifact name or prefix) of `EXPERIMENT/RUN/artifacts[/NAME]`."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or parts[2] != "artifacts" or not parts[0].isdigit():
        raise NotFound(f"{path!r:.200} names no run's artifacts (EXPERIMENT_ID/RUN_ID/artifacts/NAME)")
    run = tracking.get_run(parts[1])
    if str(run.experiment_id) != parts[0]:
        raise NotFound(f"run {run.id} is not in experiment {parts[0]}")
    return run.id, parts[3] if len(parts) == 4 else ""


def _version_path(path: str) -> tuple[str, int, str]:
    """(model, version, file or prefix) of `registry/MODEL/VERSION[/FILE]`."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or not parts[2].isdigit() or len(parts[2]) > 18:
        raise NotFound(f"{path!r:.200} names no model version's files (registry/MODEL/VERSION/FILE)")
    return parts[1], int(parts[2]), parts[3] if len(parts) == 4 else ""


def _is_version(path: str) -> bool:
    return path.strip("/").split("/", 1)[0] == _REGISTRY


def _children(files: dict[str, int], prefix: str) -> list[dict[str, Any]]:
    """The files and folders directly below `prefix`, as MLflow lists them."""
    below = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    found: dict[str, dict[str, Any]] = {}
    for name, size in files.items():
        if not name.startswith(below):
            continue
        first, slash, _ = name[len(below) :].partition("/")
        found.setdefault(
            first,
            {"path": first, "is_dir": True} if slash else {"path": first, "is_dir": False, "file_size": size},
        )
    return [found[k] for k in sorted(found)]


@router.get("/artifacts")
def list_artifacts(
    tracking: Tracking, registry: Registry, path: Annotated[str, Query(max_length=2048)] = ""
) -> Response:
    if _is_version(path):
        model, version, prefix = _version_path(path)
        files = {name: size for name, (_, size) in registry.get_version(model, version).files.items()}
    else:
        run_id, prefix = _run_path(tracking, path)
        files = {e.name: e.size for e in tracking.list_artifacts(run_id, f"{prefix}/" if prefix else "")}
    return wire.answer({"files": _children(files, prefix)})


@router.put("/artifacts/{path:path}")
async def upload_artifact(tracking: Tracking, request: Request, path: str) -> Response:
    """The request body, streamed, becomes the run's artifact."""
    if _is_version(path):
        raise InvalidInput("a registered version's files do not change; register a new version")
    run_id, name = await run_in_threadpool(_run_path, tracking, path)
    if not name:
        raise InvalidInput(f"{path!r:.200} names no file below the run's artifacts")
    with temporary_file(staging(request)) as body:
        await stream_to(request, body)
        await run_in_threadpool(tracking.log_artifact_path, run_id, body, name)
    return wire.answer()


@router.get("/artifacts/{path:path}", response_class=FileResponse)
def download_artifact(tracking: Tracking, registry: Registry, path: str) -> Response:
    if _is_version(path):
        model, version, name = _version_path(path)
        return FileResponse(
            registry.version_file(model, version, name), media_type="application/octet-stream"
        )
    run_id, name = _run_path(tracking, path)
    _, file = tracking.artifact_file(run_id, name)
    return FileResponse(file, media_type="application/octet-stream")
