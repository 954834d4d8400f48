"""Privacy and storage lifecycle, measured.

    python -m benchmarks.lifecycle [--part gc|encryption|pii|all] [--runs 1000] [--quick]

* gc: `loopline gc` against `mlflow gc` (MLflow in benchmarks/.peers-venv, its own SQLite
  store and artifact folder), each in a fresh process, after the same workload: `--runs`
  runs with one metric and one artifact of their own, every second one deleted. Reported:
  the collection's wall time, runs and artifact files left (both must keep exactly the
  live half).
* encryption: the cost of encryption at rest on the paths that carry data: a 256 MiB blob
  stored and read back verified, and a 1,000,000-row prediction-log table written and read,
  with and without `LOOPLINE_ENCRYPTION_KEYS` (best of 3 each).
* pii: personal-data detection over a 1,000,000-row frame of 8 columns (e-mail, phone,
  card, IBAN, IP, national id, a numeric id and free text), and what it adds to profiling
  the same frame.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.run_all import PEER_PYTHON, ensure_peers_venv, run_json

HERE = Path(__file__).resolve().parent


# --- gc ------------------------------------------------------------------------------------


def loopline_gc(workdir: Path, runs: int) -> dict[str, Any]:
    """The same workload as peers/mlflow_gc.py through the SDK, then `loopline gc` timed in
    a fresh process."""
    import loopline as ll
    from loopline import _sdk

    home = workdir / "loopline"
    env = {**os.environ, "LOOPLINE_HOME": str(home)}
    for name in ("LOOPLINE_STORE_URI", "LOOPLINE_ARTIFACTS_URI", "LOOPLINE_URI", "LOOPLINE_ENCRYPTION_KEYS"):
        env.pop(name, None)
    ll.configure(home=home)
    started = time.perf_counter()
    for i in range(runs):
        with ll.start_run(experiment="gc") as run:
            run.log_metric("loss", 1.0 / (i + 1))
            run.log_artifact(i.to_bytes(8, "little") * 512, name="payload.bin")
        if i % 2:
            _sdk.services().tracking.delete_run(run.id)
    created_s = time.perf_counter() - started
    # The shortest ages a policy takes: everything deleted or unreferenced so far is due.
    cli = [sys.executable, "-m", "loopline"]
    subprocess.run(
        [*cli, "gc", "policy", "--deleted-runs-days", "0.00001", "--unreferenced-blob-hours", "0.0001"],
        env=env,
        check=True,
        capture_output=True,
    )
    time.sleep(1.0)
    started = time.perf_counter()
    subprocess.run([*cli, "gc"], env=env, check=True, capture_output=True)
    gc_s = time.perf_counter() - started
    import sqlite3

    with sqlite3.connect(home / "loopline.db") as con:
        runs_left = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    blobs = home / "artifacts" / "blobs"
    files_left = sum(1 for path in blobs.rglob("*") if path.is_file())
    return {"create_s": created_s, "gc_s": gc_s, "runs_left": runs_left, "artifact_files_left": files_left}


def bench_gc(runs: int) -> None:
    ensure_peers_venv()
    with tempfile.TemporaryDirectory() as folder:
        peer = run_json(
            [str(PEER_PYTHON), str(HERE / "peers" / "mlflow_gc.py"), "--workdir", folder, "--runs", str(runs)]
        )
    with tempfile.TemporaryDirectory() as folder:
        ours = loopline_gc(Path(folder), runs)
    print(f"gc of {runs // 2:,} deleted runs among {runs:,}, each with one artifact")
    for name, figures in (("loopline gc", ours), ("mlflow gc", peer)):
        print(
            f"  {name:12} {figures['gc_s']:6.2f} s | runs left {figures['runs_left']:,} | "
            f"artifact files left {figures['artifact_files_left']:,} | workload {figures['create_s']:.1f} s"
        )
    print(f"  loopline gc {peer['gc_s'] / ours['gc_s']:.1f}x faster")


# --- encryption ----------------------------------------------------------------------------


def _best(call: Any, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def _encryption_figures(payload: bytes, table: Any, keys: str | None) -> dict[str, float]:
    """Best-of-3 times of a blob stored and read, a log table written and read, under `keys`
    (None: in plaintext). Each log read has a keyring of its own, so it decrypts the file
    rather than reuse the decrypted copy of the read before."""
    from loopline.artifacts import BlobStore
    from loopline.artifacts.encryption import Keyring
    from loopline.artifacts.tables import TableArea

    keyring = Keyring.parse(keys)

    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder, "payload.bin")
        source.write_bytes(payload)
        stores = iter(range(1_000))  # a fresh store per put: a stored blob is not written again
        results = {
            "blob put": _best(
                lambda: BlobStore(f"{folder}/put-{next(stores)}", keyring=keyring).put_file(source)
            )
        }
        store = BlobStore(f"{folder}/read", keyring=keyring)
        digest = store.put_file(source).digest
        results["blob read"] = _best(lambda: store.read(digest, "bench"))
        area = TableArea(f"{folder}/tables", keyring=keyring)
        results["log write"] = _best(lambda: area.append("predictions", [("d", "x")], table))
        one = TableArea(f"{folder}/one", keyring=keyring)
        one.append("predictions", [("d", "x")], table)
        results["log read"] = _best(
            lambda: TableArea(f"{folder}/one", keyring=Keyring.parse(keys)).read("predictions")
        )
        return results


def bench_encryption(blob_mib: int, rows: int) -> None:
    import numpy as np
    import pyarrow as pa

    key = base64.b64encode(os.urandom(32)).decode()
    payload = np.random.default_rng(0).integers(0, 255, blob_mib << 20, dtype=np.uint8).tobytes()
    rng = np.random.default_rng(1)
    table = pa.table(
        {
            "request_id": pa.array([f"r{i}" for i in range(rows)]),
            "at_ms": pa.array(np.arange(rows, dtype=np.int64)),
            "prediction": pa.array(rng.random(rows)),
            **{f"input.x{j}": pa.array(rng.random(rows)) for j in range(8)},
        }
    )
    print(f"encryption at rest: a {blob_mib} MiB blob, a {rows:,}-row prediction-log table (best of 3)")
    figures = {
        label: _encryption_figures(payload, table, keys)
        for label, keys in (("plaintext", None), ("encrypted", f"bench:{key}"))
    }
    for what in figures["plaintext"]:
        plain, sealed = figures["plaintext"][what], figures["encrypted"][what]
        rate = (
            f"{blob_mib / plain:.0f} MiB/s"
            if what.startswith("blob")
            else f"{rows / plain / 1e6:.2f} M rows/s"
        )
        ratio = sealed / plain
        print(f"  {what:10} plaintext {plain:6.3f} s ({rate}) | encrypted {sealed:6.3f} s | x{ratio:.2f}")


# --- personal data -------------------------------------------------------------------------


def pii_frame(rows: int) -> Any:
    """A frame with one column of each kind of personal data, a numeric id and free text."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    n = np.arange(rows)
    cards = ["4111111111111111", "5500005555555559", "340000000000009", "6011000000000004"]
    ibans = ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606"]
    return pd.DataFrame(
        {
            "customer_id": n + 1_000_000,
            "email": [f"user{i}@example.org" for i in n],
            "phone": [f"+44 20 7946 {i % 10_000:04d}" for i in n],
            "card": [cards[i % len(cards)] for i in n],
            "iban": [ibans[i % len(ibans)] for i in n],
            "ip": [f"10.{i % 256}.{(i // 256) % 256}.{i % 200 + 1}" for i in n],
            "ssn": [f"{100 + i % 600:03d}-{10 + i % 89:02d}-{1000 + i % 8999:04d}" for i in n],
            "note": rng.choice(["late delivery", "asked for refund", "happy", "no answer"], rows),
        }
    )


