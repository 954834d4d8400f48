"""A deployment declares once what happens to request fields its model does not take:
refused (422, as every deployment so far) or ignored, whatever its traffic policy.

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


def downgrade() -> None:
    with op.batch_alter_table("deployments") as batch:
        batch.drop_column("extra_fields")
