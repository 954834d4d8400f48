"""The feature store through a real team server: definitions, point-in-time training sets
(the same rows as in process), training sets as dataset versions with their lineage,
materialization and online lookups, through the client, the SDK and the CLI. The service's
roles and audit trail hold over HTTP, a view reads files only under the server's data roots,
and bad requests get a 4xx that names the view, column or path."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest

import loopline as ll
from loopline import _sdk
from loopline.artifacts import BlobStore
from loopline.cli.main import run
from loopline.client.connection import ServerConnection
from loopline.client.services import RemoteServices
from loopline.core.access import Role
from loopline.core.errors import InvalidInput, NotFound, PermissionDenied
from loopline.core.features import FeatureView
from loopline.server.options import ServerOptions
from loopline.services import Applied, Features
from loopline.store import MetadataStore
from loopline.wiring.backends import Backends, bootstrap_admin, local_owner
from tests.conftest import wait_until
from tests.integration.api_helpers import running_api
from tests.integration.test_features_offline import CUSTOMER, _stats, _t, _view

STATS = ["customer_stats:spend", "customer_stats:orders"]


@dataclass
class FeatureServer:
    """A server whose data root is `root`, its store's owner's services, and a token per user."""

    url: str
    backends: Backends  # unconfined, as the store's owner works on its own machine
    tokens: dict[str, str]
    root: Path
    outside: Path

    @property
    def local(self) -> Features:
        return self.backends.services(local_owner()).features

    def http(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=60)


@pytest.fixture
def server(store: MetadataStore, blobs: BlobStore, tmp_path: Path) -> Iterator[FeatureServer]:
    root, outside = tmp_path / "data", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    backends = Backends(store, blobs)
    tokens = {"admin": bootstrap_admin(backends) or ""}
    access = backends.services(local_owner()).access
    for user, role in (("vera", Role.VIEWER), ("alice", Role.EDITOR)):
        access.create_user(user)
        tokens[user] = access.create_token(user)[1]
        access.set_role("default", user, role)
    with running_api(backends, ServerOptions(data_roots=(root,))) as url:
        yield FeatureServer(url, backends, tokens, root, outside)


Remote = Callable[[str], Features]


@pytest.fixture
def remote(server: FeatureServer) -> Iterator[Remote]:
    """The feature store through the server, as a user."""
    with contextlib.ExitStack() as stack:

        def features(user: str) -> Features:
            connection = ServerConnection(server.url, server.tokens[user])
            stack.callback(connection.close)
            return RemoteServices(connection).features

        yield features


def _rows() -> pd.DataFrame:
    times = ["2024-01-04", "2024-01-05 12:00", "2024-01-11", "2024-01-03", "2024-01-03", "2023-12-31"]
    return pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 3, 1],
            "event_timestamp": [_t(t) for t in times],
            "label": [0, 1, 0, 1, 0, 1],
        }
    )


def _error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["message"]


def test_definitions_through_the_client(server: FeatureServer, remote: Remote) -> None:
    alice, vera = remote("alice"), remote("vera")
    source = _stats(server.root)
    assert alice.apply([CUSTOMER], [_view(source)]) == Applied(
        {"customer": "applied"}, {"customer_stats@1": "created"}
    )
    assert alice.apply([CUSTOMER], [_view(source)]).views == {"customer_stats@1": "unchanged"}
    shaped = _view(
        source, transform="SELECT * REPLACE (spend * 2 AS spend) FROM source", ttl_s="30d",
        description="doubled", tags={"team": "growth"},
    )  # fmt: skip
    assert alice.apply([], [shaped]).views == {"customer_stats@2": "new version"}

    assert vera.entities() == [CUSTOMER]
    assert [v.ref for v in vera.views()] == ["customer_stats@2"]
    pinned = vera.view("customer_stats@1")
    assert (pinned.view, pinned.join_keys, pinned.created_by) == (_view(source), ("customer_id",), "alice")
    assert vera.view("customer_stats").view == shaped
    assert vera.versions("customer_stats") == server.local.versions("customer_stats")
    with pytest.raises(NotFound, match="'nope'"):
        vera.view("nope")
    with pytest.raises(InvalidInput, match="the version after @ is a number"):
        vera.view("customer_stats@latest")


def test_historical_through_the_server_equals_the_local_result(
    server: FeatureServer, remote: Remote, tmp_path: Path
) -> None:
    clicks = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "at": pd.to_datetime(["2024-01-02 10:00", "2024-01-02 11:00"]),
            "clicks": [7, 9],
        }
    )
    clicks.to_csv(server.root / "clicks.csv", index=False)
    click_view = _view(
        server.root / "clicks.csv", name="clicks", event_time="at", created_time=None,
        features=(("clicks", "int64"),),
    )  # fmt: skip
    server.local.apply([CUSTOMER], [_view(_stats(server.root)), click_view])
    alice = remote("alice")
    features = [*STATS, "clicks:clicks"]

    expected = server.local.get_historical(_rows(), features)
    found = alice.get_historical(_rows(), features)
    assert found is not None and expected is not None
    # the same columns, types and values (the Parquet file on the way marks some columns not null)
    assert found.cast(expected.schema).equals(expected), (found.to_pandas(), expected.to_pandas())
    assert found.column("spend").to_pylist()[:4] == [10.0, 50.0, 55.0, 20.0]

    output = tmp_path / "client" / "training.parquet"  # written here, on the client's side
    assert alice.get_historical(_rows(), features, full_names=True, output=output) is None
    named = server.local.get_historical(_rows(), features, full_names=True)
    assert named is not None and pq.read_table(output).cast(named.schema).equals(named)

    _rows().to_parquet(tmp_path / "rows.parquet")  # rows from a file of the client
    from_file = alice.get_historical(tmp_path / "rows.parquet", ["customer_stats:*"])
    assert from_file is not None and from_file.column("orders").to_pylist()[:4] == [1, 5, 5, 2]


def test_a_training_set_through_the_server_is_a_dataset_with_its_lineage(
    server: FeatureServer, remote: Remote, store: MetadataStore
) -> None:
    server.local.apply([CUSTOMER], [_view(_stats(server.root))])
    rows = pd.DataFrame({"customer_id": [1, 2], "event_timestamp": [_t("2024-01-11"), _t("2024-01-03")]})
    version = remote("alice").register_training_set(
        "churn-training", rows, ["customer_stats:spend"], description="through the server"
    )
    assert (version.name, version.version, version.rows) == ("churn-training", 1, 2)
    assert version.description == "through the server"
    edges = store.lineage.edges_touching([("dataset", version.digest)])
    assert [(e.src_kind, e.src_key) for e in edges] == [("feature_view", "customer_stats@1")]
    datasets = server.backends.services(local_owner()).datasets
    stored = datasets.read(datasets.get("churn-training"))
    assert stored.column("spend").to_pylist() == [55.0, 20.0]
    with pytest.raises(PermissionDenied):  # a viewer may not store a dataset (nor upload rows)
        remote("vera").register_training_set("churn-training", rows, ["customer_stats:spend"])


def test_materialize_and_look_up_through_the_server(server: FeatureServer, remote: Remote) -> None:
    server.local.apply([CUSTOMER], [_view(_stats(server.root))])
    alice, vera = remote("alice"), remote("vera")
    first = alice.materialize("customer_stats", end=datetime(2024, 2, 1, tzinfo=UTC))
    assert (first.view, first.since_us, first.keys_written) == ("customer_stats@1", None, 2)
    assert first.until_us == int(datetime(2024, 2, 1, tzinfo=UTC).timestamp() * 1_000_000)
    again = alice.materialize("customer_stats@1", end=datetime(2024, 2, 1, tzinfo=UTC))
    assert (again.since_us, again.keys_written) == (first.until_us, 0)

    found = vera.get_online({"customer_id": [1, 2, 3]}, STATS)
    assert found == {"customer_id": [1, 2, 3], "spend": [55.0, 20.0, None], "orders": [5, 2, None]}
    assert found == server.local.get_online({"customer_id": [1, 2, 3]}, STATS)
    named = vera.get_online({"customer_id": [2]}, "customer_stats:spend", full_names=True)
    assert named == {"customer_id": [2], "customer_stats__spend": [20.0]}
    (fresh,) = vera.freshness(["customer_stats"])
    (local,) = server.local.freshness(["customer_stats"])
    assert (fresh.view, fresh.newest_us, fresh.watermark_us) == (
        "customer_stats@1",
        local.newest_us,
        first.until_us,
    )
    assert not fresh.stale and fresh.ttl_s is None and fresh.age_s > 0  # no TTL: never expires


def test_roles_and_the_audit_trail_hold_over_http(server: FeatureServer, remote: Remote) -> None:
    source = _stats(server.root)
    definitions = {"entities": [CUSTOMER.to_dict()], "feature_views": [_view(source).to_dict()]}
    with server.http("vera") as vera, server.http(None) as anonymous, server.http("alice") as alice:
        assert vera.post("/features/apply", json=definitions).status_code == 403
        assert anonymous.post("/features/apply", json=definitions).status_code == 401
        assert anonymous.get("/features/views").status_code == 401
        assert alice.post("/features/apply", json=definitions).status_code == 200
        refused = vera.post("/features/views/customer_stats/materialize", json={})
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "permission_denied")
        assert anonymous.post("/features/views/customer_stats/materialize", json={}).status_code == 401
        done = alice.post("/features/views/customer_stats/materialize", json={"end": "2024-02-01T00:00:00Z"})
        assert done.status_code == 200 and done.json()["keys_written"] == 2
        assert vera.get("/features/views/customer_stats@1").json()["view"]["source"] == str(source)
    with pytest.raises(PermissionDenied):
        remote("vera").apply([CUSTOMER], [_view(source)])
    with pytest.raises(PermissionDenied):
        remote("vera").materialize("customer_stats")

    audit = server.backends.services(local_owner()).audit
    found = {(e.action, e.target, e.actor) for e in audit.entries(action="feature")}
    assert found == {
        ("feature_entity.apply", "entity:customer", "alice"),
        ("feature_view.apply", "feature_view:customer_stats@1", "alice"),
        ("feature_view.materialize", "feature_view:customer_stats@1", "alice"),
    }


def _secret(server: FeatureServer) -> Path:
    """A file of the server outside its data root, shaped like a feature source."""
    path = server.outside / "secret.parquet"
    _stats(server.outside).rename(path)
    return path


def test_a_view_reads_files_only_under_the_data_root(server: FeatureServer, remote: Remote) -> None:
    alice = remote("alice")
    secret = _secret(server)
    (server.root / "link.parquet").symlink_to(secret)
    for source, why in [
        (str(secret), "outside the folders"),
        (f"{server.root}/../outside/secret.parquet", "outside the folders"),
        (f"{server.outside}/*.parquet", "outside the folders"),
        ("outside/secret.parquet", "give an absolute path"),
        (str(server.root / "link.parquet"), "leads through a link"),
    ]:
        with pytest.raises(InvalidInput, match=why) as refused:
            alice.apply([CUSTOMER], [_view(Path(source))])
        assert "customer_stats" in str(refused.value) and source in str(refused.value)
    warehouse = _sqlite_view(server)
    with pytest.raises(InvalidInput, match="must be a database server"):
        alice.apply([CUSTOMER], [warehouse])
    assert server.local.views() == [] and server.local.entities() == []  # nothing half-applied

    with server.http("alice") as http:
        definitions = {"entities": [CUSTOMER.to_dict()], "feature_views": [_view(secret).to_dict()]}
        status, message = _error(http.post("/features/apply", json=definitions))
        assert status == 400 and str(secret) in message and "customer_stats" in message

    # A view its owner applied on the store itself: the server still reads none of its files.
    server.local.apply([CUSTOMER], [_view(secret)])
    assert server.local.get_historical(_rows(), STATS) is not None  # the owner's own machine
    with pytest.raises(InvalidInput, match="outside the folders") as refused:
        alice.get_historical(_rows(), STATS)
    assert "customer_stats@1" in str(refused.value) and str(secret) in str(refused.value)
    with pytest.raises(InvalidInput, match="outside the folders"):
        alice.materialize("customer_stats")
    with pytest.raises(InvalidInput, match="outside the folders"):
        alice.register_training_set("stolen", _rows(), STATS)

    # Dataset versions are the server's own data: a view may read them.
    datasets = server.backends.services(local_owner()).datasets
    datasets.register("stats", pd.read_parquet(secret))
    assert alice.apply([], [_view(Path("datasets:/stats@1"))]).views == {"customer_stats@2": "new version"}
    found = alice.get_historical(_rows(), STATS)
    assert found is not None and found.column("spend").to_pylist()[:4] == [10.0, 50.0, 55.0, 20.0]


def _sqlite_view(server: FeatureServer) -> FeatureView:
    """A view over a SQLite file of the server: its query could attach any other file."""
    import sqlite3

    database = server.root / "warehouse.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE stats (customer_id INTEGER, event_ts TEXT, spend REAL)")
    return _view(
        Path("ignored"), source=f"sqlite:///{database}", query="SELECT * FROM stats", created_time=None,
        features=(("spend", "float64"),),
    )  # fmt: skip


def test_bad_requests_get_a_4xx_naming_the_view_and_column(server: FeatureServer, remote: Remote) -> None:
    server.local.apply([CUSTOMER], [_view(_stats(server.root))])
    alice = remote("alice")
    with pytest.raises(NotFound, match="feature view customer_stats@1 has no feature 'nope'"):
        alice.get_historical(_rows(), ["customer_stats:nope"])
    with pytest.raises(
        InvalidInput, match="no column 'customer_id', the join key of feature view customer_stats@1"
    ):
        alice.get_historical(_rows().rename(columns={"customer_id": "id"}), STATS)
    nulls = _rows().assign(customer_id=pd.array([1, None, 1, 2, 3, 1], dtype="Int64"))
    with pytest.raises(InvalidInput, match="column 'customer_id' is null at row 1"):
        alice.get_historical(nulls, STATS)
    with pytest.raises(InvalidInput, match="no time column 'at'"):
        alice.get_historical(_rows(), STATS, timestamp_column="at")
    with pytest.raises(InvalidInput, match="customer_stats@1 is looked up by 'customer_id'"):
        alice.get_online({"id": [1]}, STATS)
    with pytest.raises(InvalidInput, match="'customer_id' is null at position 1"):
        alice.get_online({"customer_id": [1, None]}, STATS)
    with pytest.raises(NotFound, match="feature view 'nope' does not exist"):
        alice.materialize("nope")

    view = _view(server.root / "stats.parquet").to_dict()
    bad_bodies: list[tuple[str, dict[str, Any], int, str]] = [
        ("/features/apply", {"feature_views": [{**view, "features": [{"x": 1}]}]}, 400, "customer_stats"),
        ("/features/apply", {"feature_views": [{**view, "colour": "red"}]}, 400, "unknown field(s)"),
        ("/features/apply", {"feature_views": [{**view, "entities": 5}]}, 400, "entities is a list"),
        ("/features/apply", {"feature_views": [{**view, "tags": [1]}]}, 400, "tags map names"),
        ("/features/apply", {"feature_views": [{**view, "ttl_s": "soon"}]}, 400, "ttl 'soon'"),
        ("/features/apply", {"entities": [{"name": "c", "join_keys": "id"}]}, 400, "join_keys is a list"),
        ("/features/apply", {"entities": [{"name": "c", "join_keys": ["a b"]}]}, 400, "join key 'a b'"),
        ("/features/apply", {"feature_views": [{**view, "entities": ["shop"]}]}, 404, "'shop'"),
        ("/features/historical", {"upload_id": "0" * 32, "features": STATS}, 404, "upload"),
        ("/features/historical", {"upload_id": "0" * 32, "features": []}, 422, "features"),
        ("/features/training-sets", {"upload_id": "x", "features": STATS, "name": "t"}, 404, "upload"),
        ("/features/online", {"entities": {"customer_id": [1, 2]}, "features": ["stats"]}, 400, "'stats'"),
        ("/features/online", {"entities": [1], "features": STATS}, 422, "entities"),
        ("/features/online", {"entities": {"customer_id": [1], "x": [1, 2]}, "features": STATS}, 400, "len"),
        ("/features/views/customer_stats/materialize", {"end": "2024-02-01"}, 422, "end"),
    ]  # fmt: skip
    with server.http("alice") as http:
        for route, body, status, words in bad_bodies:
            response = http.post(route, json=body)
            assert response.status_code == status, (route, body, response.text)
            assert words in response.json()["error"]["message"], (route, body, response.text)
        assert http.get("/features/historical/" + "0" * 32).status_code == 404
        assert _error(http.get("/features/views/customer_stats@9"))[0] == 404


def test_a_time_column_named_like_sql_is_only_a_name(server: FeatureServer, remote: Remote) -> None:
    """The entity rows' columns and the time column are the caller's: a quote in a name must
    not end the identifier (it would run the rest as SQL on the server, before its sandbox)."""
    server.local.apply([CUSTOMER], [_view(_stats(server.root))])
    hostile = (
        "ts\" AS x, CASE WHEN (SELECT count(*) FROM read_text('/etc/hostname')) > 0 THEN NULL ELSE 1 END "
        "AS v FROM entity_input) WHERE v IS NULL LIMIT 1 --"
    )
    rows = _rows().rename(columns={"event_timestamp": hostile}).assign(ts=1)  # "ts" makes the SQL bind
    found = remote("alice").get_historical(rows, STATS, timestamp_column=hostile)
    assert found is not None and found.column("spend").to_pylist()[:4] == [10.0, 50.0, 55.0, 20.0]
    assert found.column_names[1] == hostile


def test_a_historical_result_goes_once_and_only_to_who_asked(server: FeatureServer, remote: Remote) -> None:
    server.local.apply([CUSTOMER], [_view(_stats(server.root))])
    admin = RemoteServices(ServerConnection(server.url, server.tokens["admin"]))
    upload = admin.connection.call("POST", "/uploads")["upload_id"]
    _rows().to_parquet(server.root / "rows.parquet")
    admin.connection.upload(f"/uploads/{upload}/files/data.parquet", server.root / "rows.parquet")
    result = admin.connection.call(
        "POST", "/features/historical", json={"upload_id": upload, "features": STATS}
    )
    assert result["rows"] == 6
    with server.http("alice") as alice, server.http("admin") as http:
        assert alice.get(f"/features/historical/{result['result_id']}").status_code == 404  # not alice's
        fetched = http.get(f"/features/historical/{result['result_id']}")
        assert fetched.status_code == 200 and len(fetched.content) > 0
        # sent once: removed as soon as it has gone
        wait_until(lambda: http.get(f"/features/historical/{result['result_id']}").status_code == 404)
    admin.close()


def test_the_sdk_and_the_command_line_work_through_the_server(
    server: FeatureServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _stats(server.root)
    definitions = tmp_path / "features.yaml"
    definitions.write_text(
        "entities:\n  - name: customer\n    join_keys: [customer_id]\n"
        f"feature_views:\n  - name: customer_stats\n    entities: [customer]\n    source: {source}\n"
        "    event_time: event_ts\n    created_time: created_ts\n    ttl: 30d\n"
        "    features: {spend: float64, orders: int64}\n"
    )
    monkeypatch.setenv("LOOPLINE_TOKEN", server.tokens["alice"])

    def cli(*args: str) -> Any:
        code = run(["--uri", server.url, *args])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    applied = json.loads(cli("features", "apply", str(definitions), "--json"))
    assert {(r["name"], r["result"]) for r in applied} == {
        ("customer", "applied"),
        ("customer_stats@1", "created"),
    }
    assert [v["ref"] for v in json.loads(cli("features", "list", "--json"))] == ["customer_stats@1"]
    rows = tmp_path / "rows.csv"
    pd.DataFrame(
        {"customer_id": [1, 2], "event_timestamp": ["2024-01-11T00:00:00Z", "2024-01-03T00:00:00Z"]}
    ).to_csv(rows, index=False)
    out = tmp_path / "training.parquet"
    cli("features", "historical", "--entities", str(rows), "-f", "customer_stats:*", "-o", str(out))
    assert pd.read_parquet(out)[["spend", "orders"]].to_numpy().tolist() == [[55.0, 5], [20.0, 2]]
    assert json.loads(cli("features", "materialize", "customer_stats", "--json"))["keys_written"] == 2
    assert run(["--uri", server.url, "features", "materialize", "customer_stats", "--on", "ray"]) == 1
    assert "the server materializes" in capsys.readouterr().err
    assert json.loads(cli("features", "get", "-e", "customer_id=1", "-f", "customer_stats:spend")) == {
        "customer_id": [1], "spend": [None]  # materialized now: 55.0 is older than the 30-day TTL
    }  # fmt: skip
    assert run(["--uri", server.url, "features", "historical", "--entities", str(rows), "-f", "nope:x",
                "-o", str(out)]) == 1  # fmt: skip
    assert "feature view 'nope' does not exist" in capsys.readouterr().err

    try:
        ll.configure(uri=server.url, token=server.tokens["alice"])
        assert [v.ref for v in ll.features.views()] == ["customer_stats@1"]
        assert ll.features.view("customer_stats@1").view.ttl_s == 30 * 86_400
        frame = ll.features.get_historical(_rows(), STATS)
        assert frame["spend"].tolist()[:4] == [10.0, 50.0, 55.0, 20.0]
        target = ll.features.write_historical(_rows(), STATS, tmp_path / "written.parquet")
        assert pd.read_parquet(target)["orders"].tolist()[:4] == [1, 5, 5, 2]
        version = ll.features.register_training_set("sdk-training", _rows(), STATS)
        assert version.rows == 6
        assert ll.features.get_online({"customer_id": [2]}, STATS) == {
            "customer_id": [2], "spend": [None], "orders": [None]
        }  # fmt: skip
        ll.configure(uri=server.url, token=server.tokens["vera"])
        assert [v.ref for v in ll.features.views()] == ["customer_stats@1"]
        with pytest.raises(PermissionDenied):
            ll.features.materialize("customer_stats")
    finally:
        _sdk.reset()