def bench_pii(rows: int) -> None:
    """Detection on the Parquet file a registration stores, and the registration itself."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import loopline as ll
    from loopline.profiling.pii import detect_parquet, detect_table

    frame = pii_frame(rows)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder, "people.parquet")
        pq.write_table(table, path)
        file_s = _best(lambda: detect_parquet(path))
        table_s = _best(lambda: detect_table(table))
        ll.configure(home=Path(folder, "home"))
        started = time.perf_counter()
        ll.datasets.register("people", frame)
        register_s = time.perf_counter() - started
        found = ll.datasets.get("people").info.columns
    print(f"personal-data detection, {rows:,} rows x {frame.shape[1]} columns (best of 3)")
    print(f"  from the Parquet file {file_s * 1000:6.1f} ms | from an Arrow table {table_s * 1000:6.1f} ms")
    print(f"  registering the frame (profile, detection, storage): {register_s:.1f} s")
    kinds = {c["name"]: c.get("personal_data", {}).get("kind", "-") for c in found}
    print("  flagged: " + ", ".join(f"{column}={kind}" for column, kind in kinds.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["gc", "encryption", "pii", "all"], default="all")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args()
    runs = 100 if args.quick else args.runs
    if args.part in ("gc", "all"):
        bench_gc(runs)
    if args.part in ("encryption", "all"):
        bench_encryption(16 if args.quick else 256, 50_000 if args.quick else 1_000_000)
    if args.part in ("pii", "all"):
        bench_pii(20_000 if args.quick else 1_000_000)


if __name__ == "__main__":
    main()
