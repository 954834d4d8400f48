"""The UI's routes on a server app: pages, their static files, and HTML error pages."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import plotly
from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from loopline.server.app import create_app
from loopline.server.options import ServerOptions
from loopline.ui.rendering import error_page
from loopline.wiring.backends import Backends


def create_server_app(backends: Backends, options: ServerOptions = ServerOptions()) -> FastAPI:
    """The team server's app (REST API at /api/v1) with the web UI at `/`."""
    app = create_app(backends, options)
    mount_ui(app)
    return app


def mount_ui(app: FastAPI) -> None:
    """Serve the UI at `/` of `app` (a `loopline.server.app.create_app` application)."""
    from loopline.ui.pages import (
        audit,
        datasets,
        deployments,
        experiments,
        features,
        login,
        models,
        monitors,
        pipelines,
        runs,
    )

    app.state.error_page = error_page
    app.mount("/static", StaticFiles(directory=str(files("loopline.ui") / "static")), name="static")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        """plotly.js as the installed plotly package ships it: never copied into this repository."""
        path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        return FileResponse(path, media_type="text/javascript", headers={"cache-control": "max-age=86400"})

    for module in (
        login,
        experiments,
        runs,
        models,
        deployments,
        monitors,
        datasets,
        features,
        pipelines,
        audit,
    ):
        app.include_router(module.router, include_in_schema=False)
