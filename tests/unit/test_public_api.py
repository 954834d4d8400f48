from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Iterator

import loopline

NAMESPACES = {"datasets", "features"}  # SDK modules: loopline.datasets.register(...)


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


def _public(module: object, names: list[str]) -> Iterator[tuple[str, object]]:
    """The functions and classes a module exports, and the public methods and properties of
    those classes."""
    for name in names:
        found = getattr(module, name)
        if not (inspect.isfunction(found) or inspect.isclass(found)):
            continue
        if not getattr(found, "__module__", "").startswith("loopline"):
            continue
        yield name, found
        if inspect.isclass(found):
            for attribute, value in vars(found).items():
                if attribute.startswith("_"):
                    continue
                if isinstance(value, property):
                    value = value.fget
                elif isinstance(value, classmethod | staticmethod):
                    value = value.__func__
                if inspect.isfunction(value):
                    yield f"{name}.{attribute}", value


def test_every_public_name_of_the_sdk_has_a_docstring() -> None:
    import loopline.datasets
    import loopline.monitoring

    modules = [
        (loopline, list(loopline.__all__)),
        (loopline.datasets, [n for n in dir(loopline.datasets) if not n.startswith("_")]),
        (loopline.monitoring, list(loopline.monitoring.__all__)),
    ]
    undocumented = []
    for module, names in modules:
        for name, found in _public(module, names):
            doc = found.__doc__ or ""
            generated = doc.startswith(f"{getattr(found, '__name__', '')}(")  # a dataclass's signature
            if not doc.strip() or generated:
                undocumented.append(f"{getattr(module, '__name__', '')}.{name}")
    assert undocumented == []
