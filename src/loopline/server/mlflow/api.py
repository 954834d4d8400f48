"""Where MLflow's API lives on the team server."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from loopline.server.mlflow import artifacts, models, tracking, wire
from loopline.server.mlflow.errors import RESPONSES

_server_info = APIRouter()


@_server_info.get("/server-info")
def server_info() -> Response:
    """What MLflow's client asks before it moves artifacts: no multipart uploads here."""
    return wire.answer(
        {
            "store_type": "SqlStore",
            "workspaces_enabled": False,
            "multipart_uploads_enabled": False,
            "multipart_downloads_enabled": False,
        }
    )


def include_mlflow_api(app: FastAPI) -> None:
    """MLflow's REST API at its paths (`/api/2.0/mlflow/...`, and `/ajax-api/...` as MLflow's
    own web app calls it), its artifact proxy and its server information."""
    for prefix, shown in (("/api/2.0/mlflow", True), ("/ajax-api/2.0/mlflow", False)):
        for module in (tracking, models):
            app.include_router(
                module.router, prefix=prefix, tags=["mlflow"], responses=RESPONSES, include_in_schema=shown
            )
    app.include_router(
        artifacts.router, prefix="/api/2.0/mlflow-artifacts", tags=["mlflow"], responses=RESPONSES
    )
    app.include_router(_server_info, prefix="/api/3.0/mlflow", tags=["mlflow"])
