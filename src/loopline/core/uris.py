"""Model URIs: models:/NAME/VERSION, models:/NAME@ALIAS and models:/NAME/latest."""

from __future__ import annotations

import re
from dataclasses import dataclass

from loopline.core.errors import InvalidInput
from loopline.core.names import alias_name, model_name

_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))")


@dataclass(frozen=True, slots=True)
class ModelRef:
    name: str
    version: int | None = None  # None with alias None: the latest READY version
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias is not None:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.version if self.version is not None else 'latest'}"


def parse_model_uri(uri: str) -> ModelRef:
    match = _URI.fullmatch(uri.strip()) if isinstance(uri, str) else None
    if match is None:
        raise InvalidInput(
            f"{uri!r} is not a model URI; use models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest"
        )
    name = model_name(match["name"])
    if match["alias"] is not None:
        return ModelRef(name, alias=alias_name(match["alias"]))
    version = match["version"]
    if version == "latest":
        return ModelRef(name)
    if not re.fullmatch(r"[0-9]+", version) or int(version) < 1:
        raise InvalidInput(f"version {version!r} in {uri!r} is not a positive number")
    return ModelRef(name, version=int(version))
