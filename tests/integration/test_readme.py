"""The README runs top to bottom: every Python, shell and YAML block, in the order written,
in one folder on a fresh store, as a newcomer would follow it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"
BLOCKS = re.findall(r"```(python|bash|yaml)\n(.*?)```", README.read_text(), flags=re.DOTALL)
FILE_NAME = re.compile(r"# ([\w.-]+\.(?:py|yaml))\b")
# Blocks that cannot run inside the suite, by their first line, and why.
NOT_RUN = {
    "make demo": "the setup itself: the suite is what `make test` runs",
    "loopline server --host 0.0.0.0": "a team server on a PostgreSQL host and an S3 bucket",
    "loopline ui": "a server that runs until stopped: tests/browser drives it in Chromium",
    "loopline server --port 5050 &": "an MLflow client and a server: tests/integration/test_mlflow_api.py",
}


def _runs(env: dict[str, str]) -> dict[str, str]:
    listed = _cli(env, "runs", "list", "-e", "churn", "--json")
    return {run["name"]: run["id"] for run in json.loads(listed)["runs"]}


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "loopline", *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


# What each placeholder stands for: the id the commands before it printed.
PLACEHOLDERS: dict[str, Callable[[dict[str, str]], str]] = {
    "<run-id>": lambda env: _runs(env)["rf-baseline"],
    "<other-run-id>": lambda env: _runs(env)["calibration"],
    "<pipeline-run-id>": lambda env: json.loads(_cli(env, "pipelines", "list", "--json"))[0]["id"],
}


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], list[subprocess.Popen[bytes]]]]:
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "LOOPLINE_HOME": str(tmp_path / "home"), "PYTHONPATH": str(work)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for name in ("LOOPLINE_STORE_URI", "LOOPLINE_ARTIFACTS_URI", "LOOPLINE_URI", "LOOPLINE_ENTRY_POINT"):
        env.pop(name, None)
    shells: list[subprocess.Popen[bytes]] = []
    yield work, env, shells
    for shell in shells:  # what a block left running in the background (`loopline serve &`)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell.pid, signal.SIGTERM)


@pytest.mark.slow
def test_the_readme_runs_top_to_bottom(
    folder: tuple[Path, dict[str, str], list[subprocess.Popen[bytes]]],
) -> None:
    work, env, shells = folder
    ran = 0
    for number, (language, text) in enumerate(BLOCKS):
        first = text.strip().splitlines()[0]
        if any(first.startswith(prefix) for prefix in NOT_RUN):
            continue
        named = FILE_NAME.match(first)
        where = f"README block {number} ({language}, starting {first[:60]!r})"
        if language == "yaml":
            if named:
                (work / named.group(1)).write_text(text)
            continue
        if language == "python":
            script = work / (named.group(1) if named else f"example_{number}.py")
            script.write_text(text)
            command = [sys.executable, script.name]
        else:
            for placeholder, value in PLACEHOLDERS.items():
                if placeholder in text:
                    text = text.replace(placeholder, value(env))
            command = ["bash", "-euo", "pipefail", "-c", text]
        # Each block in a session of its own, its output in a file: what it leaves running
        # in the background (`loopline serve ... &`) is stopped at the end, and cannot hold
        # a pipe open.
        log = work.parent / f"block-{number}.log"
        with log.open("wb") as out:
            shell = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)  # fmt: skip
            shells.append(shell)
            shell.wait(timeout=600)
        assert shell.returncode == 0, f"{where} failed:\n{log.read_text()[-3000:]}"
        ran += 1
    assert ran == sum(language != "yaml" for language, _ in BLOCKS) - len(NOT_RUN)


def test_every_block_is_run_or_says_why_not() -> None:
    firsts = [text.strip().splitlines()[0] for _, text in BLOCKS]
    for prefix in NOT_RUN:
        assert sum(first.startswith(prefix) for first in firsts) == 1, prefix
