"""Deployments and their traffic over HTTP."""

from __future__ import annotations

from loopline.client.connection import ServerConnection, segment
from loopline.core.registry import Deployment, DeploymentRevision, ModelVersion
from loopline.core.traffic import TrafficPolicy, serving_versions
from loopline.core.wire import decode
from loopline.predictions.reports import DeploymentReport
from loopline.predictions.series import TrafficSeries
from loopline.services import Registry


def _deployment(name: str) -> str:
    return f"/deployments/{segment(name)}"


class RemoteDeploymentService:
    """The server's deployments, as the token's owner."""

    def __init__(self, connection: ServerConnection, registry: Registry) -> None:
        self._connection = connection
        self._registry = registry
        self.principal = registry.principal

    def resolve(self, policy: TrafficPolicy) -> dict[str, ModelVersion]:
        return serving_versions(policy, self._registry.resolve)

    def policy(self, name: str) -> TrafficPolicy:
        return TrafficPolicy.from_dict(self.get(name).policy)

    def create(
        self, name: str, policy: TrafficPolicy, reason: str = "", extra_fields: str = "refuse"
    ) -> Deployment:
        body = {"name": name, "policy": policy.to_dict(), "reason": reason, "extra_fields": extra_fields}
        return decode(Deployment, self._connection.call("POST", "/deployments", json=body))

    def set_extra_fields(self, name: str, extra_fields: str, reason: str = "") -> Deployment:
        body = {"extra_fields": extra_fields, "reason": reason}
        return decode(
            Deployment, self._connection.call("PUT", f"{_deployment(name)}/extra-fields", json=body)
        )

    def get(self, name: str) -> Deployment:
        return decode(Deployment, self._connection.call("GET", _deployment(name)))

    def list_all(self) -> list[Deployment]:
        return [decode(Deployment, d) for d in self._connection.pages("/deployments")]

    def set_traffic(
        self, name: str, policy: TrafficPolicy, reason: str = "", expected_revision: int | None = None
    ) -> Deployment:
        body = {"policy": policy.to_dict(), "reason": reason, "expected_revision": expected_revision}
        return decode(Deployment, self._connection.call("PUT", f"{_deployment(name)}/traffic", json=body))

    def revisions(self, name: str) -> list[DeploymentRevision]:
        found = self._connection.pages(f"{_deployment(name)}/revisions")
        return [decode(DeploymentRevision, r) for r in found]

    def rollback(self, name: str, reason: str = "") -> Deployment:
        path = f"{_deployment(name)}/rollback"
        return decode(Deployment, self._connection.call("POST", path, params={"reason": reason}))

    def delete(self, name: str) -> None:
        self._connection.call("DELETE", _deployment(name))

    def report(self, name: str, since_ms: int | None = None) -> DeploymentReport:
        found = self._connection.call("GET", f"{_deployment(name)}/report", params={"since_ms": since_ms})
        return DeploymentReport.from_dict(found)

    def traffic(self, name: str, since_ms: int | None = None, buckets: int = 120) -> TrafficSeries:
        params = {"since_ms": since_ms, "buckets": buckets}
        return decode(
            TrafficSeries, self._connection.call("GET", f"{_deployment(name)}/traffic", params=params)
        )
