"""Every Python example in the README runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("example", EXAMPLES)
def test_readme_example_runs(example: str, tmp_path: Path) -> None:
    env = {**os.environ, "LOOPLINE_HOME": str(tmp_path / "home")}
    env.pop("LOOPLINE_STORE_URI", None)
    env.pop("LOOPLINE_ARTIFACTS_URI", None)
    done = subprocess.run([sys.executable, "-c", example], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "home" / "loopline.db").exists()


def test_the_readme_has_examples() -> None:
    assert EXAMPLES
