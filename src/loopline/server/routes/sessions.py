"""Signing a browser in and out: a loopline token in, a short-lived session cookie out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from loopline.core.errors import InvalidInput, Unauthenticated
from loopline.server.deps import ANONYMOUS, Backend, Caller
from loopline.server.logins import FailedLogins
from loopline.server.sessions import SESSION_COOKIE, SESSION_DAYS, SESSION_TOKEN_NAME, set_session_cookie

router = APIRouter(tags=["governance"])


class SignIn(BaseModel):
    """A loopline token, exchanged for a session cookie."""

    token: str = Field(min_length=1, max_length=200)


@router.post("/session", status_code=204)
async def sign_in(request: Request, b: Backend, body: SignIn) -> Response:
    """Start a browser session: sets an HttpOnly, SameSite=Strict cookie that expires within a day."""
    if request.app.state.options.embedded is not None:
        raise InvalidInput("this UI runs without sign-in (loopline ui); there is no session to start")
    failed_logins: FailedLogins = request.app.state.failed_logins
    address = request.client.host if request.client else "unknown"
    failed_logins.check(address)
    try:
        who = await run_in_threadpool(b.services(ANONYMOUS).access.authenticate, body.token)
    except Unauthenticated:
        failed_logins.failed(address)
        raise
    _, secret = await run_in_threadpool(
        b.services(who).access.create_token, who.name, SESSION_TOKEN_NAME, SESSION_DAYS
    )
    response = Response(status_code=204)
    set_session_cookie(response, request, secret)
    return response


@router.delete("/session", status_code=204)
def sign_out(request: Request, b: Backend, who: Caller) -> Response:
    """End the browser's session: its token is revoked and the cookie cleared."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        access = b.services(who).access
        for token in access.tokens(who.name):
            if (
                token.name == SESSION_TOKEN_NAME
                and token.revoked_at is None
                and secret.startswith(token.prefix)
            ):
                access.revoke_token(token.id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
