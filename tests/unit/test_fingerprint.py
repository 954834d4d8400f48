"""Table digests: the same rows hash alike however they are cut into batches or typed on the
way in, and any change to a value, a name, a type or the order changes the digest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline.profiling.fingerprint import TableHasher, table_digest


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "n": rng.integers(0, 100, rows),
            "s": rng.choice(["a", "bb", "", "ccc"], rows),
            "flag": rng.random(rows) < 0.5,
            "at": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 10**6, rows), unit="s"),
        }
    )
    frame.loc[frame.index[::7], "x"] = np.nan
    frame["s"] = frame["s"].where(rng.random(rows) > 0.1, None)
    return frame


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.lists(st.integers(1, 50), min_size=1, max_size=10), st.integers(0, 10**6))
def test_the_digest_does_not_depend_on_batch_boundaries(rows: int, sizes: list[int], seed: int) -> None:
    table = pa.Table.from_pandas(_frame(rows, seed), preserve_index=False)
    hasher = TableHasher(table.schema)
    start = 0
    while start < rows:  # batches of the given sizes, cycling, to the end
        size = sizes[start % len(sizes)]
        for batch in table.slice(start, size).to_batches():
            hasher.update(batch)
        start += size
    assert hasher.hexdigest() == table_digest(table)


def test_every_kind_of_change_changes_the_digest() -> None:
    frame = _frame(200, seed=1)
    digest = table_digest(frame)
    changed = [
        frame.assign(x=frame["x"].fillna(0.0)),  # a null became a value
        frame.assign(s=frame["s"].where(frame.index != 3, "bb!")),  # one string
        frame.rename(columns={"n": "m"}),  # a name
        frame.assign(n=frame["n"].astype("int32")),  # a type
        frame.iloc[::-1],  # the order of rows
        frame.iloc[:-1],  # a row fewer
        frame[["n", "x", "s", "flag", "at"]],  # the order of columns
    ]
    digests = {table_digest(c) for c in changed}
    assert digest not in digests and len(digests) == len(changed)


def test_strings_that_concatenate_alike_still_differ() -> None:
    """Lengths are hashed beside the bytes: ["ab", "c"] is not ["a", "bc"]."""
    assert table_digest(pd.DataFrame({"s": ["ab", "c"]})) != table_digest(pd.DataFrame({"s": ["a", "bc"]}))


def test_encodings_of_the_same_text_hash_alike() -> None:
    plain = pd.DataFrame({"s": ["x", "y", "x"]})
    assert table_digest(plain) == table_digest(plain.astype({"s": "category"}))
    large = pa.table({"s": pa.array(["x", "y", "x"], pa.large_string())})
    assert table_digest(large) == table_digest(plain)
