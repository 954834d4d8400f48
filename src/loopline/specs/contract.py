"""Data contracts: what a table must look like, as YAML people edit and review.

    version: 1
    rows: {min: 1000}
    extra_columns: allow            # or forbid
    personal_data: forbid           # any column found holding personal data fails (default: allow)
    columns:
      id:     {type: integer, nullable: false, unique: true}
      age:    {type: integer, min: 18, max: 120}
      income: {type: number, max_null_share: 0.2}
      plan:   {type: string, allowed: [basic, plus, pro]}
      email:  {type: string, personal_data: hash}   # stored as a keyed hash (or mask; forbid)
    checks:                         # SQL conditions no row may break (NULL passes, as in CHECK)
      - {name: income_positive, condition: "income > 0 OR income IS NULL"}

`infer_contract` writes one from a reference table; the validator checks data against it.

`personal_data` on a column: `forbid` fails validation whenever the column is present; `mask`
and `hash` are applied when a dataset is registered under the contract, so the stored version
never holds the raw values (see `core.personal_data`). On the contract, `forbid` fails every
column the detector (`profiling.pii`) finds holding personal data, unless it is masked or hashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

import yaml
from pydantic import Field, field_validator

from loopline.specs.document import Document, Strict

ColumnType = Literal["integer", "number", "string", "boolean", "timestamp", "date", "any"]
PersonalDataRule = Literal["forbid", "mask", "hash"]


class ColumnRule(Strict):
    type: ColumnType = "any"
    required: bool = True
    nullable: bool = True
    max_null_share: float | None = Field(None, ge=0, le=1)
    min: int | float | str | None = None  # a number, or an ISO date/time for temporal columns
    max: int | float | str | None = None
    allowed: list[str | int | float | bool] | None = None
    unique: bool = False
    pattern: str | None = None  # a regular expression each value must match whole
    personal_data: PersonalDataRule | None = None

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


class RowCheck(Strict):
    name: str = Field(min_length=1, max_length=128)
    condition: str = Field(min_length=1)  # SQL over the columns; rows where it is false fail
    description: str = ""


class RowBounds(Strict):
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)


class Contract(Document):
    kind: ClassVar[str] = "data contract"

    version: Literal[1] = 1
    description: str = ""
    rows: RowBounds = RowBounds()
    extra_columns: Literal["allow", "forbid"] = "allow"
    personal_data: Literal["allow", "forbid"] = "allow"
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    checks: list[RowCheck] = Field(default_factory=list)

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["version"] = self.version
        for rule in data.get("columns", {}).values():
            rule.setdefault("type", "any")
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml(), encoding="utf-8")
