"""The drift benchmark's data: 20 numeric and 2 categorical columns; in the current frame
5 numeric and 1 categorical column are shifted. Standard library + numpy + pandas only,
so the Evidently side (its own virtualenv) builds the very same frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

NUMERIC = [f"num_{i}" for i in range(20)]
CATEGORICAL = ["cat_0", "cat_1"]
SHIFTED = ["num_0", "num_1", "num_2", "num_3", "num_4", "cat_0"]
CATEGORIES = ["a", "b", "c", "d", "e"]


def frames(rows: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(shift: bool) -> pd.DataFrame:
        data = {}
        for i, name in enumerate(NUMERIC):
            scale = 1.0 + i / 10
            values = rng.normal(10.0 * i, scale, rows)
            if shift and name in SHIFTED:
                values = values + 0.5 * scale  # half a standard deviation
            data[name] = values
        for name in CATEGORICAL:
            shares = [0.4, 0.25, 0.15, 0.1, 0.1]
            if shift and name in SHIFTED:
                shares = [0.2, 0.25, 0.15, 0.2, 0.2]
            data[name] = rng.choice(CATEGORIES, rows, p=shares)
        return pd.DataFrame(data)

    return frame(False), frame(True)


def save(rows: int, directory: str) -> tuple[str, str]:
    """Write the frames as Parquet once; both sides read the same files."""
    reference, current = frames(rows)
    paths = (f"{directory}/reference-{rows}.parquet", f"{directory}/current-{rows}.parquet")
    reference.to_parquet(paths[0])
    current.to_parquet(paths[1])
    return paths


def _status(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_mark() -> float:
    """Hand the Parquet reader's scratch memory back, reset the peak resident size
    (Linux) and return the current one, in MiB. Both sides call it after loading."""
    import pyarrow

    pyarrow.default_memory_pool().release_unused()
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return _status("VmRSS")


def peak_since_mark() -> float:
    return _status("VmHWM")
