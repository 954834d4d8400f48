"""The run search language: parsed here into a small syntax tree, compiled by each store.

    metrics.auc > 0.9 and params.model = 'rf' and (tags.team != 'x' or status = 'FINISHED')

Fields are `metrics.<key>`, `params.<key>`, `tags.<key>` or a run attribute (`status`,
`run_name`, `run_id`, `start_time`, `end_time`, `created_by`, `parent_run_id`). Keys with
other characters are quoted with backticks: metrics.`val loss`. Strings take single or
double quotes. Nothing in here ever becomes SQL text: values travel as bound parameters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from loopline.core.entities import RunStatus
from loopline.core.errors import FilterSyntaxError, InvalidInput

Entity = Literal["metric", "param", "tag", "attribute"]
Value = float | str | tuple[float | str, ...]

_ENTITY_PREFIXES: dict[str, Entity] = {
    "metrics": "metric", "metric": "metric",
    "params": "param", "param": "param",
    "tags": "tag", "tag": "tag",
    "attributes": "attribute", "attribute": "attribute", "attr": "attribute", "run": "attribute",
}  # fmt: skip
NUMERIC_ATTRIBUTES = frozenset({"start_time", "end_time"})
STRING_ATTRIBUTES = frozenset({"run_id", "run_name", "status", "created_by", "parent_run_id"})
ATTRIBUTES = NUMERIC_ATTRIBUTES | STRING_ATTRIBUTES
# MLflow's names for the same attributes, so that its clients' filters work unchanged.
_ATTRIBUTE_ALIASES = {"user_id": "created_by", "created": "start_time", "run_uuid": "run_id"}
# MLflow's tags that loopline keeps as attributes.
_TAG_ATTRIBUTES = {
    "mlflow.parentRunId": "parent_run_id",
    "mlflow.runName": "run_name",
    "mlflow.user": "created_by",
}

NUMERIC_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
STRING_OPS = frozenset({"=", "!=", "like", "not like", "ilike", "not ilike", "in", "not in"})


@dataclass(frozen=True, slots=True)
class Field:
    entity: Entity
    key: str

    @property
    def is_numeric(self) -> bool:
        return self.entity == "metric" or self.key in NUMERIC_ATTRIBUTES

    def __str__(self) -> str:
        return self.key if self.entity == "attribute" else f"{self.entity}s.{self.key}"


@dataclass(frozen=True, slots=True)
class Comparison:
    field: Field
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Expr, ...]


Expr = Comparison | And | Or


@dataclass(frozen=True, slots=True)
class OrderKey:
    field: Field
    descending: bool = False


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # ident, quoted, string, number, op, lparen, rparen, comma, end
    text: str
    pos: int


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<ident>[A-Za-z_][\w.\-/:]*)
  | (?P<quoted>`(?:[^`]|``)*`)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<op>!=|<>|<=|>=|==|=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
    """,
    re.VERBOSE,
)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos] in "'\"`":
                raise FilterSyntaxError("unterminated quote", text, pos)
            raise FilterSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
        kind = match.lastgroup
        assert kind is not None
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _unquote(token: _Token) -> str:
    """A quoted string's text: literal, as in SQL and MLflow (`'C:\\temp'` is C:\\temp); a
    quote inside is written twice."""
    quote = token.text[0]
    return token.text[1:-1].replace(quote * 2, quote)


