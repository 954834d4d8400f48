"""Friendly default run names, like `brave-otter-417`."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "fleet", "gentle",
    "keen", "lively", "lucid", "merry", "nimble", "quiet", "rapid", "steady", "swift", "witty",
)  # fmt: skip
_NOUNS = (
    "badger", "bison", "crane", "dolphin", "falcon", "ferret", "gecko", "heron", "ibis", "jaguar",
    "koala", "lynx", "marten", "newt", "otter", "panda", "quail", "raven", "seal", "wren",
)  # fmt: skip


def random_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randrange(1000)}"
