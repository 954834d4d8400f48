"""The command table `loopline --help` lists without importing any command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from loopline.cli.main import Commands


def test_each_listed_help_is_the_commands_own() -> None:
    for name, spec in Commands.lazy.items():
        command = spec.load(name)
        own = (command.help or "").strip().splitlines()[0]
        assert spec.help == own, name


def test_help_imports_no_command_module() -> None:
    probe = (
        "import json, sys; from loopline.cli.main import run; run(['--help']); print(json.dumps(sorted("
        "m for m in sys.modules if m.startswith(('loopline.cli.', 'pandas', 'sqlalchemy', 'pydantic')))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded == ["loopline.cli.context", "loopline.cli.lazy", "loopline.cli.main"]


def test_help_in_a_pipe_is_readable_and_flags_take_no_value() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "TERMINAL_WIDTH")}
    for command in (["--help"], ["models", "promote", "--help"], ["runs", "list", "--help"]):
        done = subprocess.run(
            [sys.executable, "-m", "loopline", *command], capture_output=True, text=True, env=env, check=True
        )
        lines = done.stdout.splitlines()
        assert max(map(len, lines)) <= 100, command  # not the width tables get in a pipe
        flags = [line for line in lines if "--help" in line or "--json" in line]
        assert flags and not any("<bool>" in line for line in flags), command
    promote = subprocess.run(
        [sys.executable, "-m", "loopline", "models", "promote", "--help"],
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    assert "<int>" in promote  # options that take a value keep their type
