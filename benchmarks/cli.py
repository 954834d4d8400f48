"""Everyday commands, timed as a user meets them: each one a fresh process on a small store
(the one `loopline demo` leaves), from the command line until it exits (or, for `serve`,
until /ready answers 200). Median of `--repeats` runs.

    .venv/bin/python -m benchmarks.cli [--repeats 5]

The first `ll.start_run` and the first load of a scikit-learn model are timed inside a
fresh interpreter: the figure is that call alone, after `import loopline`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from benchmarks.workload import free_port

LOOPLINE = str(Path(sys.executable).with_name("loopline"))

# (what, target in seconds, the command after `loopline --home HOME`)
COMMANDS: list[tuple[str, float, list[str]]] = [
    ("loopline --help", 0.3, ["--help"]),
    ("runs list", 0.5, ["runs", "list"]),
    ("models list", 0.5, ["models", "list"]),
    ("models promote, no data", 2.0, ["models", "promote", "breast-cancer", "1", "--alias", "staging"]),
    (
        "predict 3,000 rows",
        2.0,
        ["predict", "models:/breast-cancer@champion", "--input", "{rows}", "--output", "{out}"],
    ),
]

# What the commands above cannot do without, timed alone: scale for the figures.
FLOORS = [
    ("python -c pass", "pass"),
    ("import typer, rich (any --help)", "import typer, rich.console"),
    ("import sqlalchemy, pydantic", "import sqlalchemy.engine, pydantic"),
    ("import pandas", "import pandas"),
    ("import sklearn.linear_model", "import sklearn.linear_model"),
    ("sum(range(10**7)): CPU speed", "sum(range(10**7))"),
]

FIRST_RUN = """
import time, loopline as ll
start = time.perf_counter()
run = ll.start_run("timing")
print(time.perf_counter() - start)
run.end()
"""

FIRST_LOAD = """
import time, loopline as ll
start = time.perf_counter()
ll.load_model("models:/breast-cancer@champion")
print(time.perf_counter() - start)
"""


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _inner(code: str, home: Path) -> float:
    env_code = f"import os; os.environ['LOOPLINE_HOME'] = {str(home)!r}\n" + code
    out = subprocess.run([sys.executable, "-c", env_code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def _serve_until_ready(home: Path) -> float:
    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen(
        [LOOPLINE, "--home", str(home), "serve", "-d", "breast-cancer-prod", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while server.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    return time.perf_counter() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise RuntimeError("loopline serve exited before it was ready")
    finally:
        server.terminate()
        server.wait(timeout=30)


def _monitor_create(home: Path, n: list[int]) -> float:
    n[0] += 1
    return _wall([LOOPLINE, "--home", str(home), "monitor", "create", f"watch-{n[0]}",
                  "--deployment", "breast-cancer-prod", "--reference", "breast-cancer-train",
                  "--target", "target"])  # fmt: skip


def _demo_store(root: Path) -> Path:
    subprocess.run([LOOPLINE, "--home", str(root), "demo"], check=True, stdout=subprocess.DEVNULL)
    (home,) = (root / "demo").iterdir()
    return home


def _rows(path: Path) -> None:
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    pd.concat([frame] * 6, ignore_index=True).head(3000).to_parquet(path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    # As on a user's machine, Python caches compiled modules: a shell that forbids it would
    # have every command time the compiler (the first of the repeats still does).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="loopline-cli-bench-") as tmp:
        home = _demo_store(Path(tmp))
        rows, out = Path(tmp, "rows.parquet"), Path(tmp, "scored.parquet")
        _rows(rows)
        counter = [0]
        measures: list[tuple[str, float, Callable[[], float]]] = [
            (what, target, lambda cmd=cmd: _wall(  # type: ignore[misc]
                [LOOPLINE, "--home", str(home), *(a.format(rows=rows, out=out) for a in cmd)]
            ))
            for what, target, cmd in COMMANDS
        ]  # fmt: skip
        measures += [
            ("monitor create", 3.0, lambda: _monitor_create(home, counter)),
            ("serve until ready", 2.0, lambda: _serve_until_ready(home)),
            ("first ll.start_run in a process", 0.3, lambda: _inner(FIRST_RUN, home)),
            ("first load of a scikit-learn model", 1.0, lambda: _inner(FIRST_LOAD, home)),
        ]
        print(f"{'command':<38}{'median s':>10}{'target s':>10}  (median of {args.repeats})")
        for what, target, measure in measures:
            median = statistics.median(measure() for _ in range(args.repeats))
            verdict = "ok" if median <= target else "OVER"
            print(f"{what:<38}{median:>10.2f}{target:>10.1f}  {verdict}")
        print("\nthis machine's floors (a fresh interpreter, nothing of loopline):")
        for what, code in FLOORS:
            median = statistics.median(_wall([sys.executable, "-c", code]) for _ in range(args.repeats))
            print(f"{what:<38}{median:>10.2f}")


if __name__ == "__main__":
    main()
