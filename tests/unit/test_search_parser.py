from __future__ import annotations

import pytest

from loopline.core.errors import FilterSyntaxError, InvalidInput
from loopline.core.search import (
    And,
    Comparison,
    Field,
    Or,
    OrderKey,
    check_search,
    parse_filter,
    parse_order_by,
)


def test_the_documented_example_parses_into_four_comparisons() -> None:
    expr = parse_filter(
        "metrics.auc > 0.9 and params.model = 'rf' and tags.team != 'x' and status = 'FINISHED'"
    )
    assert expr == And(
        (
            Comparison(Field("metric", "auc"), ">", 0.9),
            Comparison(Field("param", "model"), "=", "rf"),
            Comparison(Field("tag", "team"), "!=", "x"),
            Comparison(Field("attribute", "status"), "=", "FINISHED"),
        )
    )


def test_or_binds_looser_than_and_and_parentheses_group() -> None:
    expr = parse_filter("metrics.a < 1 or metrics.b < 2 and (params.p = 'x' or params.p = 'y')")
    assert isinstance(expr, Or)
    left, right = expr.items
    assert left == Comparison(Field("metric", "a"), "<", 1.0)
    assert isinstance(right, And)
    assert isinstance(right.items[1], Or)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.`val loss` <= 1e-3", Comparison(Field("metric", "val loss"), "<=", 0.001)),
        ('params."learning rate" = "0.1"', Comparison(Field("param", "learning rate"), "=", "0.1")),
        ("params.depth = 5", Comparison(Field("param", "depth"), "=", "5")),
        ("metrics.train.loss > -2.5", Comparison(Field("metric", "train.loss"), ">", -2.5)),
        ("tags.note = 'it''s'", Comparison(Field("tag", "note"), "=", "it's")),
        # a backslash is literal, as in SQL and MLflow: no escapes but the doubled quote
        (r"params.path = 'C:\temp\new'", Comparison(Field("param", "path"), "=", r"C:\temp\new")),
        (r'tags.x = "a\"', Comparison(Field("tag", "x"), "=", "a\\")),
        ("params.m IN ('rf', 'gbm')", Comparison(Field("param", "m"), "in", ("rf", "gbm"))),
        ("params.m not in ('rf')", Comparison(Field("param", "m"), "not in", ("rf",))),
        ("run_name LIKE 'a%'", Comparison(Field("attribute", "run_name"), "like", "a%")),
        ("tags.x NOT ILIKE '%A%'", Comparison(Field("tag", "x"), "not ilike", "%A%")),
        ("attributes.start_time >= 17", Comparison(Field("attribute", "start_time"), ">=", 17.0)),
        ("metrics.a == 1", Comparison(Field("metric", "a"), "=", 1.0)),
        ("metrics.a <> 1", Comparison(Field("metric", "a"), "!=", 1.0)),
    ],
)
def test_comparisons(text: str, expected: Comparison) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_a_blank_filter_matches_everything(blank: str | None) -> None:
    assert parse_filter(blank) is None


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("metrics.auc >", 13, "expected a value for metrics.auc"),
        ("metrics.auc > 0.9 and", 21, "expected a field"),
        ("metrics.auc > 0.9 params.x = 'a'", 18, "expected 'and', 'or'"),
        ("foo = 1", 0, "unknown attribute 'foo'"),
        ("params.x > 3", 9, "operator '>' does not apply to text field params.x"),
        ("metrics.auc = 'high'", 14, "metrics.auc is numeric"),
        ("status = 'DONE'", 9, "unknown status 'DONE'"),
        ("tags.x = 'abc", 9, "unterminated quote"),
        ("metrics.a > 1 ; drop table runs", 14, "unexpected character ';'"),
        ("(metrics.a > 1", 14, "expected ')'"),
        ("params.m in 'rf'", 12, "expected '(' after IN"),
        ("metrics.a ~ 1", 10, "unexpected character '~'"),
    ],
)
def test_syntax_errors_name_the_position(text: str, position: int, message: str) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert info.value.position == position
    assert message in str(info.value)
    assert f"column {position + 1}" in str(info.value)


def test_order_by_clauses() -> None:
    assert parse_order_by(["metrics.auc DESC", "start_time", "params.`a b` asc"]) == [
        OrderKey(Field("metric", "auc"), descending=True),
        OrderKey(Field("attribute", "start_time")),
        OrderKey(Field("param", "a b")),
    ]
    assert parse_order_by("run_name") == [OrderKey(Field("attribute", "run_name"))]
    assert parse_order_by(None) == []


@pytest.mark.parametrize("clause", ["metrics.auc sideways", "metrics.auc desc extra", "nope"])
def test_bad_order_by_is_an_error(clause: str) -> None:
    with pytest.raises(FilterSyntaxError):
        parse_order_by([clause])


def test_deeply_nested_parentheses_are_a_syntax_error_not_a_crash() -> None:
    deep = "(" * 400 + "metrics.a > 1" + ")" * 400
    with pytest.raises(FilterSyntaxError, match="nest more than 50 deep"):
        parse_filter(deep)
    assert parse_filter("(" * 50 + "metrics.a > 1" + ")" * 50) is not None


def test_a_search_over_more_keys_than_a_store_joins_is_refused() -> None:
    wide = " and ".join(f"metrics.m{i} > 0" for i in range(40))
    with pytest.raises(InvalidInput, match="41 params, metrics and tags; at most 32"):  # 40 and the order
        check_search(parse_filter(wide), parse_order_by(["params.p DESC"]))
    check_search(
        parse_filter(" and ".join(f"metrics.m{i} > 0" for i in range(31))), parse_order_by("params.p")
    )
