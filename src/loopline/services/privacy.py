"""The privacy service's interface: erasing one entity's personal data everywhere loopline
keeps rows of it."""

from __future__ import annotations

from typing import Protocol

from loopline.core.privacy import Erasure


class Privacy(Protocol):
    """Erasure of personal data, for administrators only."""

    def erase(self, column: str, value: str, *, dry_run: bool = False, reason: str = "") -> Erasure:
        """Remove every row whose `column` equals `value` (text; a number column matches when
        it parses as that number) from the prediction logs (the `input.` and `entity.` columns,
        with the feedback and errors of those requests) and from dataset versions, which are
        replaced by new versions without them. The audit trail records what was removed,
        never the value. `dry_run` reports what would be removed and changes nothing."""
