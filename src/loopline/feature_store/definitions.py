"""Definitions files: YAML with `entities:` and `feature_views:`, or a Python module whose
top-level `Entity` and `FeatureView` objects are the definitions."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import yaml

from loopline.core.errors import InvalidInput, NotFound
from loopline.core.features import Entity, FeatureView, parse_definitions


def load_definitions(path: Path) -> tuple[list[Entity], list[FeatureView]]:
    """The entities and views a file defines. A Python file is run: give only your own."""
    if not path.is_file():
        raise NotFound(f"definitions file {path} does not exist")
    if path.suffix in (".yaml", ".yml"):
        try:
            document = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise InvalidInput(f"{path} is not YAML: {exc}") from None
        return parse_definitions(document or {})
    if path.suffix != ".py":
        raise InvalidInput(f"{path}: definitions are a .yaml or a .py file")
    spec = importlib.util.spec_from_file_location(f"loopline_definitions_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    values = list(vars(module).values())
    return [v for v in values if isinstance(v, Entity)], [v for v in values if isinstance(v, FeatureView)]
