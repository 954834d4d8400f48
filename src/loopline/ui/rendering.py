"""Pages as HTML: Jinja2 templates escaped by default, sent with a strict Content-Security-Policy."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from loopline.core.errors import Unauthenticated
from loopline.server.sessions import csrf_token, page_secret

# No inline script anywhere: every script is a file of ours or plotly.js. plotly.js sets
# style attributes as it draws, so inline styles are allowed; nothing else is.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "frame-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
# What a frame of user content (an HTML artifact, a monitor report) is served with: its own
# policy sandboxes it, so even opened directly its scripts run in an opaque origin.
SANDBOXED_HEADERS = {
    "content-security-policy": "sandbox allow-scripts; frame-ancestors 'self'",
    "x-content-type-options": "nosniff",
}


def when(ms: int | None) -> str:
    """A time in ms since the epoch, as UTC to the second."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(start_ms: int | None, end_ms: int | None) -> str:
    """How long from `start_ms` to `end_ms`, e.g. 2m 05s."""
    if start_ms is None or end_ms is None:
        return ""
    seconds = max(0, (end_ms - start_ms) // 1000)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def number(value: Any) -> str:
    """A metric value, short but exact enough to compare."""
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else str(value)


def as_json(value: Any) -> str:
    """A value as indented JSON, for a <pre> (escaped by the template)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates of the package; every value is escaped unless a template says otherwise."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("loopline.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, number=number, as_json=as_json)
    env.globals.update(duration=duration, query=query)
    return env


def query(path: str, /, **params: Any) -> str:
    """`path` with `params` as its query string; lists repeat their name, None is left out."""
    pairs = [
        (name, item)
        for name, value in params.items()
        for item in (value if isinstance(value, list | tuple) else [value])
        if item is not None and item != ""
    ]
    return f"{path}?{urlencode(pairs)}" if pairs else path


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """`template` filled with `context`, the signed-in user and the page's CSRF token."""
    secret = page_secret(request)
    principal = getattr(request.state, "principal", None)
    html = (
        environment()
        .get_template(template)
        .render(
            request=request,
            me=principal,
            embedded=request.app.state.options.embedded is not None,
            csrf=csrf_token(secret) if secret else "",
            **context,
        )
    )
    return HTMLResponse(html, status, headers=SECURITY_HEADERS)


def error_page(request: Request, status: int, exc: Exception) -> Response:
    """An error as a page; a signed-out browser is sent to the sign-in page instead."""
    if isinstance(exc, Unauthenticated):
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(query("/login", next=wanted), 303)
    message = str(getattr(exc, "detail", exc))
    return render(request, "error.html", status, code=status, message=message)
