"""Evaluations, promotions through the gates, and model cards. Evaluation data arrives as an
upload of Parquet rows; the server loads only registered versions, never a pickled one."""

from __future__ import annotations

import pandas as pd
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from loopline.core.registry import Evaluation
from loopline.server.deps import Backend, Caller, Id, Paging, page, staging
from loopline.server.encoding import json_response
from loopline.server.routes.uploads import uploaded_table
from loopline.server.schemas import NewEvaluation, Page, Promotion

router = APIRouter(tags=["promotion"])


@router.post("/evaluations", response_model=Evaluation, status_code=201)
def evaluate(request: Request, b: Backend, who: Caller, body: NewEvaluation) -> Response:
    """Evaluate a version on the uploaded rows and store the result with it."""
    with uploaded_table(staging(request), body.upload_id, who) as path:
        data = pd.read_parquet(path)
    evaluation = b.services(who).promotion.evaluate(
        body.uri, data, body.target, task=body.task, slices=body.slices, dataset_name=body.dataset_name
    )
    return json_response(evaluation, 201)


@router.post("/models/{name}/versions/{version}/promote")
async def promote(
    request: Request, b: Backend, who: Caller, name: str, version: Id, body: Promotion
) -> Response:
    """Run the promotion gates (on the uploaded rows, if any) and move the alias if they pass;
    a refusal answers 409 with the report in the error's details."""
    data = None
    if body.upload_id is not None:
        with uploaded_table(staging(request), body.upload_id, who) as path:
            data = await run_in_threadpool(pd.read_parquet, path)
    report = await run_in_threadpool(
        lambda: b.services(who).promotion.promote(
            name,
            version,
            body.alias,
            policy=body.policy,
            data=data,
            target=body.target,
            task=body.task,
            force_reason=body.force_reason,
            baseline=body.baseline,
        )
    )
    return json_response(report.to_dict())


@router.get("/models/{name}/versions/{version}/evaluations", response_model=Page[Evaluation])
def evaluations(b: Backend, who: Caller, name: str, version: Id, paging: Paging) -> Response:
    """The evaluations stored with a version, oldest first."""
    return json_response(page(b.services(who).promotion.evaluations(name, version), paging))


@router.get(
    "/models/{name}/versions/{version}/evaluations/{evaluation_id}/plots/{plot}",
    responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}},
)
def evaluation_plot(
    b: Backend, who: Caller, name: str, version: Id, evaluation_id: Id, plot: str
) -> Response:
    """One plot of a stored evaluation, as PNG."""
    found = b.services(who).promotion.evaluation_plot(name, version, evaluation_id, plot)
    return Response(found, media_type="image/png")


@router.get(
    "/models/{name}/versions/{version}/card",
    responses={
        200: {
            "content": {
                "text/markdown": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
            "description": "the card: Markdown, or HTML with `html=true`",
        }
    },
)
def model_card(b: Backend, who: Caller, name: str, version: Id, html: bool = False) -> Response:
    """The model card of a version: Markdown, or HTML with `html=true`."""
    text = b.services(who).promotion.model_card(name, version, html=html)
    return HTMLResponse(text) if html else Response(text, media_type="text/markdown")
