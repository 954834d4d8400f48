from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline.core.errors import InvalidInput, SignatureMismatch
from loopline.models.signature import ColumnSpec, Signature, TensorSpec, enforce, infer_signature


@pytest.fixture
def example() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [31, 45, 52],
            "income": [1200.5, np.nan, 3400.0],
            "plan": ["basic", "pro", "basic"],
            "active": [True, False, True],
        }
    )


def test_inference_records_types_and_nullability(example: pd.DataFrame) -> None:
    signature = infer_signature(example)
    assert signature.inputs == (
        ColumnSpec("age", "integer", nullable=False),
        ColumnSpec("income", "double", nullable=True),
        ColumnSpec("plan", "string", nullable=False),
        ColumnSpec("active", "boolean", nullable=False),
    )
    assert Signature.from_dict(signature.to_dict()) == signature


def test_matching_input_passes_in_the_model_column_order(example: pd.DataFrame) -> None:
    signature = infer_signature(example)
    shuffled = example[["plan", "active", "income", "age"]]
    enforced = enforce(signature, shuffled)
    assert isinstance(enforced, pd.DataFrame)
    assert list(enforced.columns) == ["age", "income", "plan", "active"]


def test_records_and_single_records_are_accepted(example: pd.DataFrame) -> None:
    signature = infer_signature(example)
    record = {"age": 40, "income": 1000.0, "plan": "pro", "active": False}
    assert len(enforce(signature, record)) == 1
    assert len(enforce(signature, [record, record])) == 2


def test_safe_casts_are_applied(example: pd.DataFrame) -> None:
    signature = infer_signature(example)
    given = example.assign(income=[1000, 2000, 3000], age=[31.0, 45.0, 52.0])
    enforced = enforce(signature, given)
    assert isinstance(enforced, pd.DataFrame)
    assert enforced["income"].dtype == np.float64  # integer -> double
    assert enforced["age"].dtype == np.int64  # whole doubles -> integer


def test_every_problem_is_reported_at_once(example: pd.DataFrame) -> None:
    signature = infer_signature(example)
    bad = example.drop(columns=["plan"]).assign(age=[31.5, 40.0, 41.0], active=["yes", "no", "no"], extra=1)
    with pytest.raises(SignatureMismatch) as info:
        enforce(signature, bad)
    problems = info.value.problems
    assert "missing columns ['plan']" in problems
    assert any("unexpected columns ['extra']" in p for p in problems)
    assert any("'age' has fractional values" in p for p in problems)
    assert any("'active' is string where the model expects boolean" in p for p in problems)


def test_extra_columns_can_be_dropped(example: pd.DataFrame) -> None:
    signature = infer_signature(example, extra_columns="drop")
    enforced = enforce(signature, example.assign(note="x"))
    assert isinstance(enforced, pd.DataFrame)
    assert "note" not in enforced.columns


def test_missing_values_where_the_signature_forbids_them_name_the_rows(example: pd.DataFrame) -> None:
    signature = infer_signature(example)
    with pytest.raises(SignatureMismatch, match=r"'age' has missing values \(rows \[1\]\)"):
        enforce(signature, example.assign(age=[31, None, 52]))
    enforce(signature, example.assign(income=[np.nan, np.nan, 1.0]))  # nullable: fine


def test_tensors_check_shape_and_dtype() -> None:
    signature = infer_signature(np.zeros((4, 3), dtype=np.float32))
    assert signature.inputs == TensorSpec("float32", (None, 3))
    assert enforce(signature, np.ones((2, 3), dtype=np.float64)).dtype == np.float32
    with pytest.raises(SignatureMismatch, match="dimension 1 is 4"):
        enforce(signature, np.ones((2, 4)))
    with pytest.raises(SignatureMismatch, match="cannot be cast safely"):
        enforce(signature, np.array([["a", "b", "c"]]))


def test_unreadable_input_is_refused() -> None:
    signature = infer_signature(pd.DataFrame({"a": [1]}))
    with pytest.raises(InvalidInput, match="cannot read str as model input"):
        enforce(signature, "a=1")
