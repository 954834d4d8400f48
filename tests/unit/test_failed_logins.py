"""The failed-login limiter: per address, for a window, then forgotten."""

from __future__ import annotations

import time

import pytest

from loopline.core.errors import TooManyAttempts
from loopline.server.logins import FailedLogins


def test_an_address_over_the_limit_waits_out_the_window_and_others_are_unaffected() -> None:
    logins = FailedLogins(limit=2, window_s=0.3)
    logins.failed("10.0.0.1")
    logins.check("10.0.0.1")  # one failure: still allowed
    logins.failed("10.0.0.1")
    with pytest.raises(TooManyAttempts) as refused:
        logins.check("10.0.0.1")
    assert refused.value.retry_after_s == 1  # rounded up to whole seconds
    logins.check("10.0.0.2")
    time.sleep(0.35)
    logins.check("10.0.0.1")  # the window has passed


def test_memory_stays_bounded_under_a_flood_of_addresses() -> None:
    logins = FailedLogins(limit=5, max_addresses=100)
    for i in range(1_000):
        logins.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(logins._failures) <= 100
