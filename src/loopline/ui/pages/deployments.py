"""Deployments: every endpoint with its traffic policy; one deployment's policy and revisions,
its live traffic (request rate, latency, errors per arm and version), the comparison of its
arms, and the timeline of its retraining loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from loopline.core.access import Role
from loopline.core.clock import now_ms
from loopline.core.errors import LooplineError, NotFound
from loopline.core.loops import Loop, LoopEvent
from loopline.core.registry import DeploymentRevision
from loopline.core.traffic import TrafficPolicy
from loopline.governance.authorization import OPERATIONS_PROJECT
from loopline.predictions.series import TrafficPoint, TrafficSeries
from loopline.ui.deps import Viewer, permits
from loopline.ui.rendering import render, when
from loopline.wiring.local import LocalServices

router = APIRouter()
# Legends under the plot, below the date axis's second line of labels.
LEGEND = {"orientation": "h", "y": -0.22, "yanchor": "top"}
MARGIN = {"l": 60, "r": 10, "t": 40, "b": 10}
HOUR_MS = 3_600_000
WINDOWS: dict[str, int | None] = {"1h": HOUR_MS, "6h": 6 * HOUR_MS, "24h": 24 * HOUR_MS, "7d": 168 * HOUR_MS,
                                  "all": None}  # fmt: skip
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
QUANTILES = (("p50", "dot"), ("p95", "solid"), ("p99", "dash"))


@router.get("/deployments")
def deployments_list(request: Request, services: Viewer) -> Response:
    """Every deployment the user sees: its traffic policy in a line, revision and last change."""
    rows = [(d, describe(d.policy)) for d in services.deployments.list_all()]
    return render(request, "deployments.html", rows=rows)


def describe(policy: dict[str, Any]) -> str:
    """A stored policy in a line (or what is wrong with it)."""
    try:
        return TrafficPolicy.from_dict(policy).describe()
    except LooplineError as exc:
        return f"unreadable policy: {exc}"


@router.get("/deployments/{name}")
def deployment_page(
    request: Request,
    services: Viewer,
    name: str,
    window: Annotated[str, Query(pattern="^(1h|6h|24h|7d|all)$")] = "24h",
) -> Response:
    """A deployment: its policy, the versions its arms serve, its revisions (with a roll-back
    button for who may change traffic) and, refreshed every 10 s, its traffic over `window`,
    the comparison of its arms and its retraining loop."""
    deployments = services.deployments
    deployment = deployments.get(name)
    policy = TrafficPolicy.from_dict(deployment.policy)
    span = WINDOWS[window]
    since = now_ms() - span if span is not None else None
    revisions = deployments.revisions(deployment.name)
    loop, events = _loop(services, deployment.name)
    return render(
        request,
        "deployment.html",
        deployment=deployment,
        policy=policy,
        arms=_arms(services, policy),
        revisions=[(r, describe(r.policy)) for r in reversed(revisions)],
        previous=_previous(revisions),
        can_roll_back=_may_change_traffic(services) and len(revisions) > 1,
        window=window,
        windows=list(WINDOWS),
        figures=traffic_figures(deployments.traffic(deployment.name, since)),
        report=deployments.report(deployment.name, since),
        loop=loop,
        events=events,
    )


def _arms(services: LocalServices, policy: TrafficPolicy) -> list[dict[str, Any]]:
    """Each arm: its target, its share of traffic and the version it serves now."""
    try:
        served = {arm: v.version for arm, v in services.deployments.resolve(policy).items()}
        problem = ""
    except LooplineError as exc:  # an alias moved to a deleted version, say: show the policy anyway
        served, problem = {}, str(exc)
    total = sum(a.weight for a in policy.answering_arms)
    return [
        {
            "name": arm.name,
            "target": arm.target,
            "weight": arm.weight,
            "share": arm.weight / total if arm in policy.answering_arms else None,
            "role": "shadow" if arm is policy.shadow_arm else "answers",
            "version": served.get(arm.name),
            "problem": problem,
        }
        for arm in policy.arms
    ]


def _previous(revisions: Sequence[DeploymentRevision]) -> DeploymentRevision | None:
    """The revision a roll-back returns to."""
    return revisions[-2] if len(revisions) > 1 else None


def _may_change_traffic(services: LocalServices) -> bool:
    """Whether the user may roll back: what `Deployments.rollback` will check (maintainer on
    the operations project, which deployments belong to)."""
    return permits(lambda: services.access.require(OPERATIONS_PROJECT, Role.MAINTAINER))


def _loop(services: LocalServices, deployment: str) -> tuple[Loop | None, list[LoopEvent]]:
    """The deployment's retraining loop and its events, newest first; none when not declared."""
    try:
        loop = services.loops.get(deployment)
    except NotFound:
        return None, []
    return loop, list(reversed(services.loops.events(deployment)))


def traffic_figures(series: TrafficSeries) -> list[dict[str, Any]]:
    """Plotly figures of request rate, latency p50/p95/p99 and error rate, a line per arm and
    version; buckets without traffic count zero requests and have no latency or error rate."""
    lines: dict[tuple[str, int | None], dict[int, TrafficPoint]] = {}
    for point in series.points:
        lines.setdefault((point.arm, point.version), {})[point.at_ms] = point
    if not lines:
        return []
    first, last = series.points[0].at_ms, max(p.at_ms for p in series.points)
    starts = list(range(first, last + 1, series.bucket_ms))
    x = [when(at) for at in starts]
    seconds = series.bucket_ms / 1000
    mode = "lines+markers" if len(starts) <= 60 else "lines"
    rate, latency, errors = [], [], []
    for i, ((arm, version), points) in enumerate(
        sorted(lines.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))
    ):
        label = arm if version is None else f"{arm} v{version}"
        color = PALETTE[i % len(PALETTE)]
        found = [points.get(at) for at in starts]
        line = {"type": "scatter", "x": x, "mode": mode, "line": {"color": color}}
        answered = [p.requests if p else 0 for p in found]
        refused = [p.errors if p else 0 for p in found]
        rate.append(
            {**line, "name": label, "y": [n / seconds for n in answered], "customdata": answered,
             "hovertemplate": "%{y:.3g}/s: %{customdata} requests"},
        )  # fmt: skip
        errors.append(
            {**line, "name": label, "y": [_error_rate(p) for p in found], "customdata": refused,
             "hovertemplate": "%{y:.2%}: %{customdata} refused"},
        )  # fmt: skip
        for quantile, dash in QUANTILES:
            latency.append(
                {
                    **line,
                    "name": f"{label} {quantile}",
                    "line": {"color": color, "dash": dash},
                    "y": [getattr(p, f"latency_{quantile}_ms") if p else None for p in found],
                }
            )
    width = f"buckets of {_width(series.bucket_ms)}"
    return [
        _figure(f"Requests per second ({width})", rate, "requests/s"),
        _figure(f"Latency p50 (dotted), p95, p99 (dashed) ({width})", latency, "ms"),
        _figure(f"Error rate ({width})", errors, "refused / attempted"),
    ]


def _figure(title: str, traces: list[dict[str, Any]], unit: str) -> dict[str, Any]:
    return {
        "data": traces,
        "layout": {
            "title": {"text": title, "font": {"size": 13}},
            "height": 320,
            "xaxis": {"type": "date"},
            "yaxis": {"title": {"text": unit}, "rangemode": "tozero"},
            "legend": LEGEND,
            "margin": MARGIN,
        },
    }


def _error_rate(point: TrafficPoint | None) -> float | None:
    attempts = point.requests + point.errors if point else 0
    return point.errors / attempts if point and attempts else None


def _width(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms / 1000:g} s"
