"""What handlers receive: the authenticated caller and services acting as that caller."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from fastapi import Path as FastApiPath
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from loopline.automation.service import AutomationService
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput, Unauthenticated
from loopline.governance.access import AccessService
from loopline.governance.audit import AuditTrail
from loopline.registry.service import RegistryService
from loopline.server.logins import FailedLogins
from loopline.server.schemas import MAX_PAGE
from loopline.server.sessions import SESSION_COOKIE, check_csrf
from loopline.serving.deployments import DeploymentService
from loopline.tracking.service import TrackingService
from loopline.wiring.backends import Backends

T = TypeVar("T")
# Dependencies are async: a sync one costs a trip to the thread pool on every request.
ANONYMOUS = Principal("anonymous")
TOKEN_HEADER = "x-loopline-token"


def backends(request: Request) -> Backends:
    found: Backends = request.app.state.backends
    return found


async def _backends(request: Request) -> Backends:
    return backends(request)


def staging(request: Request) -> Path:
    found: Path = request.app.state.staging
    return found


# Declared so that the OpenAPI document names the scheme (and /docs offers to authorize);
# `caller` reads the headers itself, the bearer token or the X-Loopline-Token header.
_BEARER = HTTPBearer(auto_error=False, description="a loopline API token (`loopline tokens create`)")


async def caller(
    request: Request, _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
) -> Principal:
    """The token's owner: from `Authorization: Bearer <token>`, the `X-Loopline-Token` header
    or a browser's session cookie (see `server.sessions`); the local owner in embedded mode.

    A token the store has just checked is known without a trip to the thread pool; any other
    is looked up there, as the lookup blocks."""
    embedded: Principal | None = request.app.state.options.embedded
    if embedded is not None:
        check_csrf(request, request.app.state.csrf_secret)
        return embedded
    token = request.headers.get(TOKEN_HEADER)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if token is None and scheme.lower() == "bearer":
        token = value.strip()
    if token is None and SESSION_COOKIE in request.cookies:
        token = request.cookies[SESSION_COOKIE]
        check_csrf(request, token)
    failed_logins: FailedLogins = request.app.state.failed_logins
    address = request.client.host if request.client else "unknown"
    failed_logins.check(address, token)
    access = backends(request).services(ANONYMOUS).access
    try:
        known = access.authenticate_cached(token)
        if known is not None:
            return known
        found = await run_in_threadpool(access.authenticate, token)
    except Unauthenticated:
        if token:  # a missing token is no guess
            failed_logins.failed(address)
        raise
    assert token is not None  # authenticated
    failed_logins.proven(token)
    return found


Caller = Annotated[Principal, Depends(caller)]
Backend = Annotated[Backends, Depends(_backends)]


async def _tracking(b: Backend, who: Caller) -> TrackingService:
    return b.services(who).tracking


async def _registry(b: Backend, who: Caller) -> RegistryService:
    return b.services(who).registry


async def _deployments(b: Backend, who: Caller) -> DeploymentService:
    return b.services(who).deployments


async def _automation(b: Backend, who: Caller) -> AutomationService:
    return b.services(who).automation


async def _access(b: Backend, who: Caller) -> AccessService:
    return b.services(who).access


async def _audit(b: Backend, who: Caller) -> AuditTrail:
    return b.services(who).audit


Tracking = Annotated[TrackingService, Depends(_tracking)]
Registry = Annotated[RegistryService, Depends(_registry)]
Deployments = Annotated[DeploymentService, Depends(_deployments)]
Automation = Annotated[AutomationService, Depends(_automation)]
Access = Annotated[AccessService, Depends(_access)]
Audit = Annotated[AuditTrail, Depends(_audit)]
MaxResults = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Id = Annotated[int, FastApiPath(ge=0, le=2**63 - 1)]
"""An integer in a path (a version, an id): bounded as the database stores it."""
PageToken = Annotated[str | None, Query(max_length=32)]


@dataclass
class PageArgs:
    """`max_results` and `page_token` of a listing; the token is the offset of the next item."""

    max_results: MaxResults = 100
    page_token: PageToken = None

    @property
    def start(self) -> int:
        return offset(self.page_token)

    @property
    def end(self) -> int:
        return self.start + self.max_results


Paging = Annotated[PageArgs, Depends()]


def page(items: Sequence[T], paging: PageArgs) -> dict[str, Any]:
    start = paging.start
    end = start + paging.max_results
    return {"items": list(items[start:end]), "next_page_token": str(end) if end < len(items) else None}


def offset(page_token: str | None) -> int:
    if page_token is None or page_token == "":
        return 0
    if page_token.isdigit():
        return int(page_token)
    raise InvalidInput(f"page_token {page_token!r} is not one this server gave out")
