"""The feature store: every feature view with the freshness of its online values, the
entities; and a view's definition, versions, the training sets built from it (with the
models made from those) and the deployments that serve it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from loopline.core.datasets import DatasetVersion
from loopline.core.errors import LooplineError, NotFound, PermissionDenied
from loopline.core.features import Entity, FeatureRef, RegisteredView
from loopline.core.lineage import LineageGraph, Node
from loopline.core.registry import Deployment
from loopline.core.traffic import TrafficPolicy
from loopline.feature_store.service import FeatureService
from loopline.services.features import Freshness
from loopline.ui.deps import Viewer
from loopline.ui.rendering import render
from loopline.wiring.local import LocalServices

router = APIRouter()
LINEAGE_VERSIONS = 50  # the newest versions whose training sets are looked up
LINEAGE_DEPTH = 3  # feature view -> dataset -> run -> model version
NEVER = "never materialized"


@dataclass(frozen=True)
class FreshnessShown:
    """A view version's freshness as the page writes it."""

    state: str  # "fresh", "stale" or NEVER
    age: str
    ratio: str  # age / TTL, "" without a TTL
    newest_ms: int | None  # the newest event time materialized
    watermark_ms: int | None  # materialized up to


@dataclass(frozen=True)
class ViewRow:
    """A feature view's newest version and its freshness (None when it could not be read)."""

    registered: RegisteredView
    freshness: FreshnessShown | None


@dataclass(frozen=True)
class TrainingSet:
    """A dataset version built from a view version, and the model versions made from it."""

    view_version: int
    dataset: DatasetVersion
    href: str
    built_at: int
    models: list[tuple[str, str]]  # (text, href) of model versions trained on it
    evaluated: list[tuple[str, str]]  # (text, href) of model versions evaluated on it
    hidden_models: int  # model versions downstream that the user may not see


@dataclass(frozen=True)
class Serving:
    """A deployment whose policy declares features of the view."""

    deployment: Deployment
    refs: list[str]
    versions: list[int]  # the versions it serves: pinned with @N, or else the newest


def span(seconds: float) -> str:
    """A duration in its two largest units, e.g. 3d 04h, 12m 05s, 30d."""
    if seconds < 0:
        return f"-{span(-seconds)}"
    whole = round(seconds)
    for size, unit, rest, rest_unit in ((86_400, "d", 3_600, "h"), (3_600, "h", 60, "m"), (60, "m", 1, "s")):
        if whole >= size:
            more = whole % size // rest
            return f"{whole // size}{unit}" + (f" {more:02d}{rest_unit}" if more else "")
    return f"{whole}s"


def shown_freshness(found: Freshness) -> FreshnessShown:
    """`found` as text: its state, age and age against the TTL."""
    age, ratio = found.age_s, found.age_ratio
    state = NEVER if found.newest_us is None else "stale" if found.stale else "fresh"
    return FreshnessShown(
        state=state,
        age="" if age is None else span(age),
        ratio="" if ratio is None else f"{ratio:.2f}" if ratio < 100 else f"{ratio:,.0f}",
        newest_ms=None if found.newest_us is None else found.newest_us // 1000,
        watermark_ms=None if found.watermark_us is None else found.watermark_us // 1000,
    )


def _segment(value: object) -> str:
    """`value` as one path segment of a URL: nothing in it can start another segment."""
    return quote(str(value), safe="")


def _freshness(features: FeatureService, refs: Sequence[str] | None) -> tuple[dict[str, FreshnessShown], str]:
    """The freshness of each view version in `refs` (None: the newest version of every view)
    by `name@N`, and why it could not be read ("" when it could). The online store it opens
    is closed again: the page's services end with the request."""
    try:
        return {f.view: shown_freshness(f) for f in features.freshness(refs or ())}, ""
    except LooplineError as exc:  # an online store that is misconfigured: the views still show
        return {}, f"the online store could not be read: {exc}"
    finally:
        features.close()


# the list of views -----------------------------------------------------------------------


@router.get("/features")
def features_list(request: Request, services: Viewer) -> Response:
    """Every feature view (its newest version) with its entities, features, TTL and how fresh
    its online values are; and every entity with its join keys."""
    features = services.features
    try:
        views, entities = features.views(), features.entities()
    except (PermissionDenied, NotFound):  # no role where the feature store lives: as other lists, none
        views, entities = [], []
    views.sort(key=lambda v: v.view.name)
    freshness, problem = _freshness(features, None) if views else ({}, "")
    return render(
        request,
        "features.html",
        rows=[ViewRow(v, freshness.get(v.ref)) for v in views],
        entities=sorted(entities, key=lambda e: e.name),
        used_by=_used_by(entities, views),
        freshness_problem=problem,
        span=span,
    )


def _used_by(entities: Sequence[Entity], views: Sequence[RegisteredView]) -> dict[str, list[str]]:
    """The names of the views (newest versions) of each entity."""
    return {e.name: [v.view.name for v in views if e.name in v.view.entities] for e in entities}


# one view --------------------------------------------------------------------------------


