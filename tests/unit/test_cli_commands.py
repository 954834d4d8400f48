"""The command table `loopline --help` lists without importing any command."""

from __future__ import annotations

import json
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
        "m for m in sys.modules if m.startswith(('loopline.cli.', 'pandas', 'sqlalchemy')))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded == ["loopline.cli.context", "loopline.cli.lazy", "loopline.cli.main"]
