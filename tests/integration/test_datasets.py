"""The dataset registry on real stores: versions by content, any source (frame, CSV,
Parquet, SQL) giving the same version for the same rows, profiles that match the data,
clear refusals of bad files with nothing stored, and concurrent registrations."""

from __future__ import annotations

import gzip
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from loopline.artifacts import BlobStore
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput, NotFound
from loopline.data import ingest
from loopline.monitoring import detect_drift
from loopline.services import Datasets
from loopline.store import MetadataStore
from loopline.wiring.backends import Backends


@pytest.fixture
def datasets(store: MetadataStore, blobs: BlobStore) -> Datasets:
    return Backends(store, blobs).services(Principal("alice", is_owner=True)).datasets


def customers(rows: int = 2_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows),
            "age": rng.integers(18, 90, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.6, 0.3, 0.1]),
        }
    )
    frame.loc[frame.index[::10], "income"] = np.nan
    return frame


def test_versions_follow_content(datasets: Datasets, tmp_path: Path) -> None:
    frame = customers()
    first, created = datasets.register("customers", frame, description="all of them")
    assert created and first.version == 1 and first.rows == 2_000 and first.uri == "datasets:/customers/1"
    again, created = datasets.register("Customers", frame.copy())
    assert not created and again.version == 1  # the same rows, whatever the spelling of the name
    frame.to_csv(tmp_path / "customers.csv", index=False)
    from_csv, created = datasets.register("customers", tmp_path / "customers.csv")
    assert not created and from_csv.digest == first.digest
    frame.to_parquet(tmp_path / "customers.parquet")
    assert datasets.register("customers", tmp_path / "customers.parquet")[0].version == 1
    changed, created = datasets.register("customers", frame.assign(age=frame["age"] + 1))
    assert created and changed.version == 2
    assert datasets.get("customers").version == 2 and datasets.get("customers@1").digest == first.digest
    assert [v.version for v in datasets.versions("customers")] == [1, 2]
    assert [v.name for v in datasets.list_datasets()] == ["customers"]
    back = datasets.read(datasets.get("datasets:/customers/1")).to_pandas()
    pd.testing.assert_frame_equal(back, frame)
    with pytest.raises(NotFound, match="no version 7"):
        datasets.get("customers@7")
    with pytest.raises(NotFound, match="does not exist"):
        datasets.get("suppliers")


def test_the_profile_describes_the_data(datasets: Datasets) -> None:
    frame = customers(50_000, seed=1)
    version, _ = datasets.register("customers", frame)
    columns = {c["name"]: c for c in version.columns}
    assert version.schema == {"id": "int64", "age": "int64", "income": "double", "plan": "string"}
    income = columns["income"]
    values = frame["income"].dropna()
    assert income["nulls"] == 5_000 and income["count"] == len(values)
    assert income["mean"] == pytest.approx(values.mean()) and income["std"] == pytest.approx(values.std())
    assert float(income["min"]) == values.min() and float(income["max"]) == values.max()
    spread = values.max() - values.min()
    for q, found in income["quantiles"].items():
        assert found == pytest.approx(values.quantile(float(q)), abs=spread / 1000)
    assert sum(income["histogram"]["counts"]) == len(values)
    assert columns["id"]["distinct"] == pytest.approx(50_000, rel=0.05)  # HyperLogLog
    assert [k for k, _ in columns["plan"]["top"]] == ["basic", "plus", "pro"]
    assert sum(n for _, n in columns["plan"]["top"]) == 50_000
    profile = datasets.reference_profile(version)
    assert profile.rows == 50_000 and set(profile.columns) == set(frame.columns)


