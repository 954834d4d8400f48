"""The audit trail: who changed what, when, from what to what, and why. Each entry carries
the hash of the one before it, so an edited or deleted entry breaks the chain.

With a key configured, each entry is sealed: its hash is an HMAC-SHA256 under a secret the
database does not hold, so that someone who can write to the database cannot edit an entry
and recompute the chain after it, nor append a forged one. Without a key, only an anchor
(a head hash kept elsewhere) catches a rewritten chain."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any

from loopline.core.errors import InvalidInput

GENESIS = "0" * 64  # the hash the first entry points back to
MIN_KEY_LENGTH = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


@dataclass(frozen=True)
class AuditKeys:
    """The secrets that seal audit entries, by id. `current` seals new entries; the others
    still verify the entries they sealed (rotation: put a new key first, keep the old)."""

    secrets: dict[str, bytes] = field(default_factory=dict, repr=False)
    current: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> AuditKeys:
        """`ID:SECRET[,ID:SECRET...]`, newest first (LOOPLINE_AUDIT_KEYS)."""
        secrets: dict[str, bytes] = {}
        for i, item in enumerate(p.strip() for p in (text or "").split(",") if p.strip()):
            key_id, sep, secret = item.partition(":")
            if not sep or not _KEY_ID.fullmatch(key_id):
                raise InvalidInput(f"audit key {i + 1}: write it as ID:SECRET, the id of letters and digits")
            if len(secret) < MIN_KEY_LENGTH:
                raise InvalidInput(
                    f"audit key {key_id!r}: its secret needs at least {MIN_KEY_LENGTH} characters"
                )
            if key_id in secrets:
                raise InvalidInput(f"audit key {key_id!r} is given twice")
            secrets[key_id] = secret.encode()
        return cls(secrets, next(iter(secrets), None))


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
    key_id: str | None = None  # the key that sealed it; None: a plain sha256


def entry_hash(prev_hash: str, at: int, actor: str, action: str, target: str, before: Any, after: Any,
               reason: str, details: dict[str, Any], key: bytes | None = None) -> str:  # fmt: skip
    """sha256 (or, with `key`, HMAC-SHA256) over the previous hash and the entry's canonical
    JSON (its id excluded)."""
    body = json.dumps(
        [at, actor, action, target, before, after, reason, details],
        sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False,
    )  # fmt: skip
    message = f"{prev_hash}\n{body}".encode()
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Verification:
    entries: int
    head: str  # the newest hash: kept outside the database, it is the next check's anchor
    problems: list[str] = field(default_factory=list)
    unsealed: int = 0  # entries with no key's seal (written before a key was configured)

    @property
    def intact(self) -> bool:
        return not self.problems
