from __future__ import annotations

import math

import pytest

from loopline.core.entities import Metric
from loopline.core.errors import InvalidInput
from loopline.core.validation import (
    MAX_PARAM_VALUE_LENGTH,
    check_key,
    check_metric_value,
    check_metrics,
    check_name,
    check_param_value,
    check_step,
)


@pytest.mark.parametrize("key", ["auc", "val loss", "train/loss", "a.b-c:d_e", "точность", "損失"])
def test_keys_accept_words_in_any_script(key: str) -> None:
    assert check_key("metric key", key) == key


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "non-empty"),
        (" auc", "leading or trailing"),
        ("a'b", 'contains "\'"'),
        ("a;b", "contains ';'"),
        ("x" * 251, "limit is 250"),
        ("bad\udcff", "not valid UTF-8"),
        ("nul\x00", "NUL"),
        (b"auc", "must be a string"),
    ],
)
def test_bad_keys_are_refused_with_the_reason(key: object, message: str) -> None:
    with pytest.raises(InvalidInput, match="metric key") as info:
        check_key("metric key", key)
    assert message in str(info.value)


def test_oversized_param_values_name_the_key_and_the_limit() -> None:
    assert check_param_value("p", "x" * MAX_PARAM_VALUE_LENGTH) == "x" * MAX_PARAM_VALUE_LENGTH
    with pytest.raises(InvalidInput, match=rf"param 'p'.*{MAX_PARAM_VALUE_LENGTH + 1} characters"):
        check_param_value("p", "x" * (MAX_PARAM_VALUE_LENGTH + 1))


def test_param_values_are_stored_as_text() -> None:
    assert check_param_value("depth", 8) == "8"
    assert check_param_value("lr", 0.1) == "0.1"


def test_nan_and_infinities_are_kept_as_metric_values() -> None:
    assert math.isnan(check_metric_value("loss", float("nan")))
    assert check_metric_value("loss", float("inf")) == math.inf
    assert check_metric_value("loss", -math.inf) == -math.inf


@pytest.mark.parametrize("value", ["0.5", None, True, [1.0], 1 + 2j])
def test_non_numbers_are_not_metric_values(value: object) -> None:
    with pytest.raises(InvalidInput, match="value of metric 'auc' must be a real number"):
        check_metric_value("auc", value)


def test_numpy_scalars_are_metric_values() -> None:
    import numpy as np

    assert check_metric_value("auc", np.float32(0.5)) == 0.5
    assert check_metric_value("n", np.int64(3)) == 3.0


@pytest.mark.parametrize("step", [-1, 2**63, 1.5, "3"])
def test_bad_steps(step: object) -> None:
    with pytest.raises(InvalidInput, match="step of metric 'loss'"):
        check_step("loss", step)


def test_names_must_be_printable() -> None:
    assert check_name("run name", "my run (v2) ✓") == "my run (v2) ✓"
    with pytest.raises(InvalidInput, match="control character"):
        check_name("run name", "a\nb")
    with pytest.raises(InvalidInput, match="must not be empty"):
        check_name("experiment name", "  ")


@pytest.mark.parametrize("key", [{}, [], {"nested": 1}, 7])
def test_a_metric_key_that_is_no_string_is_bad_input_not_a_crash(key: object) -> None:
    with pytest.raises(InvalidInput, match="metric key must be a string"):
        check_metrics([Metric(key, 1.0, 0, 0)])  # type: ignore[arg-type]
