"""A model on disk: the flavor's files plus `loopline-model.json`, which records the
flavor, signature, input example, pinned requirements and the sha256 of every file.

Saving loads the model back and checks it reproduces its own predictions on the input
example, so a model that does not survive serialisation is refused when it is logged,
not when it is served.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import platform
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.artifacts.names import check_artifact_name
from loopline.core.errors import ArtifactCorrupted, InvalidInput, LooplineError, NotFound
from loopline.core.registry import ModelVersion, version_trusted_types, version_trusts_code
from loopline.models.flavors import Flavor, LoadOptions, flavor_for, flavor_named
from loopline.models.loaded import LoadedModel
from loopline.models.onnx_export import export_sklearn_to_onnx
from loopline.models.signature import Signature, as_frame, infer_signature

METADATA_FILE = "loopline-model.json"
FORMAT_VERSION = 1
EXAMPLE_ROWS = 5
TASKS = ("classification", "regression")


@dataclass(frozen=True, slots=True)
class ModelFile:
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    flavor: str
    task: str | None
    signature: Signature | None
    files: Mapping[str, ModelFile]
    requirements: Sequence[str]
    options: Mapping[str, Any] = field(default_factory=dict)
    classes: Sequence[Any] | None = None
    input_example: Any = None  # JSON: records for tables, nested lists for tensors
    python: str = ""

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "flavor": self.flavor,
            "task": self.task,
            "classes": None if self.classes is None else list(self.classes),
            "signature": None if self.signature is None else self.signature.to_dict(),
            "input_example": self.input_example,
            "requirements": list(self.requirements),
            "python": self.python,
            "options": dict(self.options),
            "files": {path: {"sha256": f.sha256, "size": f.size} for path, f in sorted(self.files.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMetadata:
        if data.get("format_version") != FORMAT_VERSION:
            raise InvalidInput(
                f"model format version {data.get('format_version')!r} is not one this loopline reads"
            )
        signature = data.get("signature")
        return cls(
            flavor=data["flavor"],
            task=data.get("task"),
            classes=data.get("classes"),
            signature=None if signature is None else Signature.from_dict(signature),
            input_example=data.get("input_example"),
            requirements=data.get("requirements", []),
            python=data.get("python", ""),
            options=data.get("options", {}),
            files={path: ModelFile(f["sha256"], f["size"]) for path, f in data["files"].items()},
        )

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=_json_default).encode()

    def example_frame(self) -> pd.DataFrame | np.ndarray | None:
        if self.input_example is None:
            return None
        if self.signature is not None and not isinstance(self.signature.inputs, tuple):
            return np.asarray(self.input_example, dtype=self.signature.inputs.dtype)
        frame = pd.DataFrame.from_records(self.input_example)
        if self.signature is not None:  # JSON lost the types: restore them
            from loopline.models.signature import enforce

            restored = enforce(self.signature, frame)
            assert isinstance(restored, pd.DataFrame)
            return restored
        return frame


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _example_json(example: pd.DataFrame | np.ndarray) -> Any:
    if isinstance(example, np.ndarray):
        return example[:EXAMPLE_ROWS].tolist()
    head = example.head(EXAMPLE_ROWS)
    return json.loads(head.to_json(orient="records", date_format="iso"))


@functools.cache
def _distributions_of_modules() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def pinned_requirements(flavor: Flavor) -> list[str]:
    """`name==version` of loopline and of the distributions that provide the flavor's
    modules (`xgboost` may come from `xgboost-cpu`)."""
    distributions = {"loopline"}
    for module in flavor.packages:
        distributions.update(_distributions_of_modules().get(module, []))
    pins = []
    for distribution in distributions:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            pins.append(f"{distribution}=={importlib.metadata.version(distribution)}")
    return sorted(pins)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(
    model: Any,
    directory: Path,
    *,
    flavor: str | Flavor | None = None,
    input_example: Any = None,
    signature: Signature | None = None,
    task: str | None = None,
    classes: Sequence[Any] | None = None,
    trusted_types: Sequence[str] = (),
    onnx: bool = False,
    onnx_tolerance: float = 1e-4,
) -> ModelMetadata:
    """Write `model` into the empty `directory` and return what was recorded about it.

    With `onnx=True` a scikit-learn model also gets an ONNX export (checked against the
    original on the input example) that `load_model(..., onnx=True)` serves."""
    chosen = (
        flavor_for(model) if flavor is None else flavor_named(flavor) if isinstance(flavor, str) else flavor
    )
    if task is not None and task not in TASKS:
        raise InvalidInput(f"task must be one of {TASKS}, got {task!r}")
    example = None
    if input_example is not None:
        example = input_example if isinstance(input_example, np.ndarray) else as_frame(input_example)
    directory.mkdir(parents=True, exist_ok=True)
    saved = chosen.save(model, directory, example)
    known_classes = list(classes) if classes is not None else saved.classes
    options = {**saved.options, "classes": known_classes}
    if onnx:
        if chosen.name != "sklearn" or not isinstance(example, pd.DataFrame):
            raise InvalidInput("ONNX export is for scikit-learn models logged with a tabular input_example")
        options["onnx"] = export_sklearn_to_onnx(model, example, directory, onnx_tolerance)
    if signature is None and example is not None:
        signature = infer_signature(example)
    draft = ModelMetadata(
        flavor=chosen.name,
        task=task or ("classification" if known_classes else None),
        classes=known_classes,
        signature=signature,
        files={},
        requirements=pinned_requirements(chosen),
        options=options,
        input_example=None if example is None else _example_json(example),
        python=platform.python_version(),
    )
    if example is not None:
        signature = _check_round_trip(model, chosen, directory, draft, example, trusted_types)
    files = {
        path.relative_to(directory).as_posix(): ModelFile(sha256_file(path), path.stat().st_size)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != METADATA_FILE
    }
    metadata = ModelMetadata(**{**_fields(draft), "files": files, "signature": signature})
    (directory / METADATA_FILE).write_bytes(metadata.to_json())
    return metadata


def _fields(metadata: ModelMetadata) -> dict[str, Any]:
    return {name: getattr(metadata, name) for name in metadata.__dataclass_fields__}


def _check_round_trip(
    model: Any,
    flavor: Flavor,
    directory: Path,
    draft: ModelMetadata,
    example: pd.DataFrame | np.ndarray,
    trusted_types: Sequence[str],
) -> Signature | None:
    """Load what was written and predict the example; returns the signature with outputs."""
    predictor = flavor.load(directory, draft.options, LoadOptions(trust=True, trusted_types=trusted_types))
    loaded = LoadedModel(predictor, draft)
    try:
        predicted = loaded.predict(example)
    except LooplineError:
        raise
    except Exception as exc:
        raise InvalidInput(
            f"the saved {flavor.name} model cannot predict its input_example ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}); "
            "the example must be what the model takes, without the target"
        ) from exc
    original = _native_predictions(model, example)
    if original is not None and not _same(np.asarray(original), predicted.to_numpy()):
        raise InvalidInput(
            f"the {flavor.name} model does not reproduce its predictions after saving; it cannot be logged"
        )
    if draft.signature is None:
        return None
    outputs = infer_signature(predicted).inputs
    return Signature(draft.signature.inputs, outputs, draft.signature.extra_columns)


def _native_predictions(model: Any, example: pd.DataFrame | np.ndarray) -> Any:
    predict = getattr(model, "predict", None)
    if predict is None or type(model).__name__ == "Booster":
        return None  # torch modules and raw boosters: the round trip itself is the check
    try:
        return predict(example)
    except Exception:  # a model that only takes another input type; the load check remains
        return None


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        try:
            return bool(np.allclose(a.astype(float), b.astype(float), rtol=1e-5, atol=1e-6, equal_nan=True))
        except (TypeError, ValueError):
            return False
    return bool((a.astype(object) == b.astype(object)).all())


def read_metadata(directory: Path) -> ModelMetadata:
    path = directory / METADATA_FILE
    if not path.exists():
        raise NotFound(f"{directory} holds no loopline model ({METADATA_FILE} is missing)")
    try:
        metadata = ModelMetadata.from_dict(json.loads(path.read_bytes()))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path} is not a valid model description: {exc}") from None
    for name in metadata.files:  # read below `directory` only, whatever the description says
        check_artifact_name(name)
    return metadata


def verify_files(directory: Path, metadata: ModelMetadata) -> None:
    """Every file the description lists is in `directory`, as it was hashed. One message for
    a missing file and an altered one, so a refusal tells nothing about other paths."""
    for name, expected in metadata.files.items():
        path = directory / check_artifact_name(name)
        if not path.is_file() or path.stat().st_size != expected.size or sha256_file(path) != expected.sha256:
            raise ArtifactCorrupted(f"model file {name!r} is missing, or does not match its recorded sha256")


def load_model_dir(directory: Path, load: LoadOptions = LoadOptions()) -> LoadedModel:
    """Load a model saved by `save_model`, after verifying every file against its hash."""
    metadata = read_metadata(directory)
    verify_files(directory, metadata)
    if load.onnx:
        export = metadata.options.get("onnx")
        if export is None:
            raise InvalidInput("this model was logged without an ONNX export (log it with onnx=True)")
        predictor = flavor_named("onnx").load(directory / export["dir"], metadata.options, load)
    else:
        predictor = flavor_named(metadata.flavor).load(directory, metadata.options, load)
    return LoadedModel(predictor, metadata)


def load_version(download: Callable[[Path], ModelVersion], load: LoadOptions = LoadOptions()) -> LoadedModel:
    """Load a registered version: `download` writes its files (each verified against its hash)
    into a temporary folder, and returns the version."""
    with tempfile.TemporaryDirectory(prefix="loopline-model-") as tmp:
        version = download(Path(tmp))
        vouched = version_trusted_types(version)  # a maintainer's `models trust`, for every loader
        if vouched:
            load = dataclasses.replace(load, trusted_types=(*load.trusted_types, *vouched))
        if version_trusts_code(version):
            load = dataclasses.replace(load, trust=True)
        loaded = load_model_dir(Path(tmp), load)
    loaded.uri = version.uri
    return loaded
