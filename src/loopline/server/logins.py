"""Guessing tokens is slowed down: an address whose tokens keep failing must wait.

Only presented tokens that fail count (wrong, revoked, expired), never a missing one: a
browser or a script without a token is not guessing. While an address is over the limit
every request from it is refused with 429, a valid token included, so a guess that
happens to be right is not confirmed either.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from loopline.core.errors import TooManyAttempts


class FailedLogins:
    def __init__(self, limit: int, window_s: float = 60.0, max_addresses: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._max_addresses = max_addresses
        self._lock = threading.Lock()

    def check(self, address: str) -> None:
        """Refuse `address` while it has `limit` failures within the window."""
        with self._lock:
            recent = self._recent(address)
            if recent is None or len(recent) < self.limit:
                return
            wait = math.ceil(recent[0] + self.window_s - time.monotonic())
        raise TooManyAttempts(
            f"{self.limit} failed logins from {address} within {self.window_s:.0f} s; try again in {wait} s",
            retry_after_s=max(wait, 1),
        )

    def failed(self, address: str) -> None:
        with self._lock:
            recent = self._recent(address)
            if recent is None:
                if len(self._failures) >= self._max_addresses:
                    self._failures.clear()  # bounded memory under a flood of addresses
                recent = self._failures[address] = deque(maxlen=self.limit)
            recent.append(time.monotonic())

    def _recent(self, address: str) -> deque[float] | None:
        recent = self._failures.get(address)
        if recent is None:
            return None
        horizon = time.monotonic() - self.window_s
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            del self._failures[address]
            return None
        return recent
