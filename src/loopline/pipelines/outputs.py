"""Step outputs as typed artifacts, and the fingerprints that make up cache keys.

DataFrames and Arrow tables are stored as Parquet and numpy arrays as .npy (never
pickled), both among the step run's artifacts; model versions are referenced in the
registry; JSON values are kept in the store. Anything else is refused with a hint.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from typing import TYPE_CHECKING, Any

from loopline.core.errors import InvalidInput, NotFound
from loopline.core.pipelines import OutputRef
from loopline.core.registry import ModelVersion

if TYPE_CHECKING:
    from loopline.artifacts import BlobStore
    from loopline.services import Registry, Tracking


SUPPORTED = "a pandas DataFrame, an Arrow table, a numpy array, a JSON value or a ModelVersion"


def _canonical_json(value: Any) -> str | None:
    """The value as canonical JSON, or None when it is not plain JSON data."""

    def plain(v: Any) -> bool:
        if v is None or isinstance(v, bool | int | str):
            return True
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, list | tuple):
            return all(plain(x) for x in v)
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        return False

    return json.dumps(value, sort_keys=True, separators=(",", ":")) if plain(value) else None


def fingerprint(value: Any, where: str) -> str:
    """A content digest of an argument passed to a step, for its cache key."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if isinstance(value, pd.DataFrame | pa.Table):
        from loopline.profiling.fingerprint import table_digest

        return table_digest(value)
    if isinstance(value, np.ndarray) and value.dtype != object:
        digest = hashlib.sha256(f"{value.dtype.str}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
        return digest.hexdigest()
    if isinstance(value, ModelVersion):
        return hashlib.sha256(f"{value.uri}\0{value.digest}".encode()).hexdigest()
    text = _canonical_json(value)
    if text is None:
        raise InvalidInput(f"{where} is a {type(value).__name__}; steps take {SUPPORTED}")
    return hashlib.sha256(text.encode()).hexdigest()


def store_output(value: Any, step: str, run_id: str, tracking: Tracking) -> OutputRef:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(value, pd.DataFrame | pa.Table):
        buffer = io.BytesIO()
        table = value if isinstance(value, pa.Table) else pa.Table.from_pandas(value)
        pq.write_table(table, buffer)
        entry = tracking.log_artifact_bytes(run_id, "outputs/output.parquet", buffer.getvalue())
        return OutputRef("parquet", entry.digest, "arrow" if isinstance(value, pa.Table) else "pandas")
    if isinstance(value, np.ndarray) and value.dtype != object:
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        entry = tracking.log_artifact_bytes(run_id, "outputs/output.npy", buffer.getvalue())
        return OutputRef("npy", entry.digest)
    if isinstance(value, ModelVersion):
        return OutputRef("model", fingerprint(value, step), {"name": value.model, "version": value.version})
    text = _canonical_json(value)
    if text is None:
        raise InvalidInput(
            f"step {step} returned a {type(value).__name__}, which loopline cannot store without "
            f"pickle; return {SUPPORTED} (register a model with run.log_model and return the version)"
        )
    return OutputRef("json", hashlib.sha256(text.encode()).hexdigest(), json.loads(text))


def output_exists(ref: OutputRef, blobs: BlobStore, registry: Registry) -> bool:
    """Whether a cached output can still be loaded (blobs and versions can be deleted)."""
    if ref.kind in ("parquet", "npy"):
        return blobs.exists(ref.digest)
    if ref.kind == "model":
        try:
            return not registry.get_version(ref.value["name"], ref.value["version"]).deleted
        except NotFound:
            return False
    return True


def load_output(ref: OutputRef, blobs: BlobStore, registry: Registry) -> Any:
    import numpy as np
    import pyarrow.parquet as pq

    if ref.kind == "parquet":
        table = pq.read_table(blobs.local_file(ref.digest, "step output"))
        return table if ref.value == "arrow" else table.to_pandas()
    if ref.kind == "npy":
        return np.load(io.BytesIO(blobs.read(ref.digest, "step output")), allow_pickle=False)
    if ref.kind == "model":
        return registry.get_version(ref.value["name"], ref.value["version"])
    return ref.value
