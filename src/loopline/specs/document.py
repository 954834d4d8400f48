"""YAML documents people write and review (data contracts, monitor specs): strict models
whose mistakes are reported by their path in the document, never as a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Self

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from loopline.core.errors import InvalidInput


class Strict(BaseModel):
    """A part of a document: unknown keys are mistakes, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Document(Strict):
    kind: ClassVar[str] = "document"  # what people call it, in messages

    @classmethod
    def parse(cls, data: Any, where: str | None = None) -> Self:
        try:
            return cls.model_validate(data or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'top level'}: {e['msg']}" for e in exc.errors()
            )
            raise InvalidInput(f"{where or 'the ' + cls.kind} is not valid: {problems}") from None

    @classmethod
    def load(cls, source: str | Path) -> Self:
        path = Path(source)
        if not path.is_file():
            raise InvalidInput(f"{cls.kind} file {str(source)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{cls.kind} {path.name} is not readable YAML: {exc}") from None
        return cls.parse(data, f"{cls.kind} {path.name}")
