"""Models: flavors that save and load natively (more come from other packages through the
`loopline.flavors` entry points, checked by `check_flavor`), signatures, the uniform predict
interface."""

from loopline.models.contract import check_flavor
from loopline.models.loaded import LoadedModel
from loopline.models.package import ModelMetadata, load_model_dir, load_version, read_metadata, save_model
from loopline.models.signature import ColumnSpec, Signature, TensorSpec, infer_signature

__all__ = [
    "ColumnSpec",
    "LoadedModel",
    "ModelMetadata",
    "Signature",
    "TensorSpec",
    "check_flavor",
    "infer_signature",
    "load_model_dir",
    "load_version",
    "read_metadata",
    "save_model",
]
