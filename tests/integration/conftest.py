"""Fixtures of the integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, Databases
from tests.integration.loop_world import World, make_world

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def world(store_url: str, tmp_path: Path) -> Iterator[World]:
    """The loop's world with classes 0 and 1."""
    yield from make_world(store_url, tmp_path, (0, 1))


@pytest.fixture(params=[("no", "yes"), (False, True)], ids=["text", "boolean"])
def labelled_world(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    """The loop's world with text or boolean classes."""
    yield from make_world(store_url, tmp_path, request.param)


@pytest.fixture(params=["sqlite", "redis", *(["postgres"] if "postgres" in BACKENDS else [])])
def online(request: pytest.FixtureRequest, databases: Databases, tmp_path: Path) -> Iterator[str | None]:
    """Each online store: SQLite (None, the default), the real Redis (own key prefix), PostgreSQL."""
    if request.param == "sqlite":
        yield None  # the default: SQLite beside the artifact folder
        return
    if request.param == "postgres":
        with databases.new("postgres", tmp_path, migrated=False) as url:
            yield url
        return
    prefix = f"loopline-test-{uuid.uuid4().hex[:8]}"
    yield f"{REDIS}#{prefix}"
    import redis

    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()