def test_a_large_csv_is_read_in_blocks_and_widens_late_types(
    datasets: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "CSV_BLOCK", 4096)  # many blocks from a small file
    rows = ["count,label,score"] + [f"{i},a,{i}" for i in range(3_000)]
    rows += ["1.5,b,", "7,,x"]  # a float after thousands of integers; text in a numeric column
    path = tmp_path / "late.csv.gz"
    path.write_bytes(gzip.compress("\n".join(rows).encode()))
    seen: list[tuple[int, int | None]] = []
    version, _ = datasets.register("late", path, progress=lambda done, total: seen.append((done, total)))
    assert version.schema == {"count": "double", "label": "string", "score": "string"}
    assert version.rows == 3_002
    back = datasets.read(version).to_pandas()
    assert back["count"].iloc[-2] == 1.5 and back["score"].iloc[-1] == "x" and pd.isna(back["label"].iloc[-1])
    assert seen and seen[-1][0] == seen[-1][1] == path.stat().st_size


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a,b,c\n1,2,3\n4,5\n6,7,8\n", r"line 3 has 2 fields where the header has 3"),
        (b"a,b\n1,2\n3,4,5\n", r"line 3 has 3 fields"),
        (b"name,city\nx,M\xfcnchen\n", r"column 'city' is not utf-8 text; give the file's encoding"),
        (b"", r"is empty"),
        (b"a,a\n1,2\n", r"column 'a' appears twice"),
        (b"a,b\n", r"has no rows"),
    ],
)
def test_malformed_csv_is_refused_clearly_and_nothing_is_stored(
    datasets: Datasets, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=message):
        datasets.register("bad", path)
    assert datasets.list_datasets() == []


def test_a_late_encoding_error_names_the_column(
    datasets: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "CSV_BLOCK", 1024)
    path = tmp_path / "late.csv"
    path.write_bytes(b"n,city\n" + b"".join(b"%d,Paris\n" % i for i in range(500)) + b"1,M\xfcnchen\n")
    with pytest.raises(InvalidInput, match=r"column 'city' holds text that is not utf-8"):
        datasets.register("cities", path)
    version, _ = datasets.register("cities", path, encoding="latin-1")
    assert datasets.read(version).column("city").to_pylist()[-1] == "München"


def test_corrupt_parquet_is_refused(datasets: Datasets, tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    customers(100_000).to_parquet(good, row_group_size=10_000)
    (tmp_path / "junk.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(InvalidInput, match=r"junk\.parquet is not a readable Parquet file"):
        datasets.register("bad", tmp_path / "junk.parquet")
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)  # zeroes over the pages of a row group
    (tmp_path / "damaged.parquet").write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match=r"damaged\.parquet"):
        datasets.register("bad", tmp_path / "damaged.parquet")
    with pytest.raises(InvalidInput, match="cannot tell the format"):
        datasets.register("bad", good.rename(tmp_path / "good.xlsx"))
    with pytest.raises(InvalidInput, match="is not a file"):
        datasets.register("bad", tmp_path / "missing.csv")
    assert datasets.list_datasets() == []


def test_sql_sources_stream_and_unify_types(
    datasets: Datasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "SQL_CHUNK", 100)
    url = f"sqlite:///{tmp_path / 'source.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE orders (id INTEGER, amount REAL, note TEXT)"))
        conn.execute(  # the first chunk has no notes at all, and whole-number amounts
            sa.text("INSERT INTO orders VALUES (:id, :amount, :note)"),
            [
                {"id": i, "amount": float(i if i < 150 else i + 0.5), "note": None if i < 120 else f"n{i}"}
                for i in range(300)
            ],
        )
    engine.dispose()
    version, _ = datasets.register("orders", "SELECT * FROM orders ORDER BY id", sql_url=url)
    assert version.rows == 300 and version.schema == {"id": "int64", "amount": "double", "note": "string"}
    assert version.source.startswith("query on sqlite:///")
    back = datasets.read(version).to_pandas()
    assert back["note"].isna().sum() == 120 and back["amount"].iloc[-1] == 299.5
    with pytest.raises(InvalidInput, match="the query failed"):
        datasets.register("orders", "SELECT * FROM nowhere", sql_url=url)
    with pytest.raises(InvalidInput, match="not a SQLAlchemy URL"):
        datasets.register("orders", "SELECT 1", sql_url="not a url")


def test_a_query_on_the_store_database_never_records_a_password(datasets: Datasets, store_url: str) -> None:
    url = sa.engine.make_url(store_url)
    if url.get_backend_name() == "postgresql":  # trust authentication: any password is accepted
        url = url.set(password="hunter2")
    count = "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1000) "
    version, _ = datasets.register(
        "numbers",
        count + "SELECT n, n * 0.5 AS half FROM g",
        sql_url=url.render_as_string(hide_password=False),
    )
    assert version.rows == 1000 and version.schema == {"n": "int64", "half": "double"}
    assert "hunter2" not in version.source


