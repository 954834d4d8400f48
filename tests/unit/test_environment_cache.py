"""The package list a run records: read once per environment, fresh after an install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from loopline.tracking import environment


def _install(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_the_package_list_is_cached_per_environment_and_renewed_by_an_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = tmp_path / "site"
    site.mkdir()
    _install(site, "alpha-pkg", "1.0")
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    first = environment._cached_packages()
    assert first["alpha-pkg"] == "1.0" and "pytest" in first
    (cached,) = (tmp_path / "cache" / "loopline" / "environments").iterdir()
    cached.write_text('{"only": "what the cache says"}')
    assert environment._cached_packages() == {"only": "what the cache says"}  # read, not recomputed
    _install(site, "beta-pkg", "2.0")  # an install changes the folder, hence the fingerprint
    assert environment._cached_packages()["beta-pkg"] == "2.0"
    for stored in (tmp_path / "cache" / "loopline" / "environments").iterdir():
        stored.write_text("{not json")  # a damaged cache is recomputed, never trusted
    assert environment._cached_packages()["beta-pkg"] == "2.0"
