"""Experiments: each with its run count and last activity."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from loopline.ui.deps import Viewer
from loopline.ui.rendering import render

router = APIRouter()


@router.get("/experiments")
def experiments(request: Request, services: Viewer) -> Response:
    """Every experiment the user can see, with its run count and newest run."""
    tracking = services.tracking
    activity = {a.experiment_id: (a.runs, a.last_run_at) for a in tracking.experiment_activity()}
    return render(request, "experiments.html", experiments=tracking.list_experiments(), activity=activity)
