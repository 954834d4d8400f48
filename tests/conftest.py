"""Shared fixtures: real stores on SQLite and, when configured, on PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from loopline.artifacts import BlobStore
from loopline.client.connection import ServerConnection
from loopline.client.services import RemoteServices
from loopline.core.access import Role
from loopline.core.entities import Principal
from loopline.services import Registry, Services, Tracking
from loopline.store import MetadataStore, open_metadata_store
from loopline.tracking.tracker import Tracker
from loopline.wiring.backends import Backends, bootstrap_admin, local_owner
from loopline.wiring.local import LocalServices

POSTGRES_URL = os.environ.get("LOOPLINE_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]


def pytest_report_header() -> list[str]:
    if POSTGRES_URL:
        stores = f"loopline: store tests run on sqlite and postgres ({POSTGRES_URL})"
    else:
        stores = "loopline: store tests run on sqlite only; set LOOPLINE_TEST_POSTGRES_URL to add postgres"
    chromium = os.environ.get("LOOPLINE_CHROMIUM", "/usr/bin/chromium")
    if Path(chromium).exists():
        browser = f"loopline: browser tests run in {chromium}"
    else:
        browser = (
            f"loopline: browser tests are skipped: no Chromium at {chromium} (apt-get install -y chromium)"
        )
    return [stores, browser]


class Databases:
    """Brand-new databases for tests: a SQLite file, or a PostgreSQL database of its own.

    A migrated one is a copy of a template migrated once per session: migrating PostgreSQL
    costs about 0.3 s of DDL, copying its template 0.07 s. The migrations themselves are
    tested on empty databases (`migrated=False`)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._templates: dict[str, str] = {}
        self._admin = (
            create_engine(_driver_url(POSTGRES_URL), isolation_level="AUTOCOMMIT") if POSTGRES_URL else None
        )

    @contextlib.contextmanager
    def new(self, backend: str, directory: Path, migrated: bool = True) -> Iterator[str]:
        """The URL of a new database, empty or at the newest schema."""
        if backend == "sqlite":
            path = directory / "loopline.db"
            if migrated:
                shutil.copyfile(self._template("sqlite"), path)
            yield f"sqlite:///{path}"
            return
        name = f"loopline_test_{uuid.uuid4().hex[:12]}"
        self._create(name, self._template("postgres") if migrated else "template0")
        try:
            yield _postgres_url(name)
        finally:
            self._drop(name)

    def close(self) -> None:
        if "postgres" in self._templates:
            self._drop(self._templates["postgres"])
        if self._admin is not None:
            self._admin.dispose()

    def _template(self, backend: str) -> str:
        """The template's file (SQLite) or database name (PostgreSQL), migrated on first use."""
        if backend not in self._templates:
            if backend == "sqlite":
                template = str(self._directory / "template.db")
                url = f"sqlite:///{template}"
            else:
                template = f"loopline_template_{uuid.uuid4().hex[:12]}"
                self._create(template, "template0")
                url = _postgres_url(template)
            open_metadata_store(url).close()  # closed: a template must have no connections
            self._templates[backend] = template
        return self._templates[backend]

    def _create(self, name: str, template: str) -> None:
        assert self._admin is not None
        with self._admin.connect() as conn:
            # WAL_LOG (PostgreSQL 15+) copies a small database without a checkpoint
            fast = conn.dialect.server_version_info >= (15,)  # type: ignore[operator]
            strategy = " STRATEGY WAL_LOG" if fast else ""
            conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {template}{strategy}"))

    def _drop(self, name: str) -> None:
        assert self._admin is not None
        with self._admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def _driver_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _postgres_url(database: str) -> str:
    assert POSTGRES_URL is not None
    return make_url(_driver_url(POSTGRES_URL)).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    opened = Databases(tmp_path_factory.mktemp("databases"))
    yield opened
    opened.close()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, databases: Databases, tmp_path: Path) -> Iterator[str]:
    """A new database at the newest schema."""
    with databases.new(request.param, tmp_path) as url:
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


# The longest modules, handed out first (xdist's --dist=loadfile follows the collection's
# order): started last, one of them would keep a worker busy after the other has finished.
LONGEST_FIRST = ("test_readme.py", "test_mlflow_import.py", "test_serving_traffic.py", "test_demo.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest modules first; the server's own tests cover PostgreSQL, and the
    both-modes suites run remote on SQLite."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order kept otherwise
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

    backends = Backends(store, blobs)
    secret = bootstrap_admin(backends)
    with running_api(backends) as url:
        opened = ServerConnection(url, secret)
        yield opened
        opened.close()


@pytest.fixture
def services(store: MetadataStore, blobs: BlobStore, connection: ServerConnection | None) -> Services:
    """Every service: in process as the local owner, or through the server as its administrator."""
    if connection is not None:
        return RemoteServices(connection)
    return Backends(store, blobs).services(local_owner())


@pytest.fixture
def service(services: Services) -> Tracking:
    return services.tracking


@pytest.fixture
def registry(services: Services) -> Registry:
    return services.registry


@pytest.fixture
def tracker(service: Tracking, registry: Registry) -> Iterator[Tracker]:
    opened = Tracker(service, registry=registry)
    yield opened
    opened.close()


def services_of(store: MetadataStore, principal: Principal) -> LocalServices:
    """The services on `store` acting as `principal`, for those that keep no blobs."""
    return Backends(store, BlobStore(tempfile.mkdtemp(prefix="loopline-no-blobs-"))).services(principal)


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


def wait_until(condition: Callable[[], object], timeout: float = 30.0) -> None:
    """Poll `condition` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still false after {timeout} s"
        time.sleep(0.05)
