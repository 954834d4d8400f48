"""What a page handler receives: the services, acting as the signed-in user."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from loopline.core.errors import NotFound, PermissionDenied
from loopline.server.deps import backends, caller
from loopline.wiring.local import LocalServices


async def _viewer(request: Request) -> LocalServices:
    """The services as the browser's user; Unauthenticated sends a signed-out browser to sign in."""
    who = await caller(request, None)
    request.state.principal = who
    return backends(request).services(who)


Viewer = Annotated[LocalServices, Depends(_viewer)]


def permits(check: Callable[[], object]) -> bool:
    """Whether the service's own access `check` passes: a page offers an action only then."""
    try:
        check()
    except (PermissionDenied, NotFound):
        return False
    return True
