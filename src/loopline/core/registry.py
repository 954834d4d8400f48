"""Entities of the model registry and the lineage graph."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from loopline.core.errors import Conflict


class VersionStatus(enum.StrEnum):
    PENDING = "PENDING"  # files being stored; never loadable
    READY = "READY"  # every file stored and verified
    FAILED = "FAILED"  # storing the files failed; kept for the record


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A model of the registry: its versions' home, with aliases that point at versions."""

    name: str  # canonical: what URIs and lookups use
    display_name: str
    description: str
    created_at: int
    created_by: str
    latest_version: int
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)  # alias -> version
    project: str = "default"  # whose roles govern the model


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One registered version of a model: flavor, signature, files and their hashes, lineage
    and status (PENDING until its files are stored, then READY)."""

    model: str
    version: int
    status: VersionStatus
    flavor: str
    task: str | None
    description: str
    run_id: str | None
    digest: str | None  # sha256 of the model description, which lists every file's sha256
    size: int
    created_at: int
    created_by: str
    model_json: dict[str, Any]
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (sha256, size)
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)  # the run's, then evaluations'
    deleted: bool = False

    @property
    def uri(self) -> str:
        """`models:/NAME/VERSION`, the URI that names this version everywhere."""
        return f"models:/{self.model}/{self.version}"


@dataclass(frozen=True, slots=True)
class AliasEvent:
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    at: int
    reason: str
    forced: bool
    report: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class LineageEdge:
    src_kind: str
    src_key: str
    relation: str
    dst_kind: str
    dst_key: str
    label: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Deployment:
    """A named endpoint and the traffic policy that routes its requests to model versions."""

    name: str
    policy: dict[str, Any]
    revision: int
    created_at: int
    created_by: str
    updated_at: int
    extra_fields: str = "refuse"  # fields its model does not take: "refuse" (422) or "ignore"


ExtraFields = Literal["refuse", "ignore"]  # what a deployment does with fields its model does not take
EXTRA_FIELDS: tuple[str, ...] = get_args(ExtraFields)


@dataclass(frozen=True, slots=True)
class DeploymentRevision:
    name: str
    revision: int
    policy: dict[str, Any]
    at: int
    actor: str
    reason: str


@dataclass(frozen=True)
class Evaluation:
    id: int
    model: str
    version: int
    dataset_name: str
    dataset_digest: str
    task: str
    metrics: dict[str, float]
    slices: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # plot name -> blob sha256
    created_at: int = 0


def loadable(version: ModelVersion) -> ModelVersion:
    """`version`, if its files can be read: READY and not deleted."""
    if version.deleted:
        raise Conflict(f"{version.uri} was deleted")
    if version.status is not VersionStatus.READY:
        raise Conflict(
            f"{version.uri} is {version.status.value}: its files were never completely stored, "
            "so it cannot be loaded; register the model again"
        )
    return version


TRUSTED_TYPES_TAG = "loopline.trusted_types"  # set by a maintainer (`models trust`), never by hand


TRUSTED_CODE_TAG = "loopline.trusted_code"  # "true": a maintainer trusts the code its files run


def version_trusts_code(version: ModelVersion) -> bool:
    """Whether a maintainer trusted this version to run the code its files carry (a pickle,
    a model in MLflow's format), for every loader."""
    return version.tags.get(TRUSTED_CODE_TAG) == "true"


def version_trusted_types(version: ModelVersion) -> tuple[str, ...]:
    """The types a maintainer vouched for when loading this version (comma-separated tag)."""
    return tuple(t for t in version.tags.get(TRUSTED_TYPES_TAG, "").split(",") if t)
