"""The contract of a model flavor, checked the way scikit-learn's `check_estimator` checks an
estimator: a flavor from another package must pass it before loopline can rely on it.

    from loopline.models import check_flavor
    check_flavor(MyFlavor(), fitted_model, input_example)
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loopline.core.errors import ArtifactCorrupted, ContractViolation, UntrustedModel
from loopline.models.flavors import FALLBACK, Flavor, LoadOptions, Predictor
from loopline.models.loaded import LoadedModel
from loopline.models.package import METADATA_FILE, ModelMetadata, save_model, verify_files

_PICKLE_PROTOCOLS = (2, 3, 4, 5)


def check_flavor(
    flavor: Flavor, model: Any, input_example: pd.DataFrame | np.ndarray, *, load: LoadOptions = LoadOptions()
) -> None:
    """Save `model` with `flavor`, load it back and predict `input_example`; raise
    ContractViolation naming the first rule the flavor breaks:

    - it has a `name` and the `packages` whose versions a model pins, and it claims `model`;
    - what it saves lives in the model's folder, every file of it hashed in the metadata, and
      a file changed after saving is refused before the flavor reads it;
    - a saved file that is a pickle never loads without `trust=True` (UntrustedModel);
    - the loaded model predicts what the original predicts, with probabilities shaped by its
      classes, and its array fast path (if any) answers alike;
    - the signature of a tabular example is recorded.

    `load` carries what loading needs beyond the files (a torch `module_factory`, say)."""
    if not isinstance(getattr(flavor, "name", None), str) or not isinstance(
        getattr(flavor, "packages", None), tuple
    ):
        raise ContractViolation(f"{type(flavor).__name__} needs a `name` (str) and `packages` (tuple of str)")
    if not flavor.matches(model):
        raise ContractViolation(
            f"flavor {flavor.name} does not claim the {type(model).__name__} it was given"
        )
    with tempfile.TemporaryDirectory(prefix="loopline-flavor-check-") as tmp:
        directory = Path(tmp, "model")
        metadata = save_model(model, directory, flavor=flavor, input_example=input_example)
        _check_files(flavor, directory, metadata)
        predictor = _load_safely(flavor, directory, metadata, load)
        _check_predictions(flavor, LoadedModel(predictor, metadata), model, input_example)
        _check_tampering(flavor, directory, metadata)


def _check_files(flavor: Flavor, directory: Path, metadata: ModelMetadata) -> None:
    written = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    if not metadata.files:
        raise ContractViolation(f"flavor {flavor.name} saved no file")
    unlisted = written - set(metadata.files) - {METADATA_FILE}
    if unlisted:
        raise ContractViolation(
            f"flavor {flavor.name} wrote files its metadata does not hash: {sorted(unlisted)}"
        )
    if isinstance(metadata.input_example, dict) and metadata.signature is None:
        raise ContractViolation(f"flavor {flavor.name}: no signature was recorded for a tabular example")


def _pickled(path: Path) -> bool:
    """Whether the file starts as a pickle does (protocol 2 or later)."""
    with path.open("rb") as handle:
        head = handle.read(2)
    return len(head) == 2 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS


def _load_safely(flavor: Flavor, directory: Path, metadata: ModelMetadata, load: LoadOptions) -> Predictor:
    """The loaded predictor; a flavor that reads a pickle must refuse to without trust."""
    pickles = sorted(name for name in metadata.files if _pickled(directory / name))
    try:
        predictor = flavor.load(directory, metadata.options, dataclasses.replace(load, trust=False))
    except UntrustedModel:
        return flavor.load(directory, metadata.options, dataclasses.replace(load, trust=True))
    if pickles and flavor.name != FALLBACK.name:
        raise ContractViolation(
            f"flavor {flavor.name} loads the pickled files {pickles} without trust=True; "
            "it must raise UntrustedModel unless the caller trusts the model"
        )
    return predictor


def _check_predictions(
    flavor: Flavor, loaded: LoadedModel, model: Any, example: pd.DataFrame | np.ndarray
) -> None:
    predicted = loaded.predict(example).to_numpy()
    if len(predicted) != len(example):
        raise ContractViolation(f"flavor {flavor.name} predicts {len(predicted)} rows for {len(example)}")
    native = getattr(model, "predict", None)
    if callable(native) and type(model).__name__ != "Booster":
        expected = np.asarray(native(example)).reshape(len(example), -1)
        if not np.allclose(
            expected.astype(float), predicted.reshape(len(example), -1).astype(float), atol=1e-6
        ):
            raise ContractViolation(
                f"flavor {flavor.name}: the loaded model predicts otherwise than the original"
            )
    if loaded.classes is not None:
        proba = loaded.predict_proba(example).to_numpy()
        if proba.shape != (len(example), len(loaded.classes)):
            raise ContractViolation(
                f"flavor {flavor.name}: probabilities shaped {proba.shape}, "
                f"not (rows, {len(loaded.classes)} classes)"
            )
    scorer = loaded.array_scorer()  # checked on the stored example: here on every row given
    if scorer is not None and isinstance(example, pd.DataFrame) and loaded.signature is not None:
        fast, _ = scorer(example[loaded.signature.input_names].to_numpy(dtype=np.float64))
        if not np.array_equal(np.asarray(fast), predicted.reshape(len(example), -1)[:, 0]):
            raise ContractViolation(f"flavor {flavor.name}: its array fast path predicts otherwise")


def _check_tampering(flavor: Flavor, directory: Path, metadata: ModelMetadata) -> None:
    name = sorted(metadata.files)[0]
    path = directory / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    try:
        verify_files(directory, metadata)
    except ArtifactCorrupted:
        return
    raise ContractViolation(f"flavor {flavor.name}: a changed byte in {name!r} went unnoticed")
