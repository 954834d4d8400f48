"""A run records the git commit of the code that ran it, and whether the tree was dirty."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from loopline.artifacts import BlobStore
from loopline.store import open_metadata_store
from loopline.wiring.backends import Backends, local_owner

SCRIPT = """
import loopline as ll
with ll.start_run("git") as run:
    print(run.id)
"""


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@e"
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    ).stdout


def _run_script(repo: Path, home: Path) -> str:
    env = {**os.environ, "LOOPLINE_HOME": str(home)}
    env.pop("LOOPLINE_STORE_URI", None)
    env.pop("LOOPLINE_ARTIFACTS_URI", None)
    done = subprocess.run(
        [sys.executable, str(repo / "train.py")], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_commit_and_dirty_flag_are_recorded(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(SCRIPT)
    _git(repo, "init", "-q")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-qm", "first")
    commit = _git(repo, "rev-parse", "HEAD").strip()

    clean_id = _run_script(repo, tmp_path / "home")
    (repo / "train.py").write_text(SCRIPT + "# edited\n")
    dirty_id = _run_script(repo, tmp_path / "home")

    store = open_metadata_store(f"sqlite:///{tmp_path / 'home' / 'loopline.db'}")
    service = (
        Backends(store, BlobStore(str(tmp_path / "home" / "artifacts"))).services(local_owner()).tracking
    )
    clean, dirty = service.get_run(clean_id), service.get_run(dirty_id)
    assert (clean.source.git_commit, clean.source.git_dirty) == (commit, False)
    assert (dirty.source.git_commit, dirty.source.git_dirty) == (commit, True)
    assert clean.source.entry_point == str((repo / "train.py").resolve())
    store.close()


def test_outside_a_repository_there_is_no_commit(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    run_id = _run_script(tmp_path, tmp_path / "home")
    store = open_metadata_store(f"sqlite:///{tmp_path / 'home' / 'loopline.db'}")
    service = (
        Backends(store, BlobStore(str(tmp_path / "home" / "artifacts"))).services(local_owner()).tracking
    )
    assert service.get_run(run_id).source.git_commit is None
    store.close()
