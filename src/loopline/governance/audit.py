"""Recording every change on the audit trail, and proving the trail intact."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loopline.core.audit import GENESIS, AuditEntry, entry_hash
from loopline.core.clock import now_ms
from loopline.core.entities import Principal
from loopline.core.errors import PermissionDenied
from loopline.store import MetadataStore


@dataclass(frozen=True)
class Verification:
    entries: int
    head: str  # the newest hash: note it somewhere else, and truncation shows too
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


class AuditTrail:
    def __init__(self, store: MetadataStore, principal: Principal) -> None:
        self._store = store
        self._principal = principal

    def _require_admin(self) -> None:
        if not self._principal.is_owner:
            raise PermissionDenied("only an administrator may read the audit trail")

    def record(
        self,
        action: str,
        target: str,
        *,
        before: Any = None,
        after: Any = None,
        reason: str = "",
        **details: Any,
    ) -> AuditEntry:
        """Append who (this principal) did `action` to `target`, from `before` to `after`, and why."""
        entry = AuditEntry(
            0, now_ms(), self._principal.name, action, target, before, after, reason, details=details
        )
        return self._store.audit.append(entry)

    def entries(self, **filters: Any) -> list[AuditEntry]:
        self._require_admin()
        return self._store.audit.entries(**filters)

    def verify(self, max_problems: int = 20) -> Verification:
        """Walk the chain: an edited entry no longer matches its hash; a deleted or inserted
        one breaks the link of the entry after it."""
        self._require_admin()
        expected, count, problems = GENESIS, 0, []
        for entry in self._store.audit.chain():
            count += 1
            if entry.prev_hash != expected:
                problems.append(f"entry {entry.id}: the entry before it was removed, added or changed")
            actual = entry_hash(entry.prev_hash, entry.at, entry.actor, entry.action, entry.target,
                                entry.before, entry.after, entry.reason, entry.details)  # fmt: skip
            if actual != entry.hash:
                problems.append(
                    f"entry {entry.id} ({entry.action} {entry.target}) was altered after it was written"
                )
            expected = entry.hash
            if len(problems) >= max_problems:
                break
        return Verification(count, expected, problems)
