"""Erasure of personal data through a server."""

from __future__ import annotations

from loopline.client.connection import ServerConnection
from loopline.core.privacy import Erasure
from loopline.core.wire import decode


class RemotePrivacyService:
    """The server's erasure, as the token's owner (an administrator)."""

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection

    def erase(self, column: str, value: str, *, dry_run: bool = False, reason: str = "") -> Erasure:
        body = {"column": column, "value": value, "dry_run": dry_run, "reason": reason}
        return decode(Erasure, self._connection.call("POST", "/erasures", json=body))
