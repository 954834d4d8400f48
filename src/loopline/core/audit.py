"""The audit trail: who changed what, when, from what to what, and why. Each entry carries
the hash of the one before it, so an edited or deleted entry breaks the chain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64  # the hash the first entry points back to


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: int
    actor: str
    action: str  # "alias.move", "deployment.traffic", "loop.promoted"...
    target: str  # "models:/churn@champion", "deployment:churn"...
    before: Any = None
    after: Any = None
    reason: str = ""
    prev_hash: str = GENESIS
    hash: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def entry_hash(prev_hash: str, at: int, actor: str, action: str, target: str, before: Any, after: Any,
               reason: str, details: dict[str, Any]) -> str:  # fmt: skip
    """sha256 over the previous hash and the entry's canonical JSON (its id excluded)."""
    body = json.dumps(
        [at, actor, action, target, before, after, reason, details],
        sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False,
    )  # fmt: skip
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


@dataclass(frozen=True)
class Verification:
    entries: int
    head: str  # the newest hash: kept outside the database, it is the next check's anchor
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems
