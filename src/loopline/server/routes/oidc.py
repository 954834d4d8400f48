"""Signing a browser in with an OpenID Connect provider: the authorization code flow with
PKCE, ending in the same session cookie that signing in with a token gives."""

from __future__ import annotations

import html
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput, LooplineError, NotFound, PermissionDenied, Unauthenticated
from loopline.server.deps import Backend
from loopline.server.errors import ErrorPage, status_of
from loopline.server.logins import FailedLogins
from loopline.server.oidc import PENDING_COOKIE, PENDING_SECONDS, SIGN_IN_PATH, PendingSignIn
from loopline.server.oidc_provider import Provider
from loopline.server.sessions import SESSION_DAYS, SESSION_TOKEN_NAME, local_path, set_session_cookie

router = APIRouter(tags=["governance"])

SERVER = Principal("loopline", is_owner=True)
"""Who provisions users once the provider's ID token is verified."""
Param = Annotated[str, Query(max_length=2048)]


def _provider(request: Request) -> Provider:
    if request.app.state.options.embedded is not None:
        raise InvalidInput("this UI runs without sign-in (loopline ui); there is no session to start")
    provider: Provider | None = request.app.state.oidc
    if provider is None:
        raise NotFound(
            "this server has no OpenID Connect sign-in (LOOPLINE_OIDC_ISSUER configures one); "
            "sign in with a token"
        )
    return provider


@router.get("/session/oidc/login")
async def oidc_sign_in(request: Request, next: Param = "/") -> Response:
    """Start signing in with the provider: redirects there; it sends the browser back to
    `/session/oidc/callback`."""
    provider = _provider(request)
    pending = PendingSignIn.start(local_path(next))
    response = RedirectResponse(await provider.authorization_url(pending), 303)
    response.set_cookie(
        PENDING_COOKIE,
        pending.seal(provider.config.login_key),
        max_age=PENDING_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.app.state.options.secure_cookies,  # TLS here or at the public https:// address
        path=SIGN_IN_PATH,
    )
    return response


@router.get("/session/oidc/callback")
async def oidc_callback(
    request: Request,
    b: Backend,
    state: Param = "",
    code: Param = "",
    error: Param = "",
    error_description: Param = "",
) -> Response:
    """Finish signing in: check the browser's pending sign-in, exchange the code, verify the
    ID token, provision the user, start the session, and move on to the page asked for."""
    failed_logins: FailedLogins = request.app.state.failed_logins
    address = request.client.host if request.client else "unknown"
    try:
        failed_logins.check(address)
        provider = _provider(request)
        pending = PendingSignIn.unseal(request.cookies.get(PENDING_COOKIE), provider.config.login_key)
        if state != pending.state:
            raise InvalidInput("the provider's answer is not for this browser's sign-in; sign in again")
        if error:
            raise PermissionDenied(
                f"{provider.config.display_name} did not sign you in ({error}: {error_description[:300]})"
            )
        if not code:
            raise InvalidInput("the provider sent no code back; sign in again")
        claims = await provider.exchange(code, pending)
        config = provider.config
        who = await run_in_threadpool(
            b.services(SERVER).access.sign_in_with_identity,
            config.issuer,
            str(claims["sub"]),
            claims,
            config.policy,
        )
        _, secret = await run_in_threadpool(
            b.services(who).access.create_token, who.name, SESSION_TOKEN_NAME, SESSION_DAYS
        )
    except LooplineError as exc:
        if isinstance(exc, Unauthenticated):
            failed_logins.failed(address)
        return _refused(request, exc)
    response = _onward(pending.next)
    set_session_cookie(response, request, secret)
    response.delete_cookie(PENDING_COOKIE, path=SIGN_IN_PATH)
    return response


def _onward(path: str) -> HTMLResponse:
    """A page that moves on to `path` at once. Not a redirect: the way here started at the
    provider, another site, and a browser withholds SameSite=Strict cookies (the session's)
    from every request of a redirect chain that another site started; this page's own
    navigation starts here."""
    target = html.escape(quote(path, safe="/?&=%+,;:@-._~!$()*#"))
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0;url={target}"><title>Signed in</title></head>'
        f'<body><p>Signed in. <a href="{target}">Continue</a></p></body></html>'
    )
    headers = {
        "cache-control": "no-store",
        "referrer-policy": "no-referrer",  # the address held the (spent) code
        "content-security-policy": "default-src 'none'",
    }
    return HTMLResponse(page, headers=headers)


def _refused(request: Request, exc: LooplineError) -> Response:
    """The failure as a page a person can read (as JSON without the UI); the pending sign-in
    is spent either way."""
    error_page: ErrorPage | None = getattr(request.app.state, "error_page", None)
    if error_page is None:
        raise exc
    # Shown as it is: the page renders Unauthenticated as a redirect to sign in, a loop here.
    response = error_page(request, status_of(exc), RuntimeError(f"Sign-in failed: {exc}"))
    response.delete_cookie(PENDING_COOKIE, path=SIGN_IN_PATH)
    return response
