"""Initial schema: projects, experiments, runs, params, tags, metrics, artifact index.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_batches",
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_metric_batches")),
    )
    op.create_table(
        "metrics",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
    )
    op.create_index(op.f("ix_metrics_run_pk_key_step"), "metrics", ["run_pk", "key", "step"], unique=False)
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "store_info",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("store_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_info")),
    )
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(length=250), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_experiments_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_experiments_project_id_name")),
    )
    op.create_table(
        "runs",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=False),
        sa.Column("end_time", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.String(length=250), nullable=False),
        sa.Column("parent_pk", sa.Integer(), nullable=True),
        sa.Column("entry_point", sa.Text(), nullable=True),
        sa.Column("git_commit", sa.String(length=64), nullable=True),
        sa.Column("git_dirty", sa.Boolean(), nullable=True),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.id"], name=op.f("fk_runs_experiment_id_experiments")
        ),
        sa.ForeignKeyConstraint(["parent_pk"], ["runs.pk"], name=op.f("fk_runs_parent_pk_runs")),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_runs")),
        sa.UniqueConstraint("id", name=op.f("uq_runs_id")),
    )
    op.create_index(
        op.f("ix_runs_experiment_id_start_time"),
        "runs",
        ["experiment_id", "start_time"],
        unique=False,
    )
    op.create_index(op.f("ix_runs_parent_pk"), "runs", ["parent_pk"], unique=False)
    op.create_table(
        "artifacts",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_pk"], ["runs.pk"], name=op.f("fk_artifacts_run_pk_runs")),
        sa.PrimaryKeyConstraint("run_pk", "name", name=op.f("pk_artifacts")),
    )
    op.create_table(
        "latest_metrics",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_pk"], ["runs.pk"], name=op.f("fk_latest_metrics_run_pk_runs")),
        sa.PrimaryKeyConstraint("run_pk", "key", name=op.f("pk_latest_metrics")),
    )
    op.create_index(op.f("ix_latest_metrics_key_value"), "latest_metrics", ["key", "value"], unique=False)
    op.create_table(
        "params",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_pk"], ["runs.pk"], name=op.f("fk_params_run_pk_runs")),
        sa.PrimaryKeyConstraint("run_pk", "key", name=op.f("pk_params")),
    )
    op.create_table(
        "tags",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_pk"], ["runs.pk"], name=op.f("fk_tags_run_pk_runs")),
        sa.PrimaryKeyConstraint("run_pk", "key", name=op.f("pk_tags")),
    )
    # One row naming this store; created exactly once, whoever migrates first.
    store_info = sa.table("store_info", sa.column("id"), sa.column("store_id"), sa.column("created_at"))
    op.bulk_insert(
        store_info,
        [{"id": 1, "store_id": uuid.uuid4().hex, "created_at": time.time_ns() // 1_000_000}],
    )


def downgrade() -> None:
    op.drop_table("tags")
    op.drop_table("params")
    op.drop_index(op.f("ix_latest_metrics_key_value"), table_name="latest_metrics")
    op.drop_table("latest_metrics")
    op.drop_table("artifacts")
    op.drop_index(op.f("ix_runs_parent_pk"), table_name="runs")
    op.drop_index(op.f("ix_runs_experiment_id_start_time"), table_name="runs")
    op.drop_table("runs")
    op.drop_table("experiments")
    op.drop_table("store_info")
    op.drop_table("projects")
    op.drop_index(op.f("ix_metrics_run_pk_key_step"), table_name="metrics")
    op.drop_table("metrics")
    op.drop_table("metric_batches")
