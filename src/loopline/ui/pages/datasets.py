"""Datasets: the newest version of each, and a dataset's versions, schema, column profiles,
the diff of two versions and the validations recorded on the runs that read a version."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from loopline.core.datasets import DatasetVersion, DataValidation
from loopline.core.entities import Run
from loopline.core.errors import NotFound, PermissionDenied
from loopline.profiling.diff import DatasetDiff
from loopline.profiling.profile import (
    FINE_BINS,
    OTHER,
    CategoricalProfile,
    ColumnProfile,
    fine_range,
)
from loopline.ui.deps import Viewer
from loopline.ui.rendering import number, render
from loopline.wiring.local import LocalServices

router = APIRouter()
HISTOGRAM_BARS = 40  # divides FINE_BINS: each bar sums FINE_BINS // HISTOGRAM_BARS fine bins
TOP_CATEGORIES = 20
MAX_PROFILES = 200  # column charts on one page; the schema table still lists every column
MAX_READERS = 50  # runs that read a version whose validations are looked up
BAR_COLOUR = "#1f77b4"


@dataclass(frozen=True)
class Reader:
    """A run that read the version, and the validations recorded on it."""

    run: Run
    validations: list[DataValidation]


@router.get("/datasets")
def datasets_list(request: Request, services: Viewer) -> Response:
    """Every dataset with its newest version: rows, columns, size and when it was made."""
    return render(request, "datasets.html", datasets=services.datasets.list_datasets())


@router.get("/datasets/{name}")
def dataset_page(
    request: Request,
    services: Viewer,
    name: str,
    version: Annotated[int | None, Query(ge=1)] = None,
    old: Annotated[int | None, Query(ge=1)] = None,
    new: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """A dataset: its versions, the shown version's schema and column profiles (`version`,
    the newest by default), the diff of versions `old` and `new` (by default the shown
    version against the one before it) and the validations of the runs that read it."""
    data = services.datasets
    versions = data.versions(name)
    by_number = {v.version: v for v in versions}
    shown = _pick(by_number, version, versions[-1])
    profile = data.reference_profile(shown)
    summaries = {c["name"]: c for c in shown.columns}
    profiles = [
        (summaries.get(column, {"name": column}), _figure(found))
        for column, found in list(profile.columns.items())[:MAX_PROFILES]
    ]
    problem: str | None = None
    if old is None and new is None:
        earlier = [v.version for v in versions if v.version < shown.version]
        old, new = (earlier[-1], shown.version) if earlier else (None, None)
    diff: DatasetDiff | None = None
    if old is not None and new is not None:
        diff = data.diff(_pick(by_number, old, shown), _pick(by_number, new, shown))
    elif old is not None or new is not None:
        problem = "choose both an old and a new version to compare"
    readers, hidden = _readers(services, shown)
    return render(
        request,
        "dataset.html",
        name=shown.name,
        versions=list(reversed(versions)),
        shown=shown,
        profiles=profiles,
        profiled=len(profile.columns),
        diff=diff,
        old=old,
        new=new,
        problem=problem,
        readers=readers,
        hidden_readers=hidden,
    )


def _pick(
    by_number: dict[int, DatasetVersion], wanted: int | None, default: DatasetVersion
) -> DatasetVersion:
    """Version `wanted` of the dataset (`default` when None); NotFound names those there are."""
    if wanted is None:
        return default
    if wanted not in by_number:
        there = ", ".join(str(n) for n in sorted(by_number))
        raise NotFound(f"dataset {default.name!r} has no version {wanted}; its versions are {there}")
    return by_number[wanted]


def _readers(services: LocalServices, version: DatasetVersion) -> tuple[list[Reader], int]:
    """The runs that recorded this version's rows as an input, newest first, with their
    validations; and how many more the user may not see. A version does not record the run
    that produced it, so these are the validations reachable from it."""
    graph = services.lineage.graph(("dataset", version.digest), max_depth=1)
    edges = sorted(
        (e for e in graph.edges if e.src_key == version.digest and e.dst_kind == "run"),
        key=lambda e: -e.created_at,
    )
    run_ids = list(dict.fromkeys(e.dst_key for e in edges))[:MAX_READERS]
    readers: list[Reader] = []
    hidden = 0
    for run_id in run_ids:
        try:
            run = services.tracking.get_run(run_id)
            readers.append(Reader(run, services.datasets.validations(run_id)))
        except (NotFound, PermissionDenied):  # deleted, or in a project the user cannot see
            hidden += 1
    return readers, hidden


def _figure(column: ColumnProfile) -> dict[str, Any] | None:
    """A small bar chart of a column's profile: category frequencies, the counts of a few
    distinct numbers, or a histogram; None when the column holds no values."""
    if not column.count:
        return None
    if isinstance(column, CategoricalProfile):
        top = [(k, v) for k, v in column.frequencies.items() if k != OTHER][:TOP_CATEGORIES]
        rest = column.count - sum(v for _, v in top)
        # plotly reads tags in text: category values (user data) go to it escaped
        labels = [html.escape(k) for k, _ in top] + (["(other)"] if rest > 0 else [])
        counts = [v for _, v in top] + ([rest] if rest > 0 else [])
        return _bars(labels, counts, {"type": "category"})
    if 0 < len(column.distinct) <= HISTOGRAM_BARS:
        labels = [number(float(v)) for v in column.distinct]
        return _bars(labels, [int(n) for n in column.distinct_counts], {"type": "category"})
    low, top_edge = fine_range(column.minimum, column.maximum)
    counts = column.fine_counts.reshape(HISTOGRAM_BARS, FINE_BINS // HISTOGRAM_BARS).sum(axis=1)
    edges = np.linspace(low, top_edge, HISTOGRAM_BARS + 1)
    centres = [float(c) for c in (edges[:-1] + edges[1:]) / 2]
    figure = _bars(centres, [int(n) for n in counts], {"type": "linear"})
    figure["data"][0]["width"] = float(edges[1] - edges[0])
    return figure


def _bars(x: list[Any], y: list[int], xaxis: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": [
            {
                "type": "bar",
                "x": x,
                "y": y,
                "marker": {"color": BAR_COLOUR},
                "hovertemplate": "%{x}: %{y}<extra></extra>",
            }
        ],
        "layout": {
            "height": 180,
            "margin": {"l": 45, "r": 8, "t": 8, "b": 40},
            "bargap": 0.05,
            "xaxis": {**xaxis, "automargin": True},
            "yaxis": {"rangemode": "tozero"},
        },
    }
