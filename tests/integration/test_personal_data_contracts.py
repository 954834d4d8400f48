"""Personal data in datasets: registration records what each column holds (CLI, REST, UI),
contracts forbid it, and data registered under a contract that masks or hashes a column is
stored without a single raw value of it, locally and through a server with its own key."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from loopline.artifacts import BlobStore
from loopline.client.connection import ServerConnection
from loopline.client.services import RemoteServices
from loopline.core.errors import InvalidInput
from loopline.core.personal_data import MASK, keyed_hash
from loopline.data.validation import validate
from loopline.services import Services
from loopline.specs.contract import Contract
from loopline.store import MetadataStore
from loopline.wiring.backends import Backends, bootstrap_admin, local_owner
from tests.conftest import Invoke
from tests.integration.api_helpers import running_api, sqlite_team
from tests.integration.ui_helpers import signed_in

KEY = b"a-hash-key-of-at-least-32-characters!"


def people(rows: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(1, rows + 1),
            "email": [f"person{i}@example.com" for i in range(rows)],
            "phone": [f"+1 202-555-{i:04d}" for i in range(100, 100 + rows)],
            "ip": [f"10.1.{i}.7" for i in range(rows)],
            "spend": [float(i) * 1.5 for i in range(rows)],
        }
    )


CONTRACT = Contract.parse(
    {"columns": {"email": {"type": "string", "personal_data": "hash"}, "phone": {"personal_data": "mask"}}}
)


@pytest.fixture(params=["local", "remote"])
def keyed(request: pytest.FixtureRequest, store: MetadataStore, blobs: BlobStore) -> Iterator[Services]:
    """The services of a store whose hash key is KEY: in process, or through a server holding it."""
    backends = Backends(store, blobs, pii_hash_key=KEY)
    if request.param == "local":
        yield backends.services(local_owner())
        return
    secret = bootstrap_admin(backends)
    with running_api(backends) as url:
        connection = ServerConnection(url, secret)
        yield RemoteServices(connection)
        connection.close()


def _stored_bytes(services: Services, ref: str) -> bytes:
    dataset = services.datasets
    return dataset.local_path(dataset.get(ref)).read_bytes()


def test_registration_records_what_each_column_holds(keyed: Services) -> None:
    version, _ = keyed.datasets.register("people", people())
    found = {c["name"]: c.get("personal_data", {}).get("kind") for c in version.columns}
    assert found == {"id": None, "email": "email", "phone": "phone", "ip": "ip_address", "spend": None}
    email = next(c for c in version.columns if c["name"] == "email")
    assert email["personal_data"] == {"kind": "email", "by": "values", "matched": 40, "sampled": 40}
    # The summary, kept in the metadata database, holds counts of a raw column but no value
    summary = json.dumps(version.columns)
    assert "@example.com" not in summary and "202-555" not in summary and "10.1." not in summary
    assert email["count"] == 40 and "top" not in email and "min" not in email
    spend = next(c for c in version.columns if c["name"] == "spend")
    assert float(spend["max"]) == 58.5  # other columns keep their statistics


def test_a_version_registered_under_a_contract_holds_no_raw_value_of_its_masked_or_hashed_columns(
    keyed: Services,
) -> None:
    frame = people()
    version, created = keyed.datasets.register("people", frame, contract=CONTRACT)
    stored = keyed.datasets.read(version).to_pandas()
    assert stored["email"].tolist() == [keyed_hash(KEY, e) for e in frame["email"]]
    assert stored["phone"].tolist() == [MASK] * len(frame)
    assert (
        stored["ip"].tolist() == frame["ip"].tolist() and stored["spend"].tolist() == frame["spend"].tolist()
    )
    raw = _stored_bytes(keyed, version.uri)
    for value in [*frame["email"], *frame["phone"]]:
        assert value.encode() not in raw
    profile = json.dumps(keyed.datasets.reference_profile(version).to_dict()) + json.dumps(version.columns)
    assert not any(value in profile for value in [*frame["email"], *frame["phone"]])
    marks = {c["name"]: c.get("personal_data") for c in version.columns}
    assert marks["email"] == {
        "kind": "email",
        "by": "values",
        "matched": 40,
        "sampled": 40,
        "stored": "hashed",
    }
    assert marks["phone"] is not None and marks["phone"]["stored"] == "masked"
    again, created_again = keyed.datasets.register("people", frame, contract=CONTRACT)
    assert created and not created_again and again.version == version.version  # same rows, same pseudonyms


def test_data_that_breaks_its_contract_is_not_stored(keyed: Services) -> None:
    strict = Contract.parse({"personal_data": "forbid", "columns": {"email": {"personal_data": "hash"}}})
    with pytest.raises(InvalidInput, match=r"column 'phone'.*personal data \(phone"):
        keyed.datasets.register("people", people(), contract=strict)
    assert keyed.datasets.list_datasets() == []
    clean = people().drop(columns=["phone", "ip"])
    version, _ = keyed.datasets.register("people", clean, contract=strict)
    assert version.rows == 40


def test_hashing_without_a_key_is_refused_before_anything_is_stored(
    store: MetadataStore, blobs: BlobStore
) -> None:
    services = Backends(store, blobs).services(local_owner())
    with pytest.raises(InvalidInput, match="LOOPLINE_PII_HASH_KEY"):
        services.datasets.register("people", people(), contract=CONTRACT)
    assert services.datasets.list_datasets() == []
    masked = Contract.parse({"columns": {"email": {"personal_data": "mask"}}})
    version, _ = services.datasets.register("people", people(), contract=masked)
    assert set(services.datasets.read(version, ["email"]).column("email").to_pylist()) == {MASK}


def test_a_contract_forbids_a_column_by_name_or_any_column_holding_personal_data() -> None:
    frame = people()
    by_name = validate(frame, Contract.parse({"columns": {"ip": {"personal_data": "forbid"}}}))
    assert [(f.check, f.column, f.count) for f in by_name.failures] == [("personal_data", "ip", 40)]
    assert "ip_address" in by_name.failures[0].detail and by_name.failures[0].samples == []
    absent = validate(
        frame.drop(columns=["ip"]), Contract.parse({"columns": {"ip": {"personal_data": "forbid"}}})
    )
    assert absent.passed  # a forbidden column is best absent, never required
    any_kind = validate(
        frame, Contract.parse({"personal_data": "forbid", "columns": {"email": {"personal_data": "mask"}}})
    )
    assert sorted(f.column or "" for f in any_kind.failures) == ["ip", "phone"]
    assert all(str(v) not in json.dumps(any_kind.to_dict()) for v in frame["phone"])  # never a value
    assert validate(frame[["id", "spend"]], Contract.parse({"personal_data": "forbid"})).passed


def test_the_cli_registers_under_a_contract_and_shows_what_columns_hold(
    cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_PII_HASH_KEY", KEY.decode())
    monkeypatch.setenv("COLUMNS", "220")
    people().to_csv(tmp_path / "people.csv", index=False)
    CONTRACT.save(tmp_path / "contract.yaml")
    code, out, err = cli("datasets", "register", "people", str(tmp_path / "people.csv"), "--contract",
                         str(tmp_path / "contract.yaml"))  # fmt: skip
    assert code == 0, err
    code, out, _ = cli("datasets", "show", "people")
    assert code == 0 and "email (hashed)" in out and "phone (masked)" in out and "ip_address" in out
    code, out, _ = cli("datasets", "show", "people", "--json")
    columns = {c["name"]: c for c in json.loads(out)["columns"]}
    assert columns["ip"]["personal_data"]["kind"] == "ip_address"
    for file in (tmp_path / "artifacts").rglob("*"):  # nothing the store wrote holds a raw email
        assert not file.is_file() or b"person1@example.com" not in file.read_bytes()
    monkeypatch.delenv("LOOPLINE_PII_HASH_KEY")
    code, _, err = cli("datasets", "register", "again", str(tmp_path / "people.csv"), "--contract",
                       str(tmp_path / "contract.yaml"))  # fmt: skip
    assert code != 0 and "LOOPLINE_PII_HASH_KEY" in err and "Traceback" not in err


def test_the_dataset_page_shows_what_each_column_holds(tmp_path: Path) -> None:
    script = "<script>alert(1)</script>"
    with sqlite_team(tmp_path) as team:
        services = team.backends.services(local_owner())
        services.datasets.register("people", people().rename(columns={"email": script}))
        browser = signed_in(team, "vera")
        try:
            answer = browser.get("/datasets/people")
        finally:
            browser.close()
    assert answer.status_code == 200
    schema = re.search(r'<table[^>]* id="schema".*?</table>', answer.text, re.S)
    assert schema is not None
    rows = {
        html.unescape(name): cells
        for name, cells in re.findall(r'<td class="name">(.*?)</td>(.*?)</tr>', schema.group(0), re.S)
    }
    assert ">email</span>" in rows[script] and 'title="40 of 40 sampled values"' in rows[script]
    assert ">ip_address</span>" in rows["ip"] and "</span>" not in rows["spend"]
    assert script not in answer.text  # the column's name escaped
