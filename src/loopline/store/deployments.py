"""Deployments in SQL: the current traffic policy and every revision before it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from loopline.core.errors import AlreadyExists, Conflict, NotFound
from loopline.core.registry import Deployment, DeploymentRevision
from loopline.store.database import Database
from loopline.store.schema import deployment_revisions, deployments


def _deployment(row: Any) -> Deployment:
    return Deployment(
        row.name, json.loads(row.policy), row.revision, row.created_at, row.created_by, row.updated_at,
        row.extra_fields,
    )  # fmt: skip


class SqlDeploymentStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _row(self, conn: Connection, name: str) -> Any:
        row = conn.execute(
            select(deployments).where(deployments.c.name == name, deployments.c.deleted_at.is_(None))
        ).one_or_none()
        if row is None:
            raise NotFound(f"deployment {name!r} does not exist")
        return row

    def create(
        self, name: str, policy: Mapping[str, Any], actor: str, at: int, reason: str, extra_fields: str
    ) -> Deployment:
        def work(conn: Connection) -> None:
            text = json.dumps(policy, sort_keys=True)
            deployment_id = conn.execute(
                deployments.insert()
                .values(
                    name=name,
                    policy=text,
                    revision=1,
                    created_at=at,
                    created_by=actor,
                    updated_at=at,
                    extra_fields=extra_fields,
                )
                .returning(deployments.c.id)
            ).scalar_one()
            conn.execute(
                deployment_revisions.insert().values(
                    deployment_id=deployment_id, revision=1, policy=text, at=at, actor=actor, reason=reason
                )
            )

        try:
            self._db.write(work)
        except IntegrityError:
            raise AlreadyExists(f"deployment {name!r} already exists") from None
        return self.get(name)

    def get(self, name: str) -> Deployment:
        return self._db.read(lambda conn: _deployment(self._row(conn, name)))

    def list_all(self) -> list[Deployment]:
        stmt = select(deployments).where(deployments.c.deleted_at.is_(None)).order_by(deployments.c.name)
        return [_deployment(row) for row in self._db.read(lambda conn: conn.execute(stmt).all())]

    def set_policy(
        self,
        name: str,
        policy: Mapping[str, Any],
        actor: str,
        at: int,
        reason: str,
        expected_revision: int | None,
    ) -> Deployment:
        """Record a new policy as the next revision; with `expected_revision`, only if nobody
        changed the deployment since that revision was read."""

        def work(conn: Connection) -> None:
            row = self._row(conn, name)
            if expected_revision is not None and row.revision != expected_revision:
                raise Conflict(
                    f"deployment {name!r} changed meanwhile "
                    f"(revision {row.revision}, not {expected_revision})"
                )
            text = json.dumps(policy, sort_keys=True)
            revision = row.revision + 1
            changed = conn.execute(
                update(deployments)
                .where(deployments.c.id == row.id, deployments.c.revision == row.revision)
                .values(policy=text, revision=revision, updated_at=at)
                .returning(deployments.c.id)
            ).first()
            if changed is None:
                raise Conflict(f"deployment {name!r} changed meanwhile; read it again and retry")
            conn.execute(
                deployment_revisions.insert().values(
                    deployment_id=row.id, revision=revision, policy=text, at=at, actor=actor, reason=reason
                )
            )

        self._db.write(work)
        return self.get(name)

    def set_extra_fields(self, name: str, extra_fields: str, at: int) -> Deployment:
        def work(conn: Connection) -> None:
            row = self._row(conn, name)
            conn.execute(
                update(deployments)
                .where(deployments.c.id == row.id)
                .values(extra_fields=extra_fields, updated_at=at)
            )

        self._db.write(work)
        return self.get(name)

    def revisions(self, name: str) -> list[DeploymentRevision]:
        def work(conn: Connection) -> list[DeploymentRevision]:
            row = self._row(conn, name)
            stmt = (
                select(deployment_revisions)
                .where(deployment_revisions.c.deployment_id == row.id)
                .order_by(deployment_revisions.c.revision)
            )
            return [
                DeploymentRevision(name, r.revision, json.loads(r.policy), r.at, r.actor, r.reason)
                for r in conn.execute(stmt)
            ]

        return self._db.read(work)

    def delete(self, name: str, at: int) -> None:
        def work(conn: Connection) -> None:
            row = self._row(conn, name)
            conn.execute(update(deployments).where(deployments.c.id == row.id).values(deleted_at=at))

        self._db.write(work)