@router.get("/features/{name}")
def feature_view_page(
    request: Request,
    services: Viewer,
    name: str,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """A feature view: the definition and features of version `version` (the newest by
    default), every version with its freshness, the training sets built from the view and
    the deployments that declare its features."""
    features = services.features
    versions = sorted(features.versions(name), key=lambda v: v.version)
    newest = versions[-1]
    shown = _pick(versions, version)
    freshness, problem = _freshness(features, [v.ref for v in versions])
    training_sets, lineage_problem, unsearched = _training_sets(services, versions)
    return render(
        request,
        "feature_view.html",
        name=newest.view.name,
        shown=shown,
        newest=newest,
        versions=list(reversed(versions)),
        freshness=freshness,
        freshness_problem=problem,
        training_sets=training_sets,
        lineage_problem=lineage_problem,
        unsearched=unsearched,
        serving=_serving(services, newest),
        span=span,
    )


def _pick(versions: Sequence[RegisteredView], wanted: int | None) -> RegisteredView:
    """Version `wanted` of the view (the newest when None); NotFound names those there are."""
    if wanted is None:
        return versions[-1]
    for registered in versions:
        if registered.version == wanted:
            return registered
    there = ", ".join(str(v.version) for v in versions)
    raise NotFound(
        f"feature view {versions[-1].view.name!r} has no version {wanted}; its versions are {there}"
    )


def _training_sets(
    services: LocalServices, versions: Sequence[RegisteredView]
) -> tuple[list[TrainingSet], str, int]:
    """The dataset versions built from the view's newest versions (newest first) with the
    model versions made from them; why lineage could not be read ("" when it could); and how
    many older versions were not searched."""
    searched = list(reversed(versions))[:LINEAGE_VERSIONS]
    found: list[TrainingSet] = []
    try:
        for registered in searched:
            root: Node = ("feature_view", registered.ref)
            graph = services.lineage.graph(root, max_depth=LINEAGE_DEPTH)
            for edge in graph.edges:
                if (edge.src_kind, edge.src_key) != root or edge.dst_kind != "dataset":
                    continue
                trained, evaluated, hidden = _models(graph, ("dataset", edge.dst_key))
                for dataset in services.datasets.versions_with_digest(edge.dst_key):
                    href = f"/datasets/{_segment(dataset.name)}?version={dataset.version}"
                    found.append(
                        TrainingSet(
                            registered.version, dataset, href, edge.created_at, trained, evaluated, hidden
                        )
                    )
    except (PermissionDenied, NotFound) as exc:
        return [], str(exc), 0
    found.sort(key=lambda t: (-t.built_at, t.dataset.name, -t.dataset.version))
    return found, "", len(versions) - len(searched)


def _models(graph: LineageGraph, dataset: Node) -> tuple[list[tuple[str, str]], list[tuple[str, str]], int]:
    """(text, href) of the model versions trained on `dataset` (through a run that read it)
    and of those evaluated on it, and how many of them the user may not see."""
    runs = {
        (e.dst_kind, e.dst_key)
        for e in graph.edges
        if (e.src_kind, e.src_key) == dataset and e.dst_kind == "run"
    }
    trained = {
        (e.dst_kind, e.dst_key)
        for e in graph.edges
        if (e.src_kind, e.src_key) in runs and e.dst_kind == "model_version"
    }
    evaluated = {
        (e.dst_kind, e.dst_key)
        for e in graph.edges
        if (e.src_kind, e.src_key) == dataset and e.dst_kind == "model_version"
    } - trained
    hidden = sum(1 for node in trained | evaluated if not graph.nodes[node].label)
    return _model_links(graph, trained), _model_links(graph, evaluated), hidden


def _model_links(graph: LineageGraph, nodes: set[Node]) -> list[tuple[str, str]]:
    """(text, href) of each model version of `nodes`: a label lists those the user sees, as
    `model/version, model/version` (one content hash may be several versions)."""
    links: set[tuple[str, str]] = set()
    for node in nodes:
        for label in graph.nodes[node].label.split(", "):
            model, slash, version = label.rpartition("/")
            if slash and model:
                links.add((f"{model} v{version}", f"/models/{_segment(model)}/versions/{_segment(version)}"))
    return sorted(links)


def _serving(services: LocalServices, newest: RegisteredView) -> list[Serving]:
    """The deployments the user sees whose policy declares features of this view, with the
    version each serves (a ref without @N follows the newest)."""
    name = newest.view.name
    found: list[Serving] = []
    for deployment in sorted(services.deployments.list_all(), key=lambda d: d.name):
        try:
            declared = TrafficPolicy.from_dict(deployment.policy).features
        except LooplineError:  # an unreadable policy declares nothing this page can show
            continue
        refs: list[str] = []
        served: set[int] = set()
        for text in declared.refs if declared is not None else ():
            try:
                ref = FeatureRef.parse(text)
            except LooplineError:
                continue
            if ref.view == name:
                refs.append(text)
                served.add(ref.version if ref.version is not None else newest.version)
        if refs:
            found.append(Serving(deployment, refs, sorted(served)))
    return found
