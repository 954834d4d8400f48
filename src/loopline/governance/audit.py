"""Recording every change on the audit trail, and proving the trail intact."""

from __future__ import annotations

import hmac
import re
from typing import Any

from loopline.core.audit import GENESIS, AuditEntry, AuditKeys, Verification, entry_hash
from loopline.core.clock import now_ms
from loopline.core.entities import Principal
from loopline.core.errors import InvalidInput, PermissionDenied
from loopline.store import MetadataStore

_HASH = re.compile(r"[0-9a-f]{64}")


class AuditTrail:
    """The audit trail as `principal`; entries are sealed with `keys.current`, if any."""

    def __init__(self, store: MetadataStore, principal: Principal, keys: AuditKeys | None = None) -> None:
        self._store = store
        self._principal = principal
        self._keys = keys or AuditKeys()

    def acting_as(self, principal: Principal) -> AuditTrail:
        """The same trail, recording `principal` as the actor (a user signing in)."""
        return AuditTrail(self._store, principal, self._keys)

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
        current = self._keys.current
        entry = AuditEntry(
            0, now_ms(), self._principal.name, action, target, before, after, reason, details=details,
            key_id=current,
        )  # fmt: skip
        return self._store.audit.append(entry, None if current is None else self._keys.secrets[current])

    def entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries, newest first, filtered by who, what (an action prefix), on what, since when."""
        self._require_admin()
        return self._store.audit.entries(
            actor=actor,
            action=action,
            target=target,
            since_ms=since_ms,
            until_ms=until_ms,
            before_id=before_id,
            limit=limit,
        )

    def verify(self, max_problems: int = 20, anchor: str | None = None) -> Verification:
        """Walk the chain: an edited entry no longer matches its hash; a deleted or inserted
        one breaks the link of the entry after it. A sealed entry's hash is checked with its
        key, which someone who can only write to the database does not hold; once entries are
        sealed, an unsealed one after them is a forgery.

        Entries removed from the end leave a shorter chain that is still whole. `anchor`, a
        head hash an earlier verification returned and that was kept outside the database,
        catches that too: the chain must still hold the entry with that hash."""
        self._require_admin()
        if anchor is not None and not _HASH.fullmatch(anchor):
            raise InvalidInput(
                f"anchor {anchor[:80]!r} is not a head hash (64 hex digits) that verify printed"
            )
        expected, count, unsealed, problems, anchored = GENESIS, 0, 0, [], anchor is None
        sealed_since: int | None = None
        for entry in self._store.audit.chain():
            count += 1
            problems.extend(self._check(entry, expected, sealed_since))
            if entry.key_id is None:
                unsealed += 1
            elif sealed_since is None:
                sealed_since = entry.id
            expected = entry.hash
            anchored = anchored or entry.hash == anchor
            if len(problems) >= max_problems:
                break
        if not anchored and len(problems) < max_problems:
            problems.append(
                f"no entry has the anchor's hash {anchor}: entries were removed from the end of the trail"
                " or the trail was rewritten since that head was noted"
            )
        return Verification(count, expected, problems[:max_problems], unsealed)

    def _check(self, entry: AuditEntry, expected: str, sealed_since: int | None) -> list[str]:
        problems = []
        if entry.prev_hash != expected:
            problems.append(f"entry {entry.id}: the entry before it was removed, added or changed")
        what = f"entry {entry.id} ({entry.action} {entry.target})"
        if entry.key_id is None and sealed_since is not None:
            return [*problems, f"{what} is not sealed, though entries are since entry {sealed_since}: forged"]
        key = None if entry.key_id is None else self._keys.secrets.get(entry.key_id)
        if entry.key_id is not None and key is None:
            return [
                *problems,
                f"{what} is sealed with key {entry.key_id!r}, which this verifier does not hold",
            ]
        actual = entry_hash(entry.prev_hash, entry.at, entry.actor, entry.action, entry.target,
                            entry.before, entry.after, entry.reason, entry.details, key)  # fmt: skip
        if not hmac.compare_digest(actual, entry.hash):
            problems.append(f"{what} was altered after it was written")
        return problems
