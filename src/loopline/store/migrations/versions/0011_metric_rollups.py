"""Metric histories summed up per 1,024 steps, so that a chart of a million values reads a
thousand rows. Existing histories are summed up here, once.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Floor division on both databases (integer division truncates towards zero on both).
_BUCKET = "CASE WHEN step >= 0 THEN step / 1024 ELSE (step - 1023) / 1024 END"


def upgrade() -> None:
    op.create_table(
        "metric_rollups",
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("bucket", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("min", sa.Float(), nullable=True),
        sa.Column("max", sa.Float(), nullable=True),
        sa.Column("first_step", sa.BigInteger(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("first_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("last_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("run_pk", "key", "bucket", name=op.f("pk_metric_rollups")),
    )
    op.execute(
        f"""
        INSERT INTO metric_rollups (run_pk, key, bucket, count, min, max, first_step, last_step,
                                    first_timestamp, last_timestamp, last_value)
        SELECT g.run_pk, g.key, g.bucket, g.n, g.low, g.high, g.first_step, g.last_step, g.first_ts,
               (SELECT max(m.timestamp) FROM metrics m
                 WHERE m.run_pk = g.run_pk AND m.key = g.key AND m.step = g.last_step),
               (SELECT m.value FROM metrics m
                 WHERE m.run_pk = g.run_pk AND m.key = g.key AND m.step = g.last_step
                 ORDER BY m.timestamp DESC LIMIT 1)
        FROM (SELECT run_pk, key, {_BUCKET} AS bucket, count(*) AS n, min(value) AS low,
                     max(value) AS high, min(step) AS first_step, max(step) AS last_step,
                     min(timestamp) AS first_ts
                FROM metrics GROUP BY run_pk, key, {_BUCKET}) g
        """
    )


def downgrade() -> None:
    op.drop_table("metric_rollups")
