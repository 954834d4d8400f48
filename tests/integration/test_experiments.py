from __future__ import annotations

import pytest

from loopline.core.errors import AlreadyExists, InvalidInput, NotFound
from loopline.store import MetadataStore, open_metadata_store
from loopline.tracking.service import TrackingService

BOTH_MODES = True  # local and through the server


def test_create_get_and_list(service: TrackingService) -> None:
    churn = service.create_experiment("churn", description="who leaves")
    service.create_experiment("fraud", project="risk")
    assert service.get_experiment("churn") == churn
    assert service.get_experiment(churn.id) == churn
    assert churn.created_by == service.principal.name
    assert [e.name for e in service.list_experiments()] == ["churn", "fraud"]
    assert [e.name for e in service.list_experiments("risk")] == ["fraud"]
    assert [p.name for p in service.list_projects()] == ["default", "risk"]


def test_names_are_unique_within_a_project_only(service: TrackingService) -> None:
    service.create_experiment("churn")
    with pytest.raises(AlreadyExists, match="'churn' already exists in project 'default'"):
        service.create_experiment("churn")
    assert service.create_experiment("churn", project="other").project == "other"


def test_get_or_create_returns_the_existing_experiment(service: TrackingService) -> None:
    first = service.get_or_create_experiment("churn")
    assert service.get_or_create_experiment("churn") == first


def test_unknown_and_invalid_experiments(service: TrackingService) -> None:
    with pytest.raises(NotFound, match="'nope' does not exist in project 'default'"):
        service.get_experiment("nope")
    with pytest.raises(NotFound, match="experiment 12345"):
        service.get_experiment(12345)
    with pytest.raises(InvalidInput, match="experiment name"):
        service.create_experiment("bad\udcffname")


def test_found_experiments_are_remembered_but_a_miss_is_not(store_url: str, store: MetadataStore) -> None:
    assert store.experiments.find_experiment("default", "churn") is None
    other = open_metadata_store(store_url)  # another process
    try:
        created = other.experiments.create_experiment("default", "churn", "", "bob")
    finally:
        other.close()
    assert store.experiments.find_experiment("default", "churn") == created
    assert store.experiments.get_experiment(created.id) == created
