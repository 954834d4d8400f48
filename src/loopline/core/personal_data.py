"""Personal data: the kinds loopline detects, the treatments a contract or a deployment's
prediction-log policy gives a column holding it, and the keyed hash that turns a value into
a pseudonym.

- mask: nothing of the value remains; text becomes `MASK`, any other value null.
- hash: HMAC-SHA256 of the value under a secret key (LOOPLINE_PII_HASH_KEY), in hex. The same
  value gives the same pseudonym under one key, so hashed columns still join and count; a
  plain sha256 would not do, since anyone can hash a list of every phone number and look
  the digests up. Without the key the hash cannot be recomputed, so it is refused.
- drop (prediction logs only): the column is not logged at all.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from loopline.core.errors import InvalidInput

KINDS = ("email", "phone", "payment_card", "iban", "national_id", "ip_address", "person_name")
MASK = "***"
MIN_KEY_LENGTH = 32
LOG_TREATMENTS = ("drop", "mask", "hash")
MAX_LOGGED_COLUMNS = 1000
_DONE = {"drop": "dropped", "mask": "masked", "hash": "hashed"}
HASH_KEY_HINT = (
    "set LOOPLINE_PII_HASH_KEY to a secret of at least 32 characters (the same one wherever the "
    "data is hashed, so that pseudonyms match), or mask the column instead"
)


def check_hash_key(secret: str | None) -> bytes | None:
    """The HMAC key from its setting; None when unset, InvalidInput when too short to be a secret."""
    if secret is None or secret == "":
        return None
    if len(secret) < MIN_KEY_LENGTH:
        raise InvalidInput(
            f"LOOPLINE_PII_HASH_KEY has {len(secret)} characters; a hash key needs at least {MIN_KEY_LENGTH}"
        )
    return secret.encode()


def value_text(value: Any) -> str:
    """A value as the hash reads it: numbers spelled one way (1, 1.0 and numpy's 1 are "1"),
    so one value logged as a double and stored as an integer gets one pseudonym."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and not isinstance(value, str | bytes):
        return value_text(item())
    return str(value)


def keyed_hash(key: bytes, value: Any) -> str:
    """The pseudonym of `value`: HMAC-SHA256 of its text under `key`, in hex."""
    return hmac.new(key, value_text(value).encode(), hashlib.sha256).hexdigest()


def _names(treatment: str, columns: object) -> tuple[str, ...]:
    if isinstance(columns, str) or not isinstance(columns, Iterable):
        raise InvalidInput(
            f"the prediction log's {treatment} columns are a list of names, not {columns!r:.80}"
        )
    names = tuple(columns)
    for name in names:
        if not isinstance(name, str) or not name.strip() or len(name) > 250:
            raise InvalidInput(f"{treatment} column {name!r:.80} is not a column name")
    return tuple(sorted(set(names)))


@dataclass(frozen=True, slots=True)
class LogPolicy:
    """What a deployment's prediction log does with named input columns before it writes
    them: `drop` them, `mask` them or `hash` them. The entity column of the same name
    (`entity.<name>`, the join key of online features) gets the same treatment. A hash is
    text, so only text inputs are hashed (a model that takes a column as a number has it
    masked or dropped instead: one log column never holds both).

    In `TrafficPolicy.to_dict` it is `{"drop": [...], "mask": [...], "hash": [...]}` under
    `log`. An empty one treats no column: given to `Deployments.set_traffic` it removes the
    treatments, where a policy without any keeps the current ones."""

    drop: tuple[str, ...] = ()
    mask: tuple[str, ...] = ()
    hash: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for treatment in LOG_TREATMENTS:
            names = _names(treatment, getattr(self, treatment))
            for name in names:
                if name in seen:
                    raise InvalidInput(
                        f"column {name!r} is both {_DONE[seen[name]]} and {_DONE[treatment]} in the "
                        "prediction log's policy; give it one treatment"
                    )
                seen[name] = treatment
            object.__setattr__(self, treatment, names)  # frozen: normalised once, here
        if len(seen) > MAX_LOGGED_COLUMNS:
            raise InvalidInput(f"a log policy names at most {MAX_LOGGED_COLUMNS} columns, not {len(seen)}")

    @property
    def columns(self) -> dict[str, str]:
        """Each named column's treatment."""
        return {name: t for t in LOG_TREATMENTS for name in getattr(self, t)}

    def __bool__(self) -> bool:
        return bool(self.drop or self.mask or self.hash)

    def to_dict(self) -> dict[str, list[str]]:
        """The policy as a traffic policy stores it (JSON), only the treatments in use."""
        return {t: list(getattr(self, t)) for t in LOG_TREATMENTS if getattr(self, t)}

    @classmethod
    def from_dict(cls, data: object) -> LogPolicy:
        """The policy of a stored or sent traffic policy; InvalidInput says what is malformed."""
        if not isinstance(data, Mapping) or not set(data) <= set(LOG_TREATMENTS):
            raise InvalidInput(f"log {data!r:.120} must be {{drop: [column, ...], mask: [...], hash: [...]}}")
        return cls(*(tuple(_names(t, data.get(t) or ())) for t in LOG_TREATMENTS))

    def describe(self) -> str:
        """One line for people: `log drops a; masks b, c; hashes d`."""
        verbs = {"drop": "drops", "mask": "masks", "hash": "hashes"}
        parts = [f"{verbs[t]} {', '.join(getattr(self, t))}" for t in LOG_TREATMENTS if getattr(self, t)]
        return "log " + "; ".join(parts) if parts else "log keeps every column"
