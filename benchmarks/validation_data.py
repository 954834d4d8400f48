"""The validation benchmark's data and rules: 20 numeric columns, a category, an id and an
age, with a broken copy holding known violations. Standard library + numpy + pandas only,
so the pandera side (its own virtualenv) builds the very same frames and rules."""

from __future__ import annotations

import numpy as np
import pandas as pd

NUMERIC = [f"num_{i}" for i in range(20)]
PLANS = ["basic", "plus", "pro"]

# column -> rule, in a neutral form each side translates into its own schema
RULES: dict[str, dict[str, object]] = {
    **{name: {"type": "number", "min": -100.0, "max": 400.0, "nullable": False} for name in NUMERIC},
    "plan": {"type": "string", "allowed": PLANS, "nullable": False},
    "id": {"type": "integer", "unique": True, "nullable": False},
    "age": {"type": "integer", "min": 18, "max": 120, "nullable": False},
}


def frame(rows: int, broken: bool, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({name: rng.normal(10.0 * i, 1.0 + i / 10, rows) for i, name in enumerate(NUMERIC)})
    data["plan"] = rng.choice(PLANS, rows)
    data["id"] = np.arange(rows)
    data["age"] = rng.integers(18, 91, rows)
    if broken:  # known violations, one kind per rule
        data.loc[data.index[::1000], "num_3"] = 1e6
        data.loc[data.index[::777], "plan"] = "gold"
        data.loc[data.index[5:8], "id"] = 4
        data.loc[data.index[::5000], "age"] = 7
    return data


def save(rows: int, directory: str) -> tuple[str, str]:
    paths = (f"{directory}/valid-{rows}.parquet", f"{directory}/broken-{rows}.parquet")
    frame(rows, broken=False).to_parquet(paths[0])
    frame(rows, broken=True).to_parquet(paths[1])
    return paths
