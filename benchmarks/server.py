"""Tracking through a server: loopline's team server against an MLflow tracking server, on the
same machine and the same database backend (SQLite files; PostgreSQL too with --postgres).

    .venv/bin/python -m benchmarks.server [--calls 100] [--mlflow-calls 20] [--runs 1000] \\
        [--postgres URL] [--quick]

One server at a time, each in its own process group, stopped (SIGTERM, then wait) before the
next starts; each side's client runs in its own subprocess (loopline's in this virtualenv,
MLflow's in benchmarks/.peers-venv: peers/mlflow_server_client.py), so imports never mix.
Every server starts on a fresh store in a fresh temporary directory.

Measured, the same workload on both sides (defined here, stdlib only, so that the MLflow
client imports it too):

* log_batch through the server: one run, calls of 1,000 metric values (10 keys x 100 steps,
  steps increasing from call to call); values/s = values / wall time, building the metric
  objects included. MLflow is slower, so it gets fewer calls (--mlflow-calls): rates compare.
* search_runs through the server: --runs runs, each with param p in {'x', 'y'} and metrics
  m0..m4 (logged through the same API, untimed), then `metrics.m0 > 0.5 and params.p = 'x'`
  ordered by `metrics.m0 DESC`, up to 1,000 results: median of 15 calls after one warm-up.
  Both clients check that they found the runs the population says they must.
* start-up: from process start to the first 200 from GET /health, on a fresh store
  (migrations included). Informational.

The loopline server runs with one worker; its client reads the administrator token that the
server prints on a fresh store. MLflow's server runs with `--workers 1` and its defaults (its
security middleware admits 127.0.0.1 as is), except its job runner, which is switched off (see
mlflow_server); its client does not print a link to every run it ends.

With --postgres URL (a server where the URL's user may CREATE DATABASE), both servers also run
on PostgreSQL, each on its own fresh database (the two tools' tables share names), dropped at
the end. MLflow reaches PostgreSQL through psycopg 3, installed into the peers' virtualenv on
first use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from benchmarks.run_all import PEER_PYTHON, ensure_peers_venv
from benchmarks.workload import SEED, free_port

HERE = Path(__file__).resolve().parent
LOOPLINE_PYTHON = Path(sys.executable)
MLFLOW_CLIENT = HERE / "peers" / "mlflow_server_client.py"

BATCH_KEYS = 10
BATCH_STEPS = 100  # BATCH_KEYS x BATCH_STEPS = 1,000 values per call, MLflow's log_batch limit
SEARCH_METRICS = 5  # m0 .. m4
SEARCH_FILTER = "metrics.m0 > 0.5 and params.p = 'x'"
SEARCH_ORDER_BY = ["metrics.m0 DESC"]
SEARCH_MAX_RESULTS = 1000
SEARCH_REPEATS = 15  # this machine shares its cores: a median of 5 moved by a third between runs
STARTUP_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
TOKEN = re.compile(r"\bll_[A-Za-z0-9_\-]+")
PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")

SearchRun = tuple[str, tuple[float, ...]]  # (param p, metrics m0 .. m4)


# --- the workload, shared with peers/mlflow_server_client.py ------------------------------


def batch_rows(call: int) -> list[tuple[str, float, int]]:
    """(key, value, step) of call number `call`: every key at BATCH_STEPS new steps."""
    first = call * BATCH_STEPS
    steps = range(first, first + BATCH_STEPS)
    return [(f"k{k}", k + 1.0 / (step + 1), step) for step in steps for k in range(BATCH_KEYS)]


def search_population(runs: int) -> list[SearchRun]:
    rng = random.Random(SEED)
    return [(rng.choice("xy"), tuple(rng.random() for _ in range(SEARCH_METRICS))) for _ in range(runs)]


def check_history(stored: int, calls: int) -> None:
    if stored != calls * BATCH_STEPS:
        raise RuntimeError(f"log_batch: {stored} values of k0 stored, expected {calls * BATCH_STEPS}")


def check_search(found_m0: Sequence[float], population: Sequence[SearchRun]) -> None:
    """The search found exactly the runs it must, in order."""
    expected = sorted((m[0] for p, m in population if p == "x" and m[0] > 0.5), reverse=True)
    expected = expected[:SEARCH_MAX_RESULTS]
    if list(found_m0) != expected:
        raise RuntimeError(
            f"search returned {len(found_m0)} runs (first m0 {list(found_m0[:1])}), "
            f"expected {len(expected)} (first m0 {expected[:1]})"
        )


def time_search(search: Callable[[], Sequence[float]], population: Sequence[SearchRun]) -> dict[str, Any]:
    """One checked warm-up call, then SEARCH_REPEATS timed ones; `search` returns the m0 found."""
    found = search()
    check_search(found, population)
    timings = []
    for _ in range(SEARCH_REPEATS):
        start = time.perf_counter()
        search()
        timings.append((time.perf_counter() - start) * 1000)
    return {
        "search_runs_p50_ms": statistics.median(timings),
        "search_runs_ms": timings,
        "search_runs_result_count": len(found),
        "search_runs_first_m0": found[0] if found else None,
    }


# --- loopline's client (run as `python -m benchmarks.server client ...`) ------------------


def loopline_client(url: str, calls: int, runs: int) -> dict[str, Any]:
    from loopline import __version__
    from loopline.client.connection import ServerConnection
    from loopline.client.services import RemoteServices
    from loopline.core.entities import Metric

    service = RemoteServices(ServerConnection(url, os.environ["LOOPLINE_TOKEN"])).tracking
    run = service.start_run("log_batch")
    start = time.perf_counter()
    for call in range(calls):
        now = int(time.time() * 1000)
        service.log_batch(run.id, [Metric(k, v, s, now) for k, v, s in batch_rows(call)])
    elapsed = time.perf_counter() - start
    service.end_run(run.id)
    check_history(len(service.metric_history(run.id, "k0")), calls)

    population = search_population(runs)
    start = time.perf_counter()
    for i, (p, values) in enumerate(population):
        created = service.start_run("search", run_name=f"run-{i}")
        now = int(time.time() * 1000)
        metrics = [Metric(f"m{j}", v, 0, now) for j, v in enumerate(values)]
        service.log_batch(created.id, metrics, params={"p": p})
        service.end_run(created.id)
    populate_s = time.perf_counter() - start

    def search() -> list[float]:
        page = service.search_runs(
            "search", filter=SEARCH_FILTER, order_by=SEARCH_ORDER_BY, max_results=SEARCH_MAX_RESULTS
        )
        return [r.metrics["m0"] for r in page]

    return {
        "version": __version__,
        "log_batch_values": calls * BATCH_KEYS * BATCH_STEPS,
        "log_batch_values_per_s": calls * BATCH_KEYS * BATCH_STEPS / elapsed,
        "populate_s": populate_s,
        **time_search(search, population),
    }


def client_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server client")
    parser.add_argument("--url", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--runs", type=int, required=True)
    args = parser.parse_args(argv)
    print(json.dumps(loopline_client(args.url, args.calls, args.runs)))


# --- servers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    name: str
    command: list[str]
    port: int
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Started:
    startup_s: float
    output: Path  # the server's stdout and stderr


def shown(command: Sequence[str]) -> str:
    """A command line to print, with any password in a database URL masked."""
    return PASSWORD.sub(r"\1***@", " ".join(command))


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_healthy(server: Server, process: subprocess.Popen[bytes], output: Path, start: float) -> float:
    """Seconds from `start` until GET /health answers 200; a clear error if it never does."""
    while not healthy(server.url):
        if process.poll() is not None:
            raise RuntimeError(
                f"the {server.name} server exited with code {process.returncode} before answering "
                f"/health; the end of its output:\n{tail(output)}"
            )
        if time.perf_counter() - start > STARTUP_TIMEOUT_S:
            raise RuntimeError(
                f"the {server.name} server did not answer /health within {STARTUP_TIMEOUT_S:.0f} s; "
                f"the end of its output:\n{tail(output)}"
            )
        time.sleep(0.02)
    return time.perf_counter() - start


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (its workers too), then wait; SIGKILL if stuck."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
            return
        except subprocess.TimeoutExpired:
            print(f"  server {process.pid} ignored {sig.name}", file=sys.stderr)


@contextlib.contextmanager
def running(server: Server, workdir: Path) -> Iterator[Started]:
    """The server, healthy, until the block ends; on any failure, the end of its output."""
    output = workdir / f"{server.name}-server.log"
    print(f"$ {shown(server.command)}", file=sys.stderr)
    start = time.perf_counter()
    with open(output, "wb") as sink:
        process = subprocess.Popen(
            server.command, stdout=sink, stderr=subprocess.STDOUT, env=server.env, start_new_session=True
        )
    try:
        yield Started(wait_healthy(server, process, output, start), output)
    except subprocess.CalledProcessError:
        print(f"the {server.name} client failed; the end of the server's output:", file=sys.stderr)
        print(tail(output), file=sys.stderr)
        raise
    finally:
        stop(process)


def clean_env() -> dict[str, str]:
    """This environment without loopline's or MLflow's own settings, which would redirect a server."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "MLFLOW_"))}


