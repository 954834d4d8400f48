"""Recording every change on the audit trail, and proving the trail intact."""

from __future__ import annotations

import re
from typing import Any

from loopline.core.audit import GENESIS, AuditEntry, Verification, entry_hash
from loopline.core.clock import now_ms
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput, PermissionDenied
from loopline.store import MetadataStore

_HASH = re.compile(r"[0-9a-f]{64}")


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
        """Append who (this principal) did `action` to `target`, from `before` to `after`, and why.

        Called inside the transaction of the change it records (`loopline.store.atomic`), so
        that the two commit together: a change without its entry is a gap in the trail."""
        if not self._store.in_transaction():
            raise RuntimeError(f"audit entry {action!r} recorded outside the transaction of its change")
        entry = AuditEntry(
            0, now_ms(), self._principal.name, action, target, before, after, reason, details=details
        )
        return self._store.audit.append(entry)

    def entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since_ms: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries, newest first, filtered by who, what (an action prefix), on what, since when."""
        self._require_admin()
        return self._store.audit.entries(
            actor=actor, action=action, target=target, since_ms=since_ms, limit=limit
        )

    def verify(self, max_problems: int = 20, anchor: str | None = None) -> Verification:
        """Walk the chain: an edited entry no longer matches its hash; a deleted or inserted
        one breaks the link of the entry after it.

        Entries removed from the end leave a shorter chain that is still whole. `anchor`, a
        head hash an earlier verification returned and that was kept outside the database,
        catches that too: the chain must still hold the entry with that hash."""
        self._require_admin()
        if anchor is not None and not _HASH.fullmatch(anchor):
            raise InvalidInput(
                f"anchor {anchor[:80]!r} is not a head hash (64 hex digits) that verify printed"
            )
        expected, count, problems, anchored = GENESIS, 0, [], anchor is None
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
            anchored = anchored or entry.hash == anchor
            if len(problems) >= max_problems:
                break
        if not anchored and len(problems) < max_problems:
            problems.append(
                f"no entry has the anchor's hash {anchor}: entries were removed from the end of the trail"
                " or the trail was rewritten since that head was noted"
            )
        return Verification(count, expected, problems)
