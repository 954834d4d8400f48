"""The retention policy and garbage collection through a server."""

from __future__ import annotations

from loopline.client.connection import ServerConnection
from loopline.core.lifecycle import GcReport, RetentionPolicy
from loopline.core.wire import decode


class RemoteStorageService:
    """The server's retention policy and gc, as the token's owner (changes: administrators)."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection

    def retention(self) -> RetentionPolicy:
        return decode(RetentionPolicy, self._connection.call("GET", "/storage/retention"))

    def set_retention(
        self,
        *,
        deleted_runs_days: float | None,
        prediction_log_days: float | None,
        unreferenced_blob_hours: float,
        reason: str = "",
    ) -> RetentionPolicy:
        body = {
            "deleted_runs_days": deleted_runs_days,
            "prediction_log_days": prediction_log_days,
            "unreferenced_blob_hours": unreferenced_blob_hours,
            "reason": reason,
        }
        return decode(RetentionPolicy, self._connection.call("PUT", "/storage/retention", json=body))

    def gc(self, *, dry_run: bool = False) -> GcReport:
        return decode(GcReport, self._connection.call("POST", "/storage/gc", json={"dry_run": dry_run}))