def loopline_server(store_uri: str, workdir: Path) -> Server:
    port = free_port()
    command = [
        *(str(LOOPLINE_PYTHON), "-m", "loopline", "--home", str(workdir / "loopline-home")),
        *("--store-uri", store_uri, "--artifacts-uri", str(workdir / "loopline-artifacts")),
        *("server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
    ]
    return Server("loopline", command, port, clean_env())


def mlflow_server(store_uri: str, workdir: Path) -> Server:
    port = free_port()
    command = [
        *(str(PEER_PYTHON.parent / "mlflow"), "server", "--backend-store-uri", store_uri),
        *("--default-artifact-root", str(workdir / "mlruns")),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
    ]
    env = {
        **clean_env(),
        "PATH": f"{PEER_PYTHON.parent}:{os.environ['PATH']}",  # it starts uvicorn by name
        # Its job runner (a huey consumer for GenAI scoring jobs) serves no tracking call; left on,
        # its start-up would burn a core during the measurement, and it leaves a folder in /dev/shm.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    return Server("mlflow", command, port, env)


def measure_loopline(store_uri: str, workdir: Path, calls: int, runs: int) -> dict[str, Any]:
    server = loopline_server(store_uri, workdir)
    with running(server, workdir) as started:
        found = TOKEN.search(started.output.read_text(errors="replace"))
        if found is None:
            raise RuntimeError(
                "the loopline server printed no administrator token (ll_...) on a fresh store; "
                f"the end of its output:\n{tail(started.output)}"
            )
        client = [str(LOOPLINE_PYTHON), "-m", "benchmarks.server", "client", "--url", server.url]
        sizes = ["--calls", str(calls), "--runs", str(runs)]
        env = {**clean_env(), "LOOPLINE_TOKEN": found.group(0)}
        result = run_client([*client, *sizes], env)
    return {**result, "startup_s": started.startup_s}


def measure_mlflow(store_uri: str, workdir: Path, calls: int, runs: int) -> dict[str, Any]:
    server = mlflow_server(store_uri, workdir)
    with running(server, workdir) as started:
        client = [str(PEER_PYTHON), str(MLFLOW_CLIENT), "--url", server.url]
        result = run_client([*client, "--calls", str(calls), "--runs", str(runs)], clean_env())
    return {**result, "startup_s": started.startup_s}


def run_client(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a client to completion; its figures are the last line of its stdout (as in run_all)."""
    print(f"$ {shown(command)}", file=sys.stderr)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, cwd=HERE.parent, env=env)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- PostgreSQL -------------------------------------------------------------------------------


def with_database(url: str, database: str, scheme: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=scheme, path=f"/{database}"))


@contextlib.contextmanager
def fresh_databases(url: str, names: Sequence[str]) -> Iterator[None]:
    """Databases `names` on the server of `url`, new, dropped when the block ends."""
    import psycopg  # loopline's own PostgreSQL driver
    from psycopg import sql

    admin = urlunsplit(urlsplit(url)._replace(scheme="postgresql"))
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def ensure_peer_psycopg() -> None:
    check = subprocess.run([str(PEER_PYTHON), "-c", "import psycopg"], capture_output=True)
    if check.returncode != 0:
        print("installing psycopg into the peers' virtualenv (once)", file=sys.stderr)
        pip = [str(PEER_PYTHON), "-m", "pip", "install", "--quiet", "psycopg[binary]"]
        subprocess.run(pip, check=True)


# --- driver -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    calls: int
    mlflow_calls: int
    runs: int


def measure_backend(
    loopline_uri: str, mlflow_uri: str, workdir: Path, sizes: Sizes
) -> dict[str, dict[str, Any]]:
    workdir.mkdir(parents=True)
    ours = measure_loopline(loopline_uri, workdir, sizes.calls, sizes.runs)
    theirs = measure_mlflow(mlflow_uri, workdir, sizes.mlflow_calls, sizes.runs)
    same = [ours[k] == theirs[k] for k in ("search_runs_result_count", "search_runs_first_m0")]
    if not all(same):
        raise RuntimeError(
            f"the searches differ: loopline found {ours['search_runs_result_count']} runs "
            f"(first m0 {ours['search_runs_first_m0']}), MLflow {theirs['search_runs_result_count']} "
            f"(first m0 {theirs['search_runs_first_m0']})"
        )
    return {"loopline": ours, "mlflow": theirs}


# (label, figure, True when higher is better, format); the ratio is always loopline's advantage
MEASURES = [
    ("log_batch via server, values/s", "log_batch_values_per_s", True, ",.0f"),
    ("search_runs via server, p50 ms", "search_runs_p50_ms", False, ",.1f"),
    ("start-up to healthy, fresh store, s", "startup_s", False, ".2f"),
]
BACKENDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def report(results: dict[str, dict[str, dict[str, Any]]], sizes: Sizes) -> list[str]:
    """One table per backend; a ratio above 1 means loopline is ahead."""
    first = next(iter(results.values()))
    lines = [
        f"loopline {first['loopline']['version']} server vs MLflow {first['mlflow']['version']} server, "
        "1 worker each, one at a time",
        f"log_batch: {sizes.calls} (loopline) / {sizes.mlflow_calls} (MLflow) calls of 1,000 values; "
        f"search_runs: {sizes.runs:,} runs, 2 conditions + order by, median of {SEARCH_REPEATS}",
    ]
    for backend, pair in results.items():
        header = f"{BACKENDS[backend]:<40} {'loopline':>12} {'MLflow':>12} {'ratio':>8}"
        lines += ["", header, "-" * len(header)]
        for label, key, higher, fmt in MEASURES:
            ours, theirs = pair["loopline"][key], pair["mlflow"][key]
            ratio = ours / theirs if higher else theirs / ours
            lines.append(f"{label:<40} {ours:>12{fmt}} {theirs:>12{fmt}} {ratio:>7.1f}x")
        count = pair["loopline"]["search_runs_result_count"]
        lines.append(f"both searches found the same {count} runs")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--calls", type=int, default=100, help="loopline's log_batch calls of 1,000 values")
    parser.add_argument("--mlflow-calls", type=int, default=20, help="MLflow's log_batch calls")
    parser.add_argument("--runs", type=int, default=1000, help="runs in the searched experiment")
    parser.add_argument("--postgres", help="also measure both servers on PostgreSQL (a server URL)")
    parser.add_argument("--quick", action="store_true", help="3 calls and 50 runs each: a smoke test")
    args = parser.parse_args()
    sizes = Sizes(3, 3, 50) if args.quick else Sizes(args.calls, args.mlflow_calls, args.runs)
    if min(sizes.calls, sizes.mlflow_calls, sizes.runs) < 1:
        parser.error("--calls, --mlflow-calls and --runs must be at least 1")
    ensure_peers_venv()
    if args.postgres:
        ensure_peer_psycopg()

    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="loopline-server-bench-") as tmp:
        work = Path(tmp)
        sqlite = work / "sqlite"
        results["sqlite"] = measure_backend(
            f"sqlite:///{sqlite}/loopline.db", f"sqlite:///{sqlite}/mlflow.db", sqlite, sizes
        )
        if args.postgres:
            names = [f"bench_{tool}_{os.getpid()}_{int(time.time())}" for tool in ("loopline", "mlflow")]
            with fresh_databases(args.postgres, names):
                results["postgresql"] = measure_backend(
                    with_database(args.postgres, names[0], "postgresql"),
                    with_database(args.postgres, names[1], "postgresql+psycopg"),
                    work / "postgresql",
                    sizes,
                )
    print("\n".join(report(results, sizes)))
    print(json.dumps({"sizes": asdict(sizes), **results}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        client_main(sys.argv[2:])
    else:
        try:
            main()
        except (RuntimeError, subprocess.CalledProcessError) as exc:  # said plainly, no traceback
            sys.exit(f"benchmarks.server: {exc}")
