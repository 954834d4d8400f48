from __future__ import annotations

import os
from pathlib import Path

import pytest

from loopline.artifacts import check_artifact_name, destination, files_under
from loopline.core.errors import InvalidInput


@pytest.mark.parametrize("name", ["model.pkl", "plots/roc.png", "a b/c-d_e.f", "100%.txt", "données.csv"])
def test_plain_relative_names_are_accepted(name: str) -> None:
    assert check_artifact_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "../secret",
        "a/../../b",
        "..",
        "./a",
        "a//b",
        "a/",
        "/etc/passwd",
        "C:/Windows/win.ini",
        "c:evil",
        "..\\evil",
        "a\\b",
        "%2e%2e/secret",
        "%2E%2E%2Fsecret",
        "a/%2e%2e/%2e%2e/b",
        "%252e%252e%252fsecret",  # double-encoded
        "%25252e%25252e/x",  # triple-encoded
        "%2fetc/passwd",
        "..%5csecret",
        "\u2025/secret",  # two-dot leader: NFKC turns it into ".."
        "\uff0e\uff0e/secret",  # fullwidth full stops
        "a\x00b",
        "line\nbreak",
        "",
        "x" * 1025,
    ],
)
def test_escaping_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="artifact name"):
        check_artifact_name(name)


def test_destination_refuses_a_symlinked_directory_leading_out(tmp_path: Path) -> None:
    root = tmp_path / "download"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "plots").symlink_to(outside)
    with pytest.raises(InvalidInput, match="outside"):
        destination(root, "plots/roc.png")
    assert destination(root, "other/roc.png") == root.resolve() / "other" / "roc.png"


def test_files_under_refuses_symlinks_leading_out_of_the_directory(tmp_path: Path) -> None:
    logged = tmp_path / "logged"
    logged.mkdir()
    (logged / "data.csv").write_text("a,b\n")
    (logged / "alias.csv").symlink_to(logged / "data.csv")  # inside: fine
    assert [name for _, name in files_under(logged)] == ["alias.csv", "data.csv"]
    secret = tmp_path / "secret.key"
    secret.write_text("hunter2")
    os.symlink(secret, logged / "key")
    with pytest.raises(InvalidInput, match="outside"):
        files_under(logged)
