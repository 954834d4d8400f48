"""Signing in (team server only) and the start page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from loopline.ui.rendering import render

router = APIRouter()


def _local_path(path: str) -> str:
    """Where to go after signing in: a path of this server, never another site."""
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else "/"


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    """The sign-in form; embedded mode has none and goes straight on."""
    if request.app.state.options.embedded is not None:
        return RedirectResponse(_local_path(next), 303)
    return render(request, "login.html", next=_local_path(next))


@router.get("/")
def start() -> Response:
    """The start page is the list of experiments."""
    return RedirectResponse("/experiments", 303)
