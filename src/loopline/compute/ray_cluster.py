"""Connecting to Ray, for everything that runs on it (steps, trials, batch scoring)."""

from __future__ import annotations

import logging

from loopline.core.errors import InvalidInput


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
