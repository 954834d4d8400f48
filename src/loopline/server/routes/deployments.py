"""Deployments and their traffic policies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from loopline.core.registry import Deployment, DeploymentRevision
from loopline.core.traffic import TrafficPolicy
from loopline.predictions.series import TrafficSeries
from loopline.server.deps import Deployments, Paging, page
from loopline.server.encoding import json_response
from loopline.server.schemas import (
    ExtraFieldsChange,
    NewDeployment,
    Page,
    Reason,
    TrafficChange,
)

router = APIRouter()
Timestamp = Annotated[int | None, Query(ge=0, le=2**63 - 1)]


@router.get("/deployments", response_model=Page[Deployment], tags=["deployments"])
def list_deployments(deployments: Deployments, paging: Paging) -> Response:
    return json_response(page(deployments.list_all(), paging))


@router.post("/deployments", response_model=Deployment, status_code=201, tags=["deployments"])
def create_deployment(deployments: Deployments, body: NewDeployment) -> Response:
    policy = TrafficPolicy.from_dict(body.policy)
    return json_response(deployments.create(body.name, policy, body.reason, body.extra_fields), 201)


@router.get("/deployments/{name}", response_model=Deployment, tags=["deployments"])
def get_deployment(deployments: Deployments, name: str) -> Response:
    return json_response(deployments.get(name))


@router.put("/deployments/{name}/traffic", response_model=Deployment, tags=["deployments"])
def set_traffic(deployments: Deployments, name: str, body: TrafficChange) -> Response:
    policy = TrafficPolicy.from_dict(body.policy)
    return json_response(deployments.set_traffic(name, policy, body.reason, body.expected_revision))


@router.put("/deployments/{name}/extra-fields", response_model=Deployment, tags=["deployments"])
def set_extra_fields(deployments: Deployments, name: str, body: ExtraFieldsChange) -> Response:
    return json_response(deployments.set_extra_fields(name, body.extra_fields, body.reason))


@router.get("/deployments/{name}/revisions", response_model=Page[DeploymentRevision], tags=["deployments"])
def deployment_revisions(deployments: Deployments, name: str, paging: Paging) -> Response:
    return json_response(page(deployments.revisions(name), paging))


@router.post("/deployments/{name}/rollback", response_model=Deployment, tags=["deployments"])
def rollback(deployments: Deployments, name: str, reason: str = "", body: Reason | None = None) -> Response:
    """Back to the previous policy; the reason comes as a query parameter or in a JSON body."""
    return json_response(deployments.rollback(name, body.reason if body and body.reason else reason))


@router.delete("/deployments/{name}", status_code=204, tags=["deployments"])
def delete_deployment(deployments: Deployments, name: str) -> Response:
    deployments.delete(name)
    return Response(status_code=204)


@router.get("/deployments/{name}/report", tags=["deployments"])
async def report(deployments: Deployments, name: str, since_ms: Timestamp = None) -> Response:
    """The arms compared on the prediction log since `since_ms` (all of it by default)."""
    found = await run_in_threadpool(deployments.report, name, since_ms)
    return json_response(found.to_dict())


@router.get("/deployments/{name}/traffic", response_model=TrafficSeries, tags=["deployments"])
async def traffic(
    deployments: Deployments,
    name: str,
    since_ms: Timestamp = None,
    buckets: Annotated[int, Query(ge=1, le=1000)] = 120,
) -> Response:
    """Requests answered and refused and latency quantiles per time bucket, arm and version."""
    return json_response(await run_in_threadpool(deployments.traffic, name, since_ms, buckets))
