"""Registered models belong to a project, whose roles govern them. Models that exist
already join the `default` project, where every model was until now.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_projects = sa.table(
    "projects", sa.column("id"), sa.column("name"), sa.column("description"), sa.column("created_at")
)


def _default_project(conn: sa.Connection) -> int:
    found = conn.execute(sa.select(_projects.c.id).where(_projects.c.name == "default")).scalar()
    if found is None:
        values = {"name": "default", "description": "", "created_at": int(time.time() * 1000)}
        conn.execute(_projects.insert().values(**values))
        found = conn.execute(sa.select(_projects.c.id).where(_projects.c.name == "default")).scalar_one()
    return int(found)


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table("registered_models") as batch:
        batch.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
    if conn.execute(sa.text("SELECT count(*) FROM registered_models")).scalar():
        conn.execute(sa.text("UPDATE registered_models SET project_id = :p"), {"p": _default_project(conn)})
    with op.batch_alter_table("registered_models") as batch:
        batch.alter_column("project_id", existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key(
            op.f("fk_registered_models_project_id_projects"), "projects", ["project_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("registered_models") as batch:
        batch.drop_constraint(op.f("fk_registered_models_project_id_projects"), type_="foreignkey")
        batch.drop_column("project_id")
