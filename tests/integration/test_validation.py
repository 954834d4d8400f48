"""Data contracts: inferred contracts pass their own data, every kind of rule catches what
it should with exact counts and the right sample rows, contracts with mistakes are refused
by name, custom checks cannot reach outside the table, and validation gates promotion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.core.errors import InvalidInput
from loopline.data.validation import infer_contract, validate
from loopline.specs.contract import Contract
from tests.conftest import Invoke


def orders(rows: int = 10_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "order_id": np.arange(rows),
            "amount": rng.gamma(2.0, 30.0, rows),
            "country": rng.choice(["de", "fr", "it"], rows),
            "email": [f"user{i}@example.com" for i in range(rows)],
            "placed": pd.Timestamp("2026-01-01")
            + pd.to_timedelta(rng.integers(0, 86_400 * 300, rows), unit="s"),
        }
    )


def test_an_inferred_contract_passes_its_data_and_round_trips_as_yaml(tmp_path: Path) -> None:
    frame = orders()
    contract = infer_contract(frame)
    assert contract.columns["order_id"].unique and contract.columns["order_id"].type == "integer"
    assert contract.columns["country"].allowed == ["de", "fr", "it"]
    assert (
        contract.columns["amount"].type == "number"
        and contract.columns["amount"].min == frame["amount"].min()
    )
    assert contract.columns["placed"].type == "timestamp" and not contract.columns["placed"].nullable
    assert validate(frame, contract).passed
    contract.save(tmp_path / "orders.yaml")
    assert Contract.load(tmp_path / "orders.yaml") == contract


def test_every_rule_reports_exact_counts_and_the_offending_rows() -> None:
    frame = orders()
    bad = frame.copy()
    bad.loc[[3, 30, 300], "amount"] = -1.0
    bad.loc[[7, 70], "country"] = "xx"
    bad.loc[[11, 12], "order_id"] = 5  # rows 5, 11 and 12 now share an id
    bad.loc[[42], "email"] = "not an address"
    bad.loc[[500, 502, 504], ["amount", "country"]] = [[900.0, "de"], [900.0, "fr"], [900.0, "it"]]
    bad["amount"] = bad["amount"].where(bad.index % 100 != 1)  # 100 missing amounts
    contract = Contract.parse(
        {
            "rows": {"min": 20_000},
            "extra_columns": "forbid",
            "columns": {
                "order_id": {"type": "integer", "unique": True, "nullable": False},
                "amount": {"type": "number", "min": 0, "max_null_share": 0.005},
                "country": {"type": "string", "allowed": ["de", "fr", "it"]},
                "email": {"type": "string", "pattern": r"[^@ ]+@[^@ ]+\.[a-z]+"},
                "placed": {"type": "timestamp", "min": "2026-01-01", "max": "2026-06-01"},
                "segment": {"type": "string"},
                "optional": {"type": "string", "required": False},
            },
            "checks": [{"name": "big_orders_are_local", "condition": "amount < 500 OR country = 'de'"}],
        }
    )
    bad["note"] = "x"
    report = validate(bad, contract)
    found = {(f.check, f.column): f for f in report.failures}
    assert not report.passed and report.rows == 10_000
    assert found[("rows", None)].detail == "10,000 rows, fewer than the 20,000 required"
    assert found[("present", "segment")].count == 1 and ("present", "optional") not in found
    assert found[("extra_column", "note")].count == 1
    assert [s["_row"] for s in found[("min", "amount")].samples] == [3, 30, 300]
    assert found[("min", "amount")].samples[0]["amount"] == -1.0
    assert found[("null_share", "amount")].count == 100 and "1.0%" in found[("null_share", "amount")].detail
    assert found[("allowed", "country")].count == 2
    assert [s["country"] for s in found[("allowed", "country")].samples] == ["xx", "xx"]
    assert found[("unique", "order_id")].count == 3
    assert [s["_row"] for s in found[("unique", "order_id")].samples] == [5, 11, 12]
    assert found[("pattern", "email")].samples == [{"_row": 42, "email": "not an address"}]
    late = (frame["placed"] > "2026-06-01").sum()
    assert found[("max", "placed")].count == late
    expected_custom = ((bad["amount"] >= 500) & (bad["country"] != "de")).sum()
    assert found[("big_orders_are_local", None)].count == expected_custom >= 2
    assert {502, 504} <= {s["_row"] for s in found[("big_orders_are_local", None)].samples}
    assert ("not_null", "order_id") not in found


def test_integers_with_missing_values_are_integers_and_a_wrong_type_hides_no_other_finding() -> None:
    ages = [20.0, 30.0, None, 40.0, None, 250.0, None, None, 31.0, None]  # pandas: float64 with NaN
    contract = Contract.parse({"columns": {"age": {"type": "integer", "max": 120, "nullable": False}}})
    report = validate(pd.DataFrame({"age": ages}), contract)
    assert sorted((f.check, f.count) for f in report.failures) == [("max", 1), ("not_null", 5)]
    halves = validate(pd.DataFrame({"age": [1.0, 2.5, None, 3.25]}), contract)
    assert sorted((f.check, f.count) for f in halves.failures) == [("not_null", 1), ("type", 2)]
    texts = validate(pd.DataFrame({"age": ["1", None, "x", "x"]}), Contract.parse(
        {"columns": {"age": {"type": "integer", "max": 120, "nullable": False, "unique": True}}}
    ))  # fmt: skip
    assert sorted((f.check, f.count) for f in texts.failures) == [("not_null", 1), ("type", 1), ("unique", 2)]


def test_wrong_types_skip_their_value_rules() -> None:
    frame = orders(100).astype({"order_id": str})
    contract = Contract.parse({"columns": {"order_id": {"type": "integer", "min": 0, "unique": True}}})
    report = validate(frame, contract)
    assert [(f.check, f.detail) for f in report.failures] == [("type", "expected integer, found string")]


@pytest.mark.parametrize(
    ("contract", "message"),
    [
        ({"columns": {"a": {"type": "float"}}}, r"columns\.a\.type"),
        ({"columns": {"a": {"nulable": False}}}, r"columns\.a\.nulable: Extra inputs"),
        ({"columns": {"a": {"pattern": "("}}}, r"not a regular expression"),
        ({"rows": {"min": -1}}, r"rows\.min"),
        ({"version": 2}, r"version"),
        ({"checks": [{"name": "x", "condition": "1; DROP TABLE data"}]}, r"without ';'"),
        (
            {"checks": [{"name": "typo", "condition": "amout > 0"}]},
            r"check 'typo': the condition is not valid SQL",
        ),
    ],
)
def test_mistakes_in_a_contract_are_named(contract: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        validate(orders(100), Contract.parse(contract))


def test_custom_checks_cannot_read_files_or_unlock_the_sandbox(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    reads = f"length((SELECT content FROM read_text('{secret}'))) > 0"
    with pytest.raises(InvalidInput, match="file system operations are disabled") as caught:
        validate(orders(100), Contract.parse({"checks": [{"name": "sneaky", "condition": reads}]}))
    assert "hunter2" not in str(caught.value)
    unlock = "(SELECT 1) = 1) OR (SET enable_external_access = true"
    with pytest.raises(InvalidInput, match="not valid SQL"):
        validate(orders(100), Contract.parse({"checks": [{"name": "x", "condition": unlock}]}))


def test_files_are_validated_through_the_strict_reader(tmp_path: Path) -> None:
    orders(1_000).to_csv(tmp_path / "orders.csv", index=False)
    orders(1_000).to_parquet(tmp_path / "orders.parquet")
    contract = infer_contract(tmp_path / "orders.parquet")
    assert validate(tmp_path / "orders.parquet", contract).passed
    csv_contract = infer_contract(tmp_path / "orders.csv")
    assert validate(tmp_path / "orders.csv", csv_contract).passed
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(InvalidInput, match="line 3 has 1 fields"):
        validate(tmp_path / "ragged.csv", csv_contract)
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InvalidInput, match="not a readable Parquet file"):
        validate(tmp_path / "junk.parquet", contract)


def test_cli_validate_exits_1_with_a_report_and_tags_the_run(cli: Invoke, tmp_path: Path) -> None:
    orders(2_000).to_csv(tmp_path / "good.csv", index=False)
    code, out, _ = cli("data", "infer-contract", str(tmp_path / "good.csv"), "-o", str(tmp_path / "c.yaml"))
    assert code == 0 and "wrote" in out
    code, out, _ = cli("data", "validate", str(tmp_path / "good.csv"), "--contract", str(tmp_path / "c.yaml"))
    assert code == 0 and "passed" in out
    bad = orders(2_000)
    bad.loc[17, "country"] = "zz"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    code, out, _ = cli(
        "data", "validate", str(tmp_path / "bad.csv"), "-c", str(tmp_path / "c.yaml"), "--json"
    )
    report = json.loads(out)
    assert code == 1 and not report["passed"]
    assert [(f["check"], f["column"], f["count"]) for f in report["failures"]] == [("allowed", "country", 1)]
    assert report["failures"][0]["samples"] == [{"_row": 17, "country": "zz"}]
    code, out, _ = cli("data", "validate", str(tmp_path / "bad.csv"), "-c", str(tmp_path / "c.yaml"))
    assert code == 1 and "allowed" in out and "17: zz" in out
    code, _, err = cli("data", "validate", str(tmp_path / "bad.csv"), "-c", str(tmp_path / "missing.yaml"))
    assert code == 1 and "missing.yaml" in err


PIPELINE = """
import sys, loopline as ll, pandas as pd
from sklearn.linear_model import LogisticRegression
frame = pd.read_csv(sys.argv[1])
with ll.start_run("orders") as run:
    report = ll.datasets.validate(sys.argv[1], sys.argv[2])
    model = LogisticRegression().fit(frame[["amount"]], frame["amount"] > 60)
    version = run.log_model(model, "orders-model", input_example=frame[["amount"]].head())
