"""Models: flavors that save and load natively, signatures, the uniform predict interface."""

from loopline.models.loaded import LoadedModel
from loopline.models.package import ModelMetadata, load_model_dir, read_metadata, save_model
from loopline.models.signature import ColumnSpec, Signature, TensorSpec, infer_signature

__all__ = [
    "ColumnSpec",
    "LoadedModel",
    "ModelMetadata",
    "Signature",
    "TensorSpec",
    "infer_signature",
    "load_model_dir",
    "read_metadata",
    "save_model",
]
