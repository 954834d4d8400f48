"""Browser sessions: a cookie instead of a token header, and CSRF checks on state changes.

Signing in (`POST /api/v1/session`) exchanges a loopline token for a session token that
expires within a day; its secret travels only in an HttpOnly, SameSite=Strict cookie and
is never written into a page. A state change made with the cookie must also carry the
CSRF header: a one-way digest of the session secret, which pages hold and which a
cross-site page can neither read nor send (a custom header needs a CORS preflight this
server never grants).

In embedded mode (`loopline ui`: loopback, no login) every request acts as the local owner;
the CSRF digest is then keyed by a secret of the app, made when it starts.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

from loopline.core.errors import PermissionDenied

SESSION_COOKIE = "loopline_session"
CSRF_HEADER = "x-csrf-token"
SESSION_DAYS = 0.5
SESSION_TOKEN_NAME = "web-session"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(secret: str) -> str:
    """The CSRF token that pages carry: proof a request came from our page, not the session."""
    return hashlib.sha256(f"loopline-csrf:{secret}".encode()).hexdigest()


def check_csrf(request: Request, secret: str) -> None:
    """Refuse a state change that lacks the CSRF header of `secret`."""
    if request.method in _SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent, csrf_token(secret)):
        raise PermissionDenied(
            f"{request.method} {request.url.path} from a browser needs the {CSRF_HEADER} header of a page "
            "of this server; reload the page and try again"
        )


def page_secret(request: Request) -> str | None:
    """What this browser's CSRF token derives from: the app's secret when embedded, else the
    session cookie (None when signed out)."""
    if request.app.state.options.embedded is not None:
        secret: str = request.app.state.csrf_secret
        return secret
    return request.cookies.get(SESSION_COOKIE)


def set_session_cookie(response: Response, request: Request, secret: str) -> None:
    """Hand the browser its session: the secret in an HttpOnly, SameSite=Strict cookie."""
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(SESSION_DAYS * 86400),
        httponly=True,
        samesite="strict",
        secure=request.app.state.options.secure_cookies,
        path="/",
    )


def local_path(path: str) -> str:
    """Where to go after signing in: a path of this server, never another site. Browsers drop
    tabs and newlines and read a backslash as a slash, so a path with them could lead away."""
    ours = path.startswith("/") and path.isprintable() and not path.replace("\\", "/").startswith("//")
    return path if ours else "/"
