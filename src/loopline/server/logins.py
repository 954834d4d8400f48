"""Guessing tokens is slowed down: an address whose tokens keep failing must wait.

Only presented tokens that fail count (wrong, revoked, expired), never a missing one: a
browser or a script without a token is not guessing. While an address is over the limit,
requests from it are refused with 429, except with a token already proven valid (from any
address): the users behind a shared address (a NAT, a proxy) keep working while a guesser
there waits, and a guess that happens to be right is not confirmed either. The address is
the connection's own: forwarding headers are not trusted (uvicorn runs without them).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict, deque

from loopline.core.errors import TooManyAttempts


class FailedLogins:
    def __init__(self, limit: int, window_s: float = 60.0, max_addresses: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._max_addresses = max_addresses
        self._proven: OrderedDict[str, None] = OrderedDict()  # sha256 of tokens that worked
        self._lock = threading.Lock()

    def proven(self, token: str) -> None:
        """Remember that `token` authenticated (its hash only; the newest 10,000)."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            self._proven[digest] = None
            self._proven.move_to_end(digest)
            if len(self._proven) > self._max_addresses:
                self._proven.popitem(last=False)

    def check(self, address: str, token: str | None = None) -> None:
        """Refuse `address` while it has `limit` failures within the window, unless `token`
        was proven valid before."""
        with self._lock:
            if token and hashlib.sha256(token.encode()).hexdigest() in self._proven:
                return
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
