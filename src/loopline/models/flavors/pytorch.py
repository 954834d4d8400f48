"""PyTorch models as TorchScript (no Python code in the file), or as a state_dict loaded
with `weights_only=True` into a module the caller builds.

TorchScript is deprecated from torch 2.13 in favour of torch.export; its warnings are
silenced here, where the choice is made, until models move to torch.export.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from loopline.core.errors import InvalidInput
from loopline.models.flavors.base import LoadOptions, Predictor, SavedModel, as_float_array, module_is_loaded

SCRIPT_FILE = "model.pt"
STATE_FILE = "state_dict.pt"


@contextlib.contextmanager
def _quiet_torchscript() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
        yield


class _TorchPredictor:
    def __init__(self, module: Any, classes: list[Any] | None) -> None:
        self.native = module.eval()
        self.classes = classes

    def _forward(self, inputs: pd.DataFrame | np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            output = self.native(torch.tensor(as_float_array(inputs)))
        return np.asarray(output.numpy())

    def predict(self, inputs: pd.DataFrame | np.ndarray) -> Any:
        output = self._forward(inputs)
        if self.classes is None:
            return output[:, 0] if output.ndim == 2 and output.shape[1] == 1 else output
        return np.asarray(self.classes)[output.argmax(axis=1)]

    def predict_proba(self, inputs: pd.DataFrame | np.ndarray) -> np.ndarray | None:
        if self.classes is None:
            return None
        logits = self._forward(inputs)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))

    def for_arrays(self) -> _TorchPredictor:
        return self  # takes arrays as they are


class PyTorchFlavor:
    """Classifiers pass `classes` when logged: outputs are then logits, one per class."""

    name: ClassVar[str] = "pytorch"
    packages: ClassVar[tuple[str, ...]] = ("torch", "numpy", "pandas")

    def matches(self, model: object) -> bool:
        if not module_is_loaded("torch"):
            return False
        import torch

        return isinstance(model, torch.nn.Module)

    def save(self, model: Any, directory: Path, input_example: Any) -> SavedModel:
        with _quiet_torchscript():
            return self._save(model, directory, input_example)

    def _save(self, model: Any, directory: Path, input_example: Any) -> SavedModel:
        import torch

        try:
            scripted = torch.jit.script(model)
        except Exception:  # not scriptable: trace it on the example instead
            if input_example is None:
                raise InvalidInput(
                    "this torch module cannot be scripted; give an input_example so it can be traced"
                ) from None
            scripted = torch.jit.trace(model, torch.tensor(as_float_array(input_example)))
        torch.jit.save(scripted, str(directory / SCRIPT_FILE))
        torch.save(model.state_dict(), directory / STATE_FILE)
        return SavedModel(options={"file": SCRIPT_FILE, "state_dict": STATE_FILE})

    def load(self, directory: Path, options: Mapping[str, Any], load: LoadOptions) -> Predictor:
        import torch

        classes = options.get("classes")
        if load.module_factory is None:
            with _quiet_torchscript():
                module = torch.jit.load(
                    io.BytesIO((directory / SCRIPT_FILE).read_bytes()), map_location="cpu"
                )
            return _TorchPredictor(module, classes)
        module = load.module_factory()
        state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
        return _TorchPredictor(module, classes)
