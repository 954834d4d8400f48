"""Runs can send heartbeats, so that a janitor can end the ones whose process died; data
validations are records the validation service writes, which the promotion gate reads;
audit entries name the key that sealed them (NULL: none, as every entry so far); user
names are unique whatever their case (the upgrade stops, naming them, if two differ only
in case: an administrator renames one first).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.BigInteger(), nullable=True))
    op.create_index(op.f("ix_runs_status_heartbeat_at"), "runs", ["status", "heartbeat_at"])
    op.create_table(
        "data_validations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("contract_digest", sa.String(64), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(250), nullable=False),
        sa.ForeignKeyConstraint(["run_pk"], ["runs.pk"], name=op.f("fk_data_validations_run_pk_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_validations")),
    )
    op.create_index(op.f("ix_data_validations_run_pk"), "data_validations", ["run_pk"])
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("key_id", sa.String(32), nullable=True))
    twins = (
        op.get_bind()
        .execute(sa.text("SELECT lower(name) FROM users GROUP BY lower(name) HAVING count(*) > 1"))
        .scalars()
        .all()
    )
    if twins:
        raise RuntimeError(
            f"user names that differ only in case: {', '.join(twins)}; rename all but one of each "
            "(UPDATE users SET name = ...) and open the store again"
        )
    op.create_index("uq_users_lower_name", "users", [sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_lower_name", table_name="users")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("key_id")
    op.drop_index(op.f("ix_data_validations_run_pk"), table_name="data_validations")
    op.drop_table("data_validations")
    op.drop_index(op.f("ix_runs_status_heartbeat_at"), table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("heartbeat_at")
