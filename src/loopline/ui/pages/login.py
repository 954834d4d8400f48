"""Signing in (team server only) and the start page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from loopline.server.sessions import local_path
from loopline.ui.rendering import render

router = APIRouter()


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    """The sign-in form; embedded mode has none and goes straight on."""
    if request.app.state.options.embedded is not None:
        return RedirectResponse(local_path(next), 303)
    provider = request.app.state.oidc
    oidc = None if provider is None else provider.config.display_name
    return render(request, "login.html", next=local_path(next), oidc=oidc)


@router.get("/")
def start() -> Response:
    """The start page is the list of experiments."""
    return RedirectResponse("/experiments", 303)
