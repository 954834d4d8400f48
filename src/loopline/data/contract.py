"""Data contracts: what a table must look like, as YAML people edit and review.

    version: 1
    rows: {min: 1000}
    extra_columns: allow            # or forbid
    columns:
      id:     {type: integer, nullable: false, unique: true}
      age:    {type: integer, min: 18, max: 120}
      income: {type: number, max_null_share: 0.2}
      plan:   {type: string, allowed: [basic, plus, pro]}
      email:  {type: string, pattern: '[^@]+@[^@]+'}
    checks:                         # SQL conditions no row may break (NULL passes, as in CHECK)
      - {name: income_positive, condition: "income > 0 OR income IS NULL"}

`infer_contract` writes one from a reference table; the validator checks data against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from loopline.core.errors import InvalidInput

ColumnType = Literal["integer", "number", "string", "boolean", "timestamp", "date", "any"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnRule(_Strict):
    type: ColumnType = "any"
    required: bool = True
    nullable: bool = True
    max_null_share: float | None = Field(None, ge=0, le=1)
    min: int | float | str | None = None  # a number, or an ISO date/time for temporal columns
    max: int | float | str | None = None
    allowed: list[str | int | float | bool] | None = None
    unique: bool = False
    pattern: str | None = None  # a regular expression each value must match whole

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        import re

        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


class RowCheck(_Strict):
    name: str = Field(min_length=1, max_length=128)
    condition: str = Field(min_length=1)  # SQL over the columns; rows where it is false fail
    description: str = ""


class RowBounds(_Strict):
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)


class Contract(_Strict):
    version: Literal[1] = 1
    description: str = ""
    rows: RowBounds = RowBounds()
    extra_columns: Literal["allow", "forbid"] = "allow"
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    checks: list[RowCheck] = Field(default_factory=list)

    @classmethod
    def parse(cls, data: Any, where: str = "the contract") -> Contract:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidInput(f"{where} is not a valid data contract: {problems}") from None

    @classmethod
    def load(cls, source: str | Path) -> Contract:
        """Read a contract from a YAML file."""
        path = Path(source)
        if not path.is_file():
            raise InvalidInput(f"contract file {str(source)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"contract {path.name} is not readable YAML: {exc}") from None
        return cls.parse(data, f"contract {path.name}")

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["version"] = self.version
        for rule in data.get("columns", {}).values():
            rule.setdefault("type", "any")
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")
