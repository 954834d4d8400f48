"""Request bodies and the shapes every response shares (pages, errors)."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from loopline.core.access import Role
from loopline.core.automation import JobKind
from loopline.core.datasets import DatasetVersion
from loopline.core.entities import RunStatus
from loopline.core.monitoring import Alert, MonitorRun
from loopline.core.registry import ExtraFields

T = TypeVar("T")
REF_TEMPLATE = "#/components/schemas/{model}"
MAX_PAGE = 10_000
Int64 = Annotated[int, Field(ge=0, le=2**63 - 1)]
"""Integers as the database stores them: larger ones are refused as bad input, not a crash."""


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass `next_page_token` back as `page_token` for the next one."""

    items: list[T]
    next_page_token: str | None = None


class ErrorDetail(BaseModel):
    code: str = Field(description="stable: not_found, permission_denied, invalid_input...")
    message: str
    details: dict[str, Any] = {}


class ErrorBody(BaseModel):
    error: ErrorDetail


# tracking ------------------------------------------------------------------------------


class NewExperiment(Body):
    name: str
    project: str = "default"
    description: str = ""


class SourceBody(Body):
    entry_point: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None


class NewRun(Body):
    experiment: Int64 | str = "Default"
    project: str = "default"
    run_name: str | None = None
    tags: dict[str, str] = {}
    parent_id: str | None = None
    source: SourceBody | None = None
    environment: dict[str, Any] = {}


class RunImport(Body):
    run: dict[str, Any] = Field(description="the run as GET /runs/{id} returns it; its id is kept")
    experiment: Int64 | str
    project: str = "default"


class RunEnd(Body):
    status: RunStatus = RunStatus.FINISHED
    error: str | None = None


class Heartbeat(Body):
    run_ids: list[str] = Field(max_length=1000)


class MetricBody(BaseModel):
    key: str
    value: float | str = Field(description="a number, or 'NaN', 'Infinity', '-Infinity'")
    step: Int64 = 0
    timestamp: Int64


class LogBatch(Body):
    metrics: list[MetricBody] = Field(default=[], max_length=100_000)
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    batch_id: str | None = Field(default=None, max_length=64)


class BatchStored(BaseModel):
    stored: bool


class RunSearch(Body):
    experiments: list[Int64 | str] | None = None
    project: str = "default"
    filter: str | None = Field(default=None, max_length=10_000)
    order_by: list[str] = []
    max_results: int = Field(default=100, ge=1, le=50_000)
    page_token: str | None = None
    include_deleted: bool = False
    columns: list[str] | None = Field(default=None, max_length=2000)  # only these params, metrics, tags


class DatasetInput(Body):
    name: str
    digest: str


class ModelFilesLink(Body):
    model: str
    version: Int64


# registry ------------------------------------------------------------------------------


class NewModel(Body):
    name: str
    description: str = ""
    tags: dict[str, str] = {}
    project: str = Field("default", description="whose roles govern the model")


class ModelUpdate(Body):
    description: str | None = None
    tags: dict[str, str] = {}


class Upload(BaseModel):
    upload_id: str


class NewVersion(Body):
    upload_id: str
    run_id: str | None = None
    description: str = ""
    tags: dict[str, str] = {}
    project: str | None = Field(None, description="for a new model: default, the run's project")


class AliasMove(Body):
    """A move by hand: a forced flag or a gate report come only from promotion, run here."""

    version: Int64
    reason: str = ""


class Decision(Body):
    reason: str = ""


class Promotion(Body):
    alias: str = "champion"
    policy: dict[str, Any] | None = None
    force_reason: str | None = None
    upload_id: str | None = Field(None, description="an upload holding evaluation data as data.parquet")
    target: str | None = None
    task: str | None = None
    baseline: str | None = None


class NewEvaluation(Body):
    uri: str
    upload_id: str = Field(description="an upload holding the data as data.parquet")
    target: str
    task: str | None = None
    slices: list[str] = Field(default_factory=list)
    dataset_name: str = "evaluation"


class NewValidation(Body):
    contract: dict[str, Any] = Field(description="the data contract, as its YAML document would read")
    upload_id: str | None = Field(None, description="an upload holding the data as data.parquet")
    dataset: str | None = Field(None, description="or a stored version: datasets:/name/3, name@3")
    run_id: str | None = None
    samples: int = Field(5, ge=0, le=100)
    source: str | None = Field(None, max_length=1000)


