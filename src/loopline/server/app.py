"""The team server: the services over HTTP, as `/api/v1/...`, for many users at once.

Handlers are thin: they authenticate the caller, hand the principal to a service, and
encode what it returns. Every rule (who may do what included) lives in the services.
"""

from __future__ import annotations

import dataclasses
import secrets

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from loopline.core.version import __version__
from loopline.server.errors import ERROR_RESPONSES, handle_errors
from loopline.server.logins import FailedLogins
from loopline.server.middleware import RequestGuard
from loopline.server.mlflow.api import include_mlflow_api
from loopline.server.options import ServerOptions, default_staging
from loopline.wiring.backends import Backends


def create_app(backends: Backends, options: ServerOptions = ServerOptions()) -> FastAPI:
    from loopline.server.oidc_provider import Provider
    from loopline.server.routes import (
        automation,
        datasets,
        deployments,
        features,
        governance,
        lineage,
        loops,
        monitors,
        oidc,
        privacy,
        promotion,
        registry,
        sessions,
        storage,
        tracking,
    )

    app = FastAPI(
        title="loopline",
        version=__version__,
        description="Tracking, registry, deployments, monitoring and governance of loopline.",
        openapi_url="/openapi.json",
        docs_url=None,  # served below, from a package: the default page loads a CDN
        redoc_url=None,
    )
    _offline_docs(app)
    if options.embedded is None:
        # Definitions come from remote users: their file paths must not reach the server's own files.
        backends = dataclasses.replace(backends, file_roots=options.data_roots)
    app.state.backends = backends
    app.state.options = options
    app.state.failed_logins = FailedLogins(options.max_failed_logins)
    app.state.csrf_secret = secrets.token_urlsafe(32)  # keys the embedded mode's CSRF tokens
    app.state.oidc = None if options.oidc is None else Provider(options.oidc)
    app.state.staging = options.staging_dir or default_staging(backends.blobs.url)
    for module in (
        tracking,
        registry,
        promotion,
        deployments,
        monitors,
        datasets,
        features,
        automation,
        loops,
        lineage,
        governance,
        privacy,
        storage,
        sessions,
        oidc,
    ):
        app.include_router(module.router, prefix="/api/v1", responses=ERROR_RESPONSES)
    include_mlflow_api(app)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    handle_errors(app)
    app.add_middleware(RequestGuard, options=options)
    return app


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the swagger-ui-bundle package, so it renders without internet."""
    from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/static", StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="loopline API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
