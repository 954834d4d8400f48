"""A deployment declares once what happens to request fields its model does not take:
refused (422, as every deployment so far) or ignored, whatever its traffic policy. Monitor
runs are numbered per monitor (run 1 is a monitor's first), existing ones in the order
they ran.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.add_column(sa.Column("extra_fields", sa.String(16), nullable=False, server_default="refuse"))
    with op.batch_alter_table("monitors") as batch:
        batch.add_column(sa.Column("last_run", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("monitor_runs") as batch:
        batch.add_column(sa.Column("number", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE monitor_runs SET number = (SELECT count(*) FROM monitor_runs earlier "
        "WHERE earlier.monitor_id = monitor_runs.monitor_id AND earlier.id <= monitor_runs.id)"
    )
    op.execute(
        "UPDATE monitors SET last_run = (SELECT count(*) FROM monitor_runs WHERE monitor_id = monitors.id)"
    )
    with op.batch_alter_table("monitor_runs") as batch:
        batch.alter_column("number", existing_type=sa.Integer(), nullable=False)
    op.create_index(
        op.f("ix_monitor_runs_monitor_id_number"), "monitor_runs", ["monitor_id", "number"], unique=True
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_monitor_runs_monitor_id_number"), table_name="monitor_runs")
    with op.batch_alter_table("monitor_runs") as batch:
        batch.drop_column("number")
    with op.batch_alter_table("monitors") as batch:
        batch.drop_column("last_run")
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("extra_fields")