class TrustedCode(Body):
    trusted: bool = Field(description="true trusts the code the version's files carry; false withdraws")


class TrustedTypes(Body):
    types: list[str] = Field(max_length=100, description="dotted names, module.Class; [] withdraws")


class Reason(Body):
    reason: str = ""


# operations ----------------------------------------------------------------------------


class NewDeployment(Body):
    name: str
    policy: dict[str, Any]
    reason: str = ""
    extra_fields: ExtraFields = "refuse"


class ExtraFieldsChange(Body):
    extra_fields: ExtraFields
    reason: str = ""


class TrafficChange(Body):
    policy: dict[str, Any]
    reason: str = ""
    expected_revision: Int64 | None = None


class NewDatasetVersion(Body):
    upload_id: str = Field(description="an upload holding the rows as data.parquet")
    description: str = ""
    tags: dict[str, str] = {}
    contract: dict[str, Any] | None = Field(
        None, description="a data contract the rows must pass; the columns it masks or hashes are stored so"
    )


class RegisteredDataset(BaseModel):
    version: DatasetVersion
    created: bool = Field(description="false: a version held these rows already")


class NewJob(Body):
    """A job to queue: its kind, its target (MODULE:PIPELINE, a monitor, a deployment, a
    feature view NAME or NAME@N) and its params (a pipeline's; end, on, ray_address to
    materialize)."""

    kind: str = Field(description=" or ".join(k.value for k in JobKind))
    target: str
    params: dict[str, Any] = {}


class NewSchedule(NewJob):
    name: str
    cron: str = Field(description="five fields, UTC")


class NewTrigger(NewJob):
    name: str
    monitor: str
    rule: str | None = Field(None, description="fire on this rule's alerts only; any rule when null")
    cooldown_s: Int64 = 3600


class NewMonitor(Body):
    name: str
    deployment: str
    reference: str = Field(description="the reference dataset: NAME or NAME@VERSION")
    target: str | None = Field(None, description="the dataset's label column")
    spec: dict[str, Any] | None = Field(None, description="the monitor spec (its YAML document as JSON)")
    replace: bool = False


class MonitorRunOutcome(BaseModel):
    run: MonitorRun
    opened: list[Alert] = Field(description="alerts this run opened")
    resolved: list[Alert]
    still_firing: list[Alert]


# governance ----------------------------------------------------------------------------


class NewUser(Body):
    name: str
    admin: bool = False


class NewToken(Body):
    name: str = "default"
    expires_days: float | None = None


class CreatedToken(BaseModel):
    id: int
    user: str
    name: str
    prefix: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None = None
    token: str = Field(description="the secret: shown this once, stored only as a hash")


class Membership(Body):
    role: Role


class Member(BaseModel):
    user: str
    role: Role


class Whoami(BaseModel):
    name: str
    admin: bool
    roles: dict[str, Role]


class AuditCheck(BaseModel):
    entries: int
    head: str
    intact: bool
    problems: list[str]
    unsealed: int = Field(0, description="entries no key sealed (written before one was configured)")


# features ------------------------------------------------------------------------------

FeatureNames = Annotated[
    list[Annotated[str, Field(max_length=300)]],
    Field(min_length=1, max_length=10_000, description="view:feature, view@3:feature or view:*"),
]


class FeatureDefinitions(Body):
    """Entities and feature views, as a definitions file lists them (`to_dict` of each)."""

    entities: list[dict[str, Any]] = []
    feature_views: list[dict[str, Any]] = []


class HistoricalRequest(Body):
    upload_id: str = Field(description="an upload holding the entity rows as data.parquet")
    features: FeatureNames
    timestamp_column: str = Field("event_timestamp", max_length=200)
    full_names: bool = Field(False, description="name the feature columns view__feature")


class HistoricalResult(BaseModel):
    result_id: str = Field(description="GET /features/historical/{result_id} sends it, once")
    sha256: str
    rows: int


class NewTrainingSet(HistoricalRequest):
    name: str = Field(description="the dataset the training set becomes the next version of")
    description: str = ""


class MaterializeRequest(Body):
    end: AwareDatetime | None = Field(None, description="values known up to this time; now if null")


class OnlineRequest(Body):
    entities: dict[str, list[Any]] = Field(description="a column of values per join key, equal lengths")
    features: FeatureNames
    full_names: bool = False
