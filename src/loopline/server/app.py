"""The team server: the services over HTTP, as `/api/v1/...`, for many users at once.

Handlers are thin: they authenticate the caller, hand the principal to a service, and
encode what it returns. Every rule (who may do what included) lives in the services.
"""

from __future__ import annotations

from fastapi import FastAPI

from loopline.core.version import __version__
from loopline.server.errors import ERROR_RESPONSES, handle_errors
from loopline.server.logins import FailedLogins
from loopline.server.middleware import RequestGuard
from loopline.server.options import ServerOptions, default_staging
from loopline.wiring.backends import Backends


def create_app(backends: Backends, options: ServerOptions = ServerOptions()) -> FastAPI:
    from loopline.server.routes import (
        automation,
        datasets,
        deployments,
        governance,
        lineage,
        loops,
        monitors,
        promotion,
        registry,
        tracking,
    )

    app = FastAPI(
        title="loopline",
        version=__version__,
        description="Tracking, registry, deployments, monitoring and governance of loopline.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.backends = backends
    app.state.options = options
    app.state.failed_logins = FailedLogins(options.max_failed_logins)
    app.state.staging = options.staging_dir or default_staging(backends.blobs.url)
    for module in (
        tracking,
        registry,
        promotion,
        deployments,
        monitors,
        datasets,
        automation,
        loops,
        lineage,
        governance,
    ):
        app.include_router(module.router, prefix="/api/v1", responses=ERROR_RESPONSES)

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    handle_errors(app)
    app.add_middleware(RequestGuard, options=options)
    return app
