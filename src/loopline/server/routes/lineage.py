"""The lineage graph: from datasets through runs and model versions to deployments."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from loopline.server.deps import Backend, Caller
from loopline.server.encoding import json_response

router = APIRouter(tags=["lineage"])
Text = Annotated[str, Query(min_length=1, max_length=256)]


@router.get("/lineage")
def graph(
    b: Backend, who: Caller, kind: Text, key: Text, max_depth: Annotated[int, Query(ge=0, le=100)] = 20
) -> Response:
    """Everything upstream and downstream of the node (`kind`, `key`)."""
    return json_response(b.services(who).lineage.graph((kind, key), max_depth).to_dict())


@router.get("/lineage/downstream")
def downstream(b: Backend, who: Caller, kind: Text, key: Text, of_kind: Text) -> Response:
    """The nodes of kind `of_kind` downstream of (`kind`, `key`)."""
    found: list[Any] = b.services(who).lineage.downstream((kind, key), of_kind)
    return json_response(found)


@router.get("/lineage/models")
def models_trained_on(b: Backend, who: Caller, dataset_digest: Text) -> Response:
    """The model versions trained on the dataset with this content hash."""
    found = b.services(who).lineage.models_trained_on(dataset_digest)
    return json_response([{"model": model, "version": version} for model, version in found])