print(report.passed, version.version)
try:
    ll.datasets.validate(sys.argv[1], sys.argv[2], require=True)
except ll.LooplineError as exc:
    print(type(exc).__name__, exc)
result = ll.promote("orders-model", version.version, "champion", policy={"gates": ["data_validation"]})
print(result.passed)
"""


def test_promotion_can_require_validated_training_data(tmp_path: Path) -> None:
    frame = orders(500)
    frame.to_csv(tmp_path / "orders.csv", index=False)
    infer_contract(tmp_path / "orders.csv").save(tmp_path / "strict.yaml")
    loose = Contract.parse({"columns": {"amount": {"type": "number", "max": 1.0}}})
    loose.save(tmp_path / "broken.yaml")
    env = {**os.environ, "LOOPLINE_HOME": str(tmp_path / "home")}
    env.pop("LOOPLINE_STORE_URI", None)
    env.pop("LOOPLINE_ARTIFACTS_URI", None)
    script = [sys.executable, "-c", PIPELINE, str(tmp_path / "orders.csv")]
    good = subprocess.run([*script, str(tmp_path / "strict.yaml")], env=env, capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    assert good.stdout.splitlines() == ["True 1", "True"]
    bad = subprocess.run([*script, str(tmp_path / "broken.yaml")], env=env, capture_output=True, text=True)
    lines = bad.stdout.splitlines()
    assert lines[0] == "False 2" and lines[1].startswith("DataValidationFailed")
    assert "max in column 'amount'" in lines[1]
    assert "PromotionRefused" in bad.stderr and "data_validation" in bad.stderr
