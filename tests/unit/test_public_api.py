from __future__ import annotations

import inspect
import subprocess
import sys

import loopline

NAMESPACES = {"datasets"}  # SDK modules: loopline.datasets.register(...)


def test_all_names_every_public_attribute_and_nothing_missing() -> None:
    public = {
        name
        for name in dir(loopline)
        if not name.startswith("_") and not inspect.ismodule(getattr(loopline, name))
    }
    assert set(loopline.__all__) - {"__version__"} == public | NAMESPACES
    for name in loopline.__all__:
        assert getattr(loopline, name) is not None


def test_import_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, loopline; "
        "heavy = [m for m in ('sqlalchemy', 'pandas', 'numpy', 'pyarrow', 'fsspec', 'alembic', 'pydantic')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
