"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.loop_world import World, make_world


@pytest.fixture
def world(store_url: str, tmp_path: Path) -> Iterator[World]:
    """The loop's world with classes 0 and 1."""
    yield from make_world(store_url, tmp_path, (0, 1))


@pytest.fixture(params=[("no", "yes"), (False, True)], ids=["text", "boolean"])
def labelled_world(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    """The loop's world with text or boolean classes."""
    yield from make_world(store_url, tmp_path, request.param)
