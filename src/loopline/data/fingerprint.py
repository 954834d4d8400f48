"""Content hashes of tables: the key of a dataset in the lineage graph."""

from __future__ import annotations

import hashlib
import json

import pandas as pd


def table_digest(frame: pd.DataFrame) -> str:
    """sha256 over column names, dtypes and every value, in row order (the index is not data)."""
    digest = hashlib.sha256()
    schema = [[str(name), str(dtype)] for name, dtype in frame.dtypes.items()]
    digest.update(json.dumps(schema).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