def test_concurrent_registrations_agree(datasets: Datasets) -> None:
    frames = [customers(500, seed=s % 3) for s in range(9)]  # three distinct contents, three times each
    found: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def register(frame: pd.DataFrame) -> None:
        try:
            version, _ = datasets.register("shared", frame)
            found.append((version.digest, version.version))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(f,)) for f in frames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    by_digest: dict[str, set[int]] = {}
    for digest, number in found:
        by_digest.setdefault(digest, set()).add(number)
    assert len(by_digest) == 3 and all(len(v) == 1 for v in by_digest.values())
    assert sorted(v.pop() for v in by_digest.values()) == [1, 2, 3]


def test_diff_reports_schema_and_moved_columns(datasets: Datasets) -> None:
    old, _ = datasets.register("customers", customers(20_000, seed=3))
    frame = customers(20_000, seed=4)
    frame["income"] = frame["income"] * 1.5
    frame["plan"] = frame["plan"].where(frame.index % 5 != 0, "enterprise")
    new, _ = datasets.register("customers", frame.drop(columns=["age"]).assign(region="eu"))
    result = datasets.diff(old, new)
    assert result.added == ["region"] and result.removed == ["age"] and result.retyped == []
    changes = {c["column"]: c for c in result.changes}
    assert changes["income"]["drifted"] and changes["income"]["test"] == "wasserstein"
    assert changes["plan"]["new_categories"] == ["enterprise"]
    assert "id" not in changes  # the same values: nothing to report


def test_drift_accepts_registered_datasets(datasets: Datasets) -> None:
    from loopline.datasets import Dataset

    reference = Dataset(datasets.register("customers", customers(5_000, seed=5))[0], datasets)
    shifted = customers(5_000, seed=6).assign(age=lambda f: f["age"] + 15)
    current = Dataset(datasets.register("customers", shifted)[0], datasets)
    result = detect_drift(reference, current)
    assert result.drifted_columns == ["age"]
    assert detect_drift(reference, current, columns=["income"]).drifted_columns == []


def test_the_stored_file_is_verified_on_read(datasets: Datasets, blobs: BlobStore) -> None:
    version, _ = datasets.register("customers", customers())
    path = datasets.local_path(version)
    assert pq.read_metadata(path).num_rows == 2_000
    # as in a new process:
    fresh = Backends(datasets._store, BlobStore(blobs.url)).services(datasets.principal).datasets
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-10] + bytes(10))
    with pytest.raises(Exception, match="corrupted"):
        fresh.read(version)


_MEASURE = """
import resource, sys
from pathlib import Path
from loopline.artifacts import BlobStore
from loopline.core.entities import Principal
from loopline.services import Datasets
from loopline.wiring.backends import Backends
from loopline.store import open_metadata_store

home = Path(sys.argv[2])
service = Backends(
    open_metadata_store(f"sqlite:///{home / 'store.db'}"), BlobStore(str(home / 'blobs'))
).services(Principal("m", is_owner=True)).datasets
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
version, _ = service.register("big", sys.argv[1])
print(version.rows, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.slow
def test_ingestion_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    growth = {}
    for copies in (1, 4):
        path = tmp_path / f"big{copies}.csv"
        with path.open("wb") as out:  # 750k rows, about 40 MB, per copy; Arrow writes 10x faster than pandas
            for copy in range(copies):
                block = pd.DataFrame(rng.normal(size=(750_000, 5)).round(6), columns=list("abcde"))
                block["k"] = rng.choice(["x", "yy", "zzz"], 750_000)
                options = pa_csv.WriteOptions(include_header=copy == 0)
                pa_csv.write_csv(pa.Table.from_pandas(block, preserve_index=False), out, options)
        home = tmp_path / f"home{copies}"
        home.mkdir()
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(path), str(home)], capture_output=True, text=True, check=True
        )
        rows, growth[copies] = map(int, done.stdout.split())
        assert rows == 750_000 * copies
    # Four times the rows (about 160 MB of CSV), and the peak moves by no more than noise.
    assert growth[4] < growth[1] + 40, growth
