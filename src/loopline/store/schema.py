"""Tables of the metadata store (SQLAlchemy Core). Migrations in `migrations/` create them.

Runs have a public 32-hex `id` and an integer `pk` that every high-volume table references:
metric rows stay small and their indexes compact. Timestamps are integer milliseconds.
A metric value of NULL means NaN: SQLite cannot store NaN, so both backends agree on NULL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

store_info = Table(
    "store_info",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("store_id", String(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(250), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
    UniqueConstraint("project_id", "name"),
)

runs = Table(
    "runs",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("experiment_id", Integer, ForeignKey("experiments.id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger),
    Column("created_by", String(250), nullable=False),
    Column("parent_pk", Integer, ForeignKey("runs.pk")),
    Column("entry_point", Text),
    Column("git_commit", String(64)),
    Column("git_dirty", Boolean),
    Column("environment", Text, nullable=False, default="{}"),
    Column("error", Text),
    Column("deleted_at", BigInteger),
    # Set by a process that sends heartbeats (the SDK's); a janitor ends the run if they stop.
    Column("heartbeat_at", BigInteger),
    Index(None, "experiment_id", "start_time"),
    Index(None, "parent_pk"),
    Index(None, "status", "heartbeat_at"),
)

# A validation of a run's data against a contract, written only by the validation service:
# the promotion gate's evidence (a run tag could be overwritten by any editor).
data_validations = Table(
    "data_validations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_pk", Integer, ForeignKey("runs.pk"), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("source", Text, nullable=False),
    Column("contract_digest", String(64), nullable=False),
    Column("report", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
    Index(None, "run_pk"),
)

params = Table(
    "params",
    metadata,
    Column("run_pk", Integer, ForeignKey("runs.pk"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("run_pk", Integer, ForeignKey("runs.pk"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

# Full history: one row per logged value. No primary key: rows are only ever appended,
# read by (run, key) and deduplicated per batch through `metric_batches`.
metrics = Table(
    "metrics",
    metadata,
    Column("run_pk", Integer, nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Float),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index(None, "run_pk", "key", "step"),
)

# The value with the highest (step, timestamp) per run and key: what search filters and sorts on.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_pk", Integer, ForeignKey("runs.pk"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index(None, "key", "value"),
)

# Each metric's history summed up per ROLLUP_STEPS steps (bucket = step // ROLLUP_STEPS): what
# a chart of a long history reads instead of the history. Written with the history, in the
# same transaction; `last_*` is the value with the highest (step, timestamp) of the bucket.
ROLLUP_STEPS = 1024
metric_rollups = Table(
    "metric_rollups",
    metadata,
    Column("run_pk", Integer, primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Column("count", BigInteger, nullable=False),
    Column("min", Float),  # NULL when every value of the bucket is NaN
    Column("max", Float),
    Column("first_step", BigInteger, nullable=False),
    Column("last_step", BigInteger, nullable=False),
    Column("first_timestamp", BigInteger, nullable=False),
    Column("last_timestamp", BigInteger, nullable=False),
    Column("last_value", Float),
)

# Idempotency keys of metric batches: a retried batch is recognised and not stored twice.
metric_batches = Table(
    "metric_batches",
    metadata,
    Column("batch_id", String(64), primary_key=True),
    Column("run_pk", Integer, nullable=False),
    Column("received_at", BigInteger, nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_pk", Integer, ForeignKey("runs.pk"), primary_key=True),
    Column("name", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Models logged in MLflow's format before registration; their files are run artifacts.
logged_models = Table(
    "logged_models",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_pk", Integer, ForeignKey("runs.pk"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("model_type", String(250), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
    Column("tags", Text, nullable=False),
    Column("params", Text, nullable=False),
    Index(None, "run_pk"),
)

# --- feature store --------------------------------------------------------------------

feature_entities = Table(
    "feature_entities",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("join_keys", Text, nullable=False),  # JSON list
    Column("description", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
)

# Each version of a view, its definition as JSON: a new version when the definition changes.
feature_views = Table(
    "feature_views",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("definition", Text, nullable=False),
    Column("join_keys", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
    UniqueConstraint("name", "version"),
)

# --- model registry -------------------------------------------------------------------

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),  # canonical: lowercase NFKC
    Column("display_name", String(128), nullable=False),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("last_version", Integer, nullable=False, default=0),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
    Column("deleted_at", BigInteger),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # PENDING -> READY, or FAILED
    Column("run_pk", Integer, ForeignKey("runs.pk")),
    Column("flavor", String(32), nullable=False),
    Column("task", String(32)),
    Column("description", Text, nullable=False, default=""),
    Column("model_json", Text, nullable=False),
    Column("digest", String(64)),  # sha256 of the model description: the version's content hash
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
    Column("ready_at", BigInteger),
    Column("deleted_at", BigInteger),
    UniqueConstraint("model_id", "version"),
    Index(None, "run_pk"),
    Index(None, "digest"),
)

model_version_files = Table(
    "model_version_files",
    metadata,
    Column("version_id", Integer, ForeignKey("model_versions.id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("model_id", Integer, ForeignKey("registered_models.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

model_version_tags = Table(
    "model_version_tags",
    metadata,
    Column("version_id", Integer, ForeignKey("model_versions.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", Integer, ForeignKey("registered_models.id"), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
)

# Every move of an alias: who, when, from which version to which, why, and the evidence.
alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", Integer, ForeignKey("registered_models.id"), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(250), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("forced", Boolean, nullable=False, default=False),
    Column("report", Text),
    Index(None, "model_id", "alias", "at"),
)

model_version_metrics = Table(
    "model_version_metrics",
    metadata,
    Column("version_id", Integer, ForeignKey("model_versions.id"), primary_key=True),
    Column("source", String(64), primary_key=True),  # "run" or "evaluation:<id>"
    Column("key", String(250), primary_key=True),
    Column("value", Float),
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", Integer, ForeignKey("model_versions.id"), nullable=False),
    Column("dataset_digest", String(64), nullable=False),
    Column("dataset_name", String(250), nullable=False),
    Column("task", String(32), nullable=False),
    Column("result", Text, nullable=False),  # metrics, slices, latency, artifacts as JSON
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
    Index(None, "version_id"),
)

# --- lineage --------------------------------------------------------------------------

# One graph over everything: nodes are (kind, key) with content hashes as keys where the
# thing has content (datasets, model versions), ids otherwise (runs, deployments).
lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("src_kind", String(32), primary_key=True),
    Column("src_key", String(128), primary_key=True),
    Column("relation", String(32), primary_key=True),
    Column("dst_kind", String(32), primary_key=True),
    Column("dst_key", String(128), primary_key=True),
    Column("label", String(250), nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Index(None, "dst_kind", "dst_key"),
)

# --- deployments ----------------------------------------------------------------------

deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("policy", Text, nullable=False),  # the current traffic policy, JSON
    Column("revision", Integer, nullable=False),  # bumped on every policy change
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger),
    Column("extra_fields", String(16), nullable=False, server_default="refuse"),  # refuse | ignore
)

# Every policy a deployment has had: the audit trail, and what rollback goes back to.
deployment_revisions = Table(
    "deployment_revisions",
    metadata,
    Column("deployment_id", Integer, ForeignKey("deployments.id"), primary_key=True),
    Column("revision", Integer, primary_key=True, autoincrement=False),
    Column("policy", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(250), nullable=False),
    Column("reason", Text, nullable=False, default=""),
)

# --- datasets -------------------------------------------------------------------------

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(250), nullable=False, unique=True),
    Column("last_version", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
)

# A version is its content: the same rows registered twice are one version.
dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("dataset_id", Integer, ForeignKey("datasets.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("digest", String(64), nullable=False, index=True),
    Column("rows", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("columns", Text, nullable=False),  # JSON: name, type and profile summary per column
    Column("source", Text, nullable=False),
    Column("data_blob", String(64), nullable=False),
    Column("reference_blob", String(64), nullable=False),
    Column("description", Text, nullable=False),
    Column("tags", Text, nullable=False),  # JSON object
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
    # Set when an erasure replaced this version: its data is gone, `erased_into` holds the rest.
    Column("erased_at", BigInteger),
    Column("erased_into", Integer),
    UniqueConstraint("dataset_id", "version"),
    UniqueConstraint("dataset_id", "digest"),
)

# --- monitoring ------------------------------------------------------------------------

monitors = Table(
    "monitors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("deployment", String(128), nullable=False),
    Column("spec", Text, nullable=False),  # JSON: window, drift tests, alert rules, notifiers
    Column("reference_blob", String(64), nullable=False),  # profiles and calibration, JSON
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("last_run", Integer, nullable=False, server_default="0"),  # its runs are numbered 1, 2, ...
)

# One evaluation of a monitor over one window of the prediction log.
monitor_runs = Table(
    "monitor_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("monitor_id", Integer, ForeignKey("monitors.id"), nullable=False),
    Column("number", Integer, nullable=False),  # the monitor's own count: run 1 is its first
    Column("at", BigInteger, nullable=False),
    Column("window_start", BigInteger),
    Column("window_end", BigInteger),
    Column("rows", BigInteger, nullable=False),
    Column("values", Text, nullable=False),  # JSON: every monitored value, flat
    Column("details", Text, nullable=False),  # JSON: per-column drift, histograms, warnings
    Index(None, "monitor_id", "at"),
    Index(None, "monitor_id", "number", unique=True),
)

# An alert stays one row while its rule keeps firing: `open_key` is set (and unique) while
# it is open, so concurrent monitor runs cannot open it twice; resolving clears it.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("monitor_id", Integer, ForeignKey("monitors.id"), nullable=False),
    Column("rule", String(128), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # firing | resolved
    Column("open_key", String(250), unique=True),
    Column("first_at", BigInteger, nullable=False),
    Column("last_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger),
    Column("occurrences", Integer, nullable=False),
    Column("value", Float),
    Column("message", Text, nullable=False),
    Column("evidence", Text, nullable=False),  # JSON: the values of the windows that fired it
    Column("notifications", Text, nullable=False),  # JSON: each notifier's outcome
    Index(None, "monitor_id", "status"),
)

# --- pipelines -------------------------------------------------------------------------

# A pipeline run is also a tracked run (its id is the run's id); this holds what only a
# pipeline has: its executor, its parameters, what it resumed.
pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(250), nullable=False),
    Column("status", String(16), nullable=False),
    Column("executor", String(32), nullable=False),
    Column("params", Text, nullable=False),  # JSON
    Column("started_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger),
    Column("resumed_from", String(32)),
    Index(None, "pipeline", "started_at"),
)

# One row per step of a pipeline run. Finished rows are the cache: the newest FINISHED row
# with a step's cache key holds outputs any later run may reuse.
step_runs = Table(
    "step_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pipeline_run_id", String(32), ForeignKey("pipeline_runs.id"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("step", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("cache_key", String(64), nullable=False),
    Column("run_id", String(32)),
    Column("output", Text),  # JSON: an OutputRef
    Column("attempts", Integer, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger),
    Column("error", Text),
    UniqueConstraint("pipeline_run_id", "name"),
    Index(None, "cache_key", "status"),
)

# --- automation ------------------------------------------------------------------------

schedules = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("cron", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("target", String(500), nullable=False),
    Column("params", Text, nullable=False),  # JSON
    Column("enabled", Boolean, nullable=False),
    Column("next_at", BigInteger, nullable=False),
    Column("last_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
)

triggers = Table(
    "triggers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("monitor", String(128), nullable=False),
    Column("rule", String(128)),
    Column("kind", String(16), nullable=False),
    Column("target", String(500), nullable=False),
    Column("params", Text, nullable=False),  # JSON
    Column("cooldown_s", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("last_alert_id", Integer, nullable=False),
    Column("last_fired_at", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(250), nullable=False),
)

# Work for workers. `dedupe_key` makes enqueueing idempotent across workers (a schedule's
# due time, an alert); a running job belongs to the worker holding an unexpired lease.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("target", String(500), nullable=False),
    Column("params", Text, nullable=False),  # JSON
    Column("reason", Text, nullable=False),
    Column("dedupe_key", String(300), unique=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger),
    Column("ended_at", BigInteger),
    Column("lease_owner", String(250)),
    Column("lease_expires_at", BigInteger),
    Column("result", Text, nullable=False),  # JSON
    Column("error", Text),
    Index(None, "status", "id"),
)

# One retraining loop per deployment; `state` moves only by conditional updates, so one
# worker at a time takes each step. Its events are the timeline `loopline loop status` shows.
loops = Table(
    "loops",
    metadata,
    Column("deployment", String(128), primary_key=True),
    Column("policy", Text, nullable=False),  # JSON
    Column("state", String(16), nullable=False),
    Column("champion", Integer),
    Column("challenger", Integer),
    Column("stage_started_at", BigInteger),
    Column("cooldown_until", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
)

loop_events = Table(
    "loop_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("deployment", String(128), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("actor", String(250), nullable=False),
    Column("evidence", Text, nullable=False),  # JSON
    Index(None, "deployment", "id"),
)

# --- governance ------------------------------------------------------------------------

# Append-only; each row's hash covers the previous row's hash and its own content.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(250), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(500), nullable=False),
    Column("before", Text, nullable=False),  # JSON
    Column("after", Text, nullable=False),  # JSON
    Column("reason", Text, nullable=False),
    Column("details", Text, nullable=False),  # JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("key_id", String(32)),  # the key whose HMAC the hash is; NULL: a plain sha256
    Index(None, "target", "id"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("is_admin", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
# `alice` and `ALICE` are one name: two concurrent creations cannot both pass the service's check.
Index("uq_users_lower_name", func.lower(users.c.name), unique=True)

# Tokens are random and long, so a plain sha256 of them is safe to store and fast to look up.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger),
    Column("revoked_at", BigInteger),
)

# Users provisioned by an OpenID Connect provider on first sign-in: who they are there.
user_identities = Table(
    "user_identities",
    metadata,
    Column("issuer", String(500), primary_key=True),
    Column("subject", String(255), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False, index=True),
    Column("email", String(320)),
    Column("groups", Text, nullable=False),  # JSON list, as of the last sign-in
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
)

project_members = Table(
    "project_members",
    metadata,
    Column("project", String(250), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("role", String(16), nullable=False),
)

# What `loopline gc` removes (one row, id 1; absent: keep deleted runs and logs, blobs 24 h).
# Days and hours are ages: deleted runs, prediction-log partitions, blobs nothing refers to.
retention_policy = Table(
    "retention_policy",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("deleted_runs_days", Float),
    Column("prediction_log_days", Float),
    Column("unreferenced_blob_hours", Float, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(250), nullable=False),
)

# Aliases whose moves need a second person's approval (four eyes), and those requests.
protected_aliases = Table(
    "protected_aliases",
    metadata,
    Column("model", String(250), primary_key=True),
    Column("alias", String(128), primary_key=True),
)

alias_requests = Table(
    "alias_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model", String(250), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("requested_by", String(250), nullable=False),
    Column("requested_at", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("decided_by", String(250)),
    Column("decided_at", BigInteger),
    Column("decision", Text, nullable=False),
    Index(None, "model", "status"),
)
