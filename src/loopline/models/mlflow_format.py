"""Models saved in MLflow's format (a folder with an `MLmodel` file), described for loopline.

The files stay as MLflow wrote them, so MLflow's client still loads them, and a
`loopline-model.json` beside them tells loopline how to. A scikit-learn model that MLflow
saved with skops (its default outside Databricks since 3.x) becomes loopline's safe `sklearn`
flavor, loaded with loopline's reviewed list of types. Any other model becomes the `mlflow`
flavor: MLflow loads it, running code its files carry, so it loads only once a maintainer
trusts that version (`loopline models trust NAME VERSION --code`).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import yaml

from loopline.artifacts.names import check_artifact_name
from loopline.core.errors import InvalidInput, NotFound, UntrustedModel
from loopline.models.flavors import LoadOptions, flavor_named
from loopline.models.package import EXAMPLE_ROWS, METADATA_FILE, ModelFile, ModelMetadata, sha256_file
from loopline.models.signature import ColumnSpec, Signature, TensorSpec

MLMODEL = "MLmodel"
MAX_DESCRIPTION_BYTES = 1 << 20  # MLmodel and input examples are small; more is no model
_COLUMN_TYPES = {
    "double": "double",
    "float": "double",
    "long": "integer",
    "integer": "integer",
    "string": "string",
    "boolean": "boolean",
    "datetime": "datetime",
}


def is_mlflow_model(directory: Path) -> bool:
    return (directory / MLMODEL).is_file()


def describe_mlflow_model(directory: Path) -> ModelMetadata:
    """Write `loopline-model.json` for the MLflow model in `directory` and return it."""
    spec = _read_mlmodel(directory)
    flavors = spec.get("flavors")
    if not isinstance(flavors, dict) or not flavors:
        raise InvalidInput(f"{MLMODEL} names no flavor: it is not an MLflow model")
    sklearn = flavors.get("sklearn") or {}
    options: dict[str, Any] = {"mlflow_flavors": sorted(str(f) for f in flavors)}
    if sklearn.get("serialization_format") == "skops" and isinstance(sklearn.get("pickled_model"), str):
        flavor = "sklearn"
        options["file"] = check_artifact_name(sklearn["pickled_model"])
    else:
        flavor = "mlflow"
        options["mlflow_flavor"] = next(
            (str(f) for f in flavors if f != "python_function"), "python_function"
        )
    files = {
        path.relative_to(directory).as_posix(): ModelFile(sha256_file(path), path.stat().st_size)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != METADATA_FILE
    }
    if flavor == "sklearn" and options["file"] not in files:
        raise InvalidInput(f"{MLMODEL} names model file {options['file']!r}, which is not among the files")
    classes = _classes(directory, options) if flavor == "sklearn" else None
    options["classes"] = classes
    python_function = flavors.get("python_function") or {}
    metadata = ModelMetadata(
        flavor=flavor,
        task="classification" if classes else None,
        classes=classes,
        signature=_signature(spec.get("signature")),
        files=files,
        requirements=_requirements(directory),
        options=options,
        input_example=_input_example(directory, spec),
        python=str(python_function.get("python_version") or platform.python_version()),
    )
    (directory / METADATA_FILE).write_bytes(metadata.to_json())
    return metadata


def _read_small(path: Path) -> bytes:
    if path.stat().st_size > MAX_DESCRIPTION_BYTES:
        raise InvalidInput(f"{path.name} is larger than {MAX_DESCRIPTION_BYTES:,} bytes")
    return path.read_bytes()


def _read_mlmodel(directory: Path) -> dict[str, Any]:
    path = directory / MLMODEL
    if not path.is_file():
        raise NotFound(f"no {MLMODEL} file: the files are neither a loopline model nor an MLflow model")
    try:
        spec = yaml.safe_load(_read_small(path))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{MLMODEL} is not YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise InvalidInput(f"{MLMODEL} is not a mapping")
    return spec


def _classes(directory: Path, options: dict[str, Any]) -> list[Any] | None:
    """A classifier's classes, read by loading it the safe way; None when that is refused
    until a maintainer trusts its types."""
    try:
        return flavor_named("sklearn").load(directory, options, LoadOptions()).classes
    except UntrustedModel:
        return None


def _signature(raw: Any) -> Signature | None:
    """MLflow's column or tensor signature in loopline's terms; None when it has none or
    uses a type loopline's signatures do not speak of (binary, arrays, objects)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("inputs"), str):
        return None
    try:
        inputs = _schema(json.loads(raw["inputs"]))
        outputs = _schema(json.loads(raw["outputs"])) if isinstance(raw.get("outputs"), str) else None
    except (ValueError, TypeError, KeyError):
        return None
    return None if inputs is None else Signature(inputs, outputs)


def _schema(columns: Any) -> tuple[ColumnSpec, ...] | TensorSpec | None:
    if not isinstance(columns, list) or not columns:
        return None
    if len(columns) == 1 and columns[0].get("type") == "tensor":
        tensor = columns[0]["tensor-spec"]
        shape = tuple(None if d == -1 else int(d) for d in tensor["shape"])
        return TensorSpec(str(tensor["dtype"]), shape)
    specs = []
    for column in columns:
        kind = _COLUMN_TYPES.get(column.get("type"))
        if kind is None or not isinstance(column.get("name"), str):
            return None
        specs.append(ColumnSpec(column["name"], kind, nullable=not column.get("required", True)))
    return tuple(specs)


def _input_example(directory: Path, spec: dict[str, Any]) -> Any:
    """The first rows of a table example as records; None for any other kind."""
    info = spec.get("saved_input_example_info")
    name = info.get("artifact_path") if isinstance(info, dict) else None
    if not isinstance(name, str):
        return None
    path = directory / check_artifact_name(name)
    try:
        example = json.loads(_read_small(path))
    except (OSError, ValueError, InvalidInput):
        return None
    if isinstance(example, dict) and "dataframe_split" in example:
        example = example["dataframe_split"]
    if not isinstance(example, dict) or not isinstance(example.get("columns"), list):
        return None
    columns, rows = example["columns"], example.get("data") or []
    return [dict(zip(columns, row, strict=False)) for row in rows[:EXAMPLE_ROWS]]


def _requirements(directory: Path) -> list[str]:
    path = directory / "requirements.txt"
    if not path.is_file():
        return []
    lines = _read_small(path).decode("utf-8", "replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith(("#", "-"))]
