"""Shared fixtures: real stores on SQLite and, when configured, on PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from loopline.artifacts import BlobStore
from loopline.backends import Backends, local_owner
from loopline.client.connection import ServerConnection
from loopline.client.registry import RemoteRegistryService
from loopline.client.tracking import RemoteTrackingService
from loopline.core.access import Role
from loopline.governance.access import bootstrap_admin
from loopline.registry.service import RegistryService
from loopline.store import MetadataStore, open_metadata_store
from loopline.tracking.service import TrackingService
from loopline.tracking.tracker import Tracker

POSTGRES_URL = os.environ.get("LOOPLINE_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]


def pytest_report_header() -> str:
    if POSTGRES_URL:
        return f"loopline: store tests run on sqlite and postgres ({POSTGRES_URL})"
    return "loopline: store tests run on sqlite only; set LOOPLINE_TEST_POSTGRES_URL to add postgres"


def _postgres_schema_url(schema: str) -> str:
    assert POSTGRES_URL is not None
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def new_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of a brand-new, empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'loopline.db'}"
        return
    assert POSTGRES_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield _postgres_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with new_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[MetadataStore]:
    opened = open_metadata_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    return BlobStore(str(tmp_path / "artifacts"))


@pytest.fixture
def mode(request: pytest.FixtureRequest) -> str:
    """local: services in process; remote: the same services through a real server. A
    module with `BOTH_MODES = True` runs each test that uses them in both."""
    return str(getattr(request, "param", "local"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if getattr(metafunc.module, "BOTH_MODES", False) and "mode" in metafunc.fixturenames:
        metafunc.parametrize("mode", ["local", "remote"], indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The server's own tests cover PostgreSQL; the both-modes suites run remote on SQLite."""
    deselected = [
        item
        for item in items
        if getattr(item, "callspec", None) is not None
        and item.callspec.params.get("mode") == "remote"
        and item.callspec.params.get("store_url") == "postgres"
    ]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


@pytest.fixture
def connection(mode: str, store: MetadataStore, blobs: BlobStore) -> Iterator[ServerConnection | None]:
    """In remote mode: a connection, as the bootstrap administrator, to a server on this store."""
    if mode == "local":
        yield None
        return
    from tests.integration.api_helpers import running_api

    secret = bootstrap_admin(store)
    with running_api(Backends(store, blobs)) as url:
        opened = ServerConnection(url, secret)
        yield opened
        opened.close()


@pytest.fixture
def service(store: MetadataStore, blobs: BlobStore, connection: ServerConnection | None) -> TrackingService:
    if connection is not None:
        return RemoteTrackingService(connection)
    return Backends(store, blobs).tracking(local_owner())


@pytest.fixture
def registry(store: MetadataStore, blobs: BlobStore, connection: ServerConnection | None) -> RegistryService:
    if connection is not None:
        return RemoteRegistryService(connection)
    return Backends(store, blobs).registry(local_owner())


@pytest.fixture
def tracker(service: TrackingService, registry: RegistryService) -> Iterator[Tracker]:
    opened = Tracker(service, registry=registry)
    yield opened
    opened.close()


def grant(store: MetadataStore, project: str, **roles: Role) -> None:
    """Give each named user (created if new) a role on `project`."""
    known = {u.name for u in store.access.users()}
    for user, role in roles.items():
        if user not in known:
            store.access.add_user(user, False, 0)
        store.access.set_role(project, user, role)


def seeded_random() -> random.Random:
    """Seeded randomness; LOOPLINE_TEST_SEED sweeps other seeds."""
    return random.Random(int(os.environ.get("LOOPLINE_TEST_SEED", "20261122")))


@pytest.fixture
def rng() -> random.Random:
    return seeded_random()


Invoke = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Invoke:
    """Runs `loopline ...` in-process against the test store; returns (exit code, stdout, stderr)."""
    from loopline.cli.main import run

    def invoke(*args: str) -> tuple[int, str, str]:
        code = run(["--store-uri", store_url, "--artifacts-uri", str(tmp_path / "artifacts"), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
