"""Connecting to Ray, for everything that runs on it (steps, trials, batch scoring, feature
materialization)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from loopline.core.errors import InvalidInput, LooplineError

_T = TypeVar("_T")


def connect_ray(address: str, purpose: str) -> bool:
    """Connect to the cluster at `address` ("local" starts one in this process) unless
    connected already; True if this call started it, so the caller shuts it down."""
    try:
        import ray
    except ImportError:
        raise InvalidInput(f"{purpose} on Ray needs it installed: pip install 'loopline[ray]'") from None
    if ray.is_initialized():
        return False
    ray.init(
        address=None if address == "local" else address, include_dashboard=False, logging_level=logging.ERROR
    )
    return True


def _call(fn: Callable[..., _T], *args: Any) -> _T:
    return fn(*args)


def run_task(address: str, purpose: str, fn: Callable[..., _T], *args: Any) -> _T:
    """`fn(*args)` as one Ray task on the cluster at `address` ("local" starts one here, shut
    down after). `fn` and `args` are pickled to the task: they carry settings, never open
    connections. A loopline error in the task is raised here as itself."""
    started_here = connect_ray(address, purpose)
    import ray
    from ray.exceptions import RayTaskError

    try:
        # No retry by Ray: a failed task fails the caller, which decides whether to run it again.
        remote = ray.remote(max_retries=0)(_call)
        try:
            result: _T = ray.get(remote.remote(fn, *args))
        except RayTaskError as exc:
            if isinstance(exc.cause, LooplineError):  # its message is for the user, not a traceback
                raise exc.cause from None
            raise
        return result
    finally:
        if started_here:
            ray.shutdown()
