"""Model, alias and dataset names, normalised so that look-alikes cannot become two things.

Names are NFKC-normalised, then must be ASCII letters, digits, '.', '_' or '-'; the
lowercase form is the identity. So `Churn`, `churn` and the fullwidth spelling of churn
are one model, and `%61bc` or `abc` spelled with a Cyrillic `a` are refused rather than
becoming a second `abc`.
"""

from __future__ import annotations

import re
import unicodedata

from loopline.core.errors import InvalidInput

MAX_LENGTH = 128
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")  # `canon.` would pass for `canon`
RESERVED_ALIASES = frozenset({"latest"})
# Who acts without being a user: the unauthenticated caller, the system, the usual superuser.
RESERVED_USERS = frozenset({"anonymous", "loopline", "root"})


def _normalised(kind: str, raw: object) -> str:
    if not isinstance(raw, str):
        raise InvalidInput(f"{kind} must be a string, got {type(raw).__name__}")
    try:
        text = unicodedata.normalize("NFKC", raw)
    except UnicodeError:
        raise InvalidInput(f"{kind} {raw!r} is not valid text") from None
    if not 0 < len(text) <= MAX_LENGTH or not _NAME.fullmatch(text):
        raise InvalidInput(
            f"{kind} {raw!r} is invalid: use 1 to {MAX_LENGTH} ASCII letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return text


def display_model_name(raw: object) -> str:
    """The name as the user spelled it, after normalisation."""
    return _normalised("model name", raw)


def model_name(raw: object) -> str:
    """The canonical name: what identifies the model."""
    return display_model_name(raw).lower()


def alias_name(raw: object) -> str:
    alias = _normalised("alias", raw).lower()
    if alias.isdigit():
        raise InvalidInput(f"alias {raw!r} is a number, which would read as a version")
    if alias in RESERVED_ALIASES:
        raise InvalidInput(f"alias {raw!r} is reserved: models:/NAME/latest already means the newest version")
    return alias


def dataset_name(raw: object) -> str:
    return _normalised("dataset name", raw).lower()