MAX_NESTING = 50  # parentheses within parentheses; deeper is no filter a person writes
MAX_KEYS = 32  # distinct params, metrics and tags one search compares or orders by (each a join)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, message: str, token: _Token | None = None) -> FilterSyntaxError:
        token = token or self.token
        found = "end of input" if token.kind == "end" else repr(token.text)
        return FilterSyntaxError(f"{message}, found {found}", self.text, token.pos)

    def keyword(self, *words: str) -> bool:
        """Consume the keyword sequence `words` if it comes next."""
        end = self.index + len(words)
        candidates = self.tokens[self.index : end]
        if len(candidates) == len(words) and all(
            t.kind == "ident" and t.text.lower() == w for t, w in zip(candidates, words, strict=True)
        ):
            self.index = end
            return True
        return False

    def expect_end(self) -> None:
        if self.token.kind != "end":
            raise self.error("expected 'and', 'or' or the end of the filter")

    # expr := and_expr ("or" and_expr)*
    def expr(self) -> Expr:
        items = [self.and_expr()]
        while self.keyword("or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Expr:
        items = [self.primary()]
        while self.keyword("and"):
            items.append(self.primary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def primary(self) -> Expr:
        if self.token.kind == "lparen":
            if self.depth >= MAX_NESTING:
                raise self.error(f"parentheses nest more than {MAX_NESTING} deep")
            self.advance()
            self.depth += 1
            inner = self.expr()
            self.depth -= 1
            if self.token.kind != "rparen":
                raise self.error("expected ')'")
            self.advance()
            return inner
        return self.comparison()

    def field(self) -> Field:
        token = self.advance()
        if token.kind == "quoted":
            return self._attribute(_unquote(token), token)
        if token.kind != "ident":
            raise self.error("expected a field such as metrics.auc, params.model or status", token)
        prefix, dot, rest = token.text.partition(".")
        entity = _ENTITY_PREFIXES.get(prefix.lower()) if dot else None
        if entity is None:
            return self._attribute(token.text, token)
        if not rest:  # metrics.`val loss`
            quoted = self.advance()
            if quoted.kind not in ("quoted", "string"):
                raise self.error(f"expected a key after {token.text!r}", quoted)
            rest = _unquote(quoted)
        if entity == "attribute":
            return self._attribute(rest, token)
        if entity == "tag" and rest in _TAG_ATTRIBUTES:
            return Field("attribute", _TAG_ATTRIBUTES[rest])
        return Field(entity, rest)

    def _attribute(self, name: str, token: _Token) -> Field:
        name = _ATTRIBUTE_ALIASES.get(name, name)
        if name not in ATTRIBUTES:
            known = ", ".join(sorted(ATTRIBUTES))
            raise FilterSyntaxError(
                f"unknown attribute {name!r}; use metrics.{name}, params.{name} or tags.{name}, "
                f"or one of: {known}",
                self.text,
                token.pos,
            )
        return Field("attribute", name)

    def operator(self) -> str:
        token = self.token
        if token.kind == "op":
            self.advance()
            return {"==": "=", "<>": "!="}.get(token.text, token.text)
        for words in (
            ("not", "in"),
            ("in",),
            ("not", "like"),
            ("like",),
            ("not", "ilike"),
            ("ilike",),
        ):
            if self.keyword(*words):
                return " ".join(words)
        raise self.error("expected an operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN)")

    def literal(self, field: Field) -> float | str:
        token = self.advance()
        if token.kind == "string":
            if field.is_numeric:
                raise self.error(f"{field} is numeric: compare it with a number", token)
            value = _unquote(token)
            if field.key == "status" and field.entity == "attribute" and value not in RunStatus.__members__:
                known = ", ".join(RunStatus.__members__)
                raise FilterSyntaxError(f"unknown status {value!r}; one of {known}", self.text, token.pos)
            return value
        if token.kind == "number":
            # A number against a param or tag compares with the text as written: 5 matches "5".
            return float(token.text) if field.is_numeric else token.text
        raise self.error(f"expected a value for {field}", token)

    def comparison(self) -> Expr:
        field = self.field()
        op_token = self.token
        op = self.operator()
        allowed = NUMERIC_OPS if field.is_numeric else STRING_OPS
        if op not in allowed:
            kind = "numeric" if field.is_numeric else "text"
            ops = ", ".join(sorted(allowed))
            raise FilterSyntaxError(
                f"operator {op.upper()!r} does not apply to {kind} field {field}; use one of: {ops}",
                self.text,
                op_token.pos,
            )
        if op in ("in", "not in"):
            if self.token.kind != "lparen":
                raise self.error(f"expected '(' after {op.upper()}")
            self.advance()
            values = [self.literal(field)]
            while self.token.kind == "comma":
                self.advance()
                values.append(self.literal(field))
            if self.token.kind != "rparen":
                raise self.error("expected ',' or ')'")
            self.advance()
            return Comparison(field, op, tuple(values))
        return Comparison(field, op, self.literal(field))


def parse_filter(text: str | None) -> Expr | None:
    """Parse a filter string; None or blank means "every run"."""
    if text is None or not text.strip():
        return None
    parser = _Parser(text)
    expr = parser.expr()
    parser.expect_end()
    return expr


def keyed_fields(expr: Expr | None, order: Sequence[OrderKey] = ()) -> set[Field]:
    """The params, metrics and tags a search compares or orders by."""
    found = {key.field for key in order}
    stack = [] if expr is None else [expr]
    while stack:
        item = stack.pop()
        if isinstance(item, Comparison):
            found.add(item.field)
        else:
            stack.extend(item.items)
    return {field for field in found if field.entity != "attribute"}


def check_search(expr: Expr | None, order: Sequence[OrderKey]) -> None:
    """Refuse a search over more keys than a store joins in one statement."""
    keys = keyed_fields(expr, order)
    if len(keys) > MAX_KEYS:
        raise InvalidInput(
            f"the search compares or orders by {len(keys)} params, metrics and tags; at most {MAX_KEYS}"
        )


def parse_order_by(clauses: Sequence[str] | str | None) -> list[OrderKey]:
    """Parse order-by clauses such as ``["metrics.auc DESC", "start_time"]``."""
    if clauses is None:
        return []
    if isinstance(clauses, str):
        clauses = [clauses]
    keys: list[OrderKey] = []
    for clause in clauses:
        parser = _Parser(clause)
        field = parser.field()
        descending = False
        if parser.keyword("desc"):
            descending = True
        elif not parser.keyword("asc") and parser.token.kind != "end":
            raise parser.error("expected ASC, DESC or the end of the order-by clause")
        if parser.token.kind != "end":
            raise parser.error("expected the end of the order-by clause")
        keys.append(OrderKey(field, descending))
    return keys
