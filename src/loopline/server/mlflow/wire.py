"""loopline's entities in MLflow's JSON (the proto3 mapping MLflow's client parses)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi.responses import Response

from loopline.core.entities import Experiment, LoggedModel, Metric, Run
from loopline.core.registry import ModelVersion, RegisteredModel, VersionStatus

RUN_NAME_TAG = "mlflow.runName"
PARENT_RUN_TAG = "mlflow.parentRunId"
USER_TAG = "mlflow.user"
SOURCE_TAG = "mlflow.source"  # a model version's source, as the client gave it
MODEL_ID_TAG = "mlflow.model_id"  # the logged model a version was registered from
_VERSION_STATUS = {
    VersionStatus.PENDING: "PENDING_REGISTRATION",
    VersionStatus.READY: "READY",
    VersionStatus.FAILED: "FAILED_REGISTRATION",
}
_LOGGED_MODEL_STATUS = {
    "PENDING": "LOGGED_MODEL_PENDING",
    "READY": "LOGGED_MODEL_READY",
    "FAILED": "LOGGED_MODEL_UPLOAD_FAILED",
}


def answer(body: Mapping[str, Any] | None = None) -> Response:
    return Response(orjson.dumps(body or {}), media_type="application/json")


def number(value: float) -> float | str:
    """JSON has no NaN or infinities: proto3 JSON writes them as strings."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def key_values(items: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in items.items()]


def experiment(exp: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": str(exp.id),
        "name": exp.name,
        "artifact_location": f"mlflow-artifacts:/{exp.id}",
        "lifecycle_stage": "active",
        "creation_time": exp.created_at,
        "last_update_time": exp.created_at,
        "tags": key_values(
            {"loopline.project": exp.project}
            | ({"mlflow.note.content": exp.description} if exp.description else {})
        ),
    }


def run_artifact_uri(run: Run) -> str:
    return f"mlflow-artifacts:/{run.experiment_id}/{run.id}/artifacts"


def run_info(run: Run) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.name,
        "experiment_id": str(run.experiment_id),
        "user_id": run.created_by,
        "status": run.status.value,
        "start_time": run.start_time,
        "artifact_uri": run_artifact_uri(run),
        "lifecycle_stage": "deleted" if run.deleted else "active",
    }
    if run.end_time is not None:
        info["end_time"] = run.end_time
    return info


def run(found: Run, inputs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    tags = {RUN_NAME_TAG: found.name, USER_TAG: found.created_by, **found.tags}
    if found.parent_id is not None:
        tags[PARENT_RUN_TAG] = found.parent_id
    if found.source.git_commit:
        tags.setdefault("mlflow.source.git.commit", found.source.git_commit)
    # The latest value of each metric; its step and time are in the history (get-history).
    metrics = [
        {"key": k, "value": number(v), "timestamp": found.end_time or found.start_time, "step": 0}
        for k, v in found.metrics.items()
    ]
    return {
        "info": run_info(found),
        "data": {"metrics": metrics, "params": key_values(found.params), "tags": key_values(tags)},
        "inputs": {"dataset_inputs": inputs or []},
    }


def metric(m: Metric) -> dict[str, Any]:
    return {"key": m.key, "value": number(m.value), "timestamp": m.timestamp, "step": m.step}


def logged_model(model: LoggedModel) -> dict[str, Any]:
    return {
        "info": {
            "model_id": model.id,
            "experiment_id": str(model.experiment_id),
            "name": model.name,
            "artifact_uri": f"mlflow-artifacts:/{model.experiment_id}/{model.run_id}/artifacts/"
            f"{model.artifact_prefix}",
            "creation_timestamp_ms": model.created_at,
            "last_updated_timestamp_ms": model.updated_at,
            "model_type": model.model_type,
            "source_run_id": model.run_id,
            "status": _LOGGED_MODEL_STATUS[model.status],
            "tags": key_values(model.tags),
        },
        "data": {"params": key_values(model.params), "metrics": []},
    }


def version_download_uri(version: ModelVersion) -> str:
    return f"mlflow-artifacts:/registry/{version.model}/{version.version}"


def model_version(version: ModelVersion, name: str | None = None) -> dict[str, Any]:
    """`version` under `name`, the model's name as its user spells it (default: canonical)."""
    tags = dict(version.tags)
    source = tags.pop(SOURCE_TAG, None) or version_download_uri(version)
    found: dict[str, Any] = {
        "name": name or version.model,
        "version": str(version.version),
        "creation_timestamp": version.created_at,
        "last_updated_timestamp": version.created_at,
        "user_id": version.created_by,
        "current_stage": "None",
        "description": version.description,
        "source": source,
        "status": _VERSION_STATUS[version.status],
        "tags": key_values(tags),
        "aliases": list(version.aliases),
    }
    if version.run_id is not None:
        found["run_id"] = version.run_id
    if MODEL_ID_TAG in version.tags:
        found["model_id"] = version.tags[MODEL_ID_TAG]
    return found


def registered_model(model: RegisteredModel, latest: ModelVersion | None = None) -> dict[str, Any]:
    return {
        "name": model.display_name,
        "creation_timestamp": model.created_at,
        "last_updated_timestamp": model.created_at,
        "description": model.description,
        "latest_versions": [] if latest is None else [model_version(latest, model.display_name)],
        "tags": key_values(model.tags),
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(model.aliases.items())],
    }
