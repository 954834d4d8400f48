"""The one exception hierarchy of loopline.

Every message says what was wrong, where (key, column, position, path) and, when it is not
obvious, what to do about it. Interfaces map these to exit codes and HTTP statuses.
"""

from __future__ import annotations


class LooplineError(Exception):
    """Base class of every error loopline raises on purpose."""


class InvalidInput(LooplineError):
    """The caller passed something loopline cannot accept."""


class FilterSyntaxError(InvalidInput):
    """A search filter or order-by clause does not parse; `position` is 0-based."""

    def __init__(self, message: str, text: str, position: int) -> None:
        self.text = text
        self.position = position
        caret = " " * position + "^"
        super().__init__(f"{message} (at column {position + 1})\n  {text}\n  {caret}")


class SignatureMismatch(InvalidInput):
    """Prediction input does not match the model's signature; `problems` lists each issue."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("input does not match the model's signature: " + "; ".join(problems))


class DataValidationFailed(InvalidInput):
    """Data broke its contract; `report` says which rules, where, and shows offending rows."""

    def __init__(self, message: str, report: object) -> None:
        self.report = report
        super().__init__(message)


class NotFound(LooplineError):
    """A named thing does not exist."""


class AlreadyExists(LooplineError):
    """Creating something whose name is taken."""


class Conflict(LooplineError):
    """The request contradicts what is stored (a changed param, a finished run...)."""


class PermissionDenied(LooplineError):
    """The acting principal may not do this."""


class Unauthenticated(LooplineError):
    """No valid credentials: a missing, unknown, revoked or expired token."""


class StoreError(LooplineError):
    """The metadata store cannot be opened or used."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer loopline than this one."""


class ProviderUnavailable(LooplineError):
    """A service loopline relies on (an OpenID Connect provider) did not answer, or not sensibly."""


class UntrustedModel(PermissionDenied):
    """Loading the model could run code it carries; the caller has not said to trust it."""


class ContractViolation(LooplineError):
    """A plug-in (a model flavor, a notifier) breaks the contract loopline relies on."""


class ArtifactCorrupted(LooplineError):
    """A stored blob no longer matches its content hash."""


class EncryptionKeyError(ArtifactCorrupted):
    """A stored file is encrypted under a key this process does not hold, or the key held
    under that id does not open it."""


class MetricWriteError(LooplineError):
    """The background writer could not store buffered metric values."""


class RunTerminated(BaseException):
    """SIGTERM arrived while a run was active; the run is recorded as KILLED."""


class ApprovalRequired(LooplineError):
    """The alias is protected: the move waits, as a request, for a second person to approve it."""

    def __init__(self, message: str, request_id: int) -> None:
        self.request_id = request_id
        super().__init__(message)


class TooManyAttempts(LooplineError):
    """Too many failed logins from one address: it must wait `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


# On the wire: a stable code per class (its snake_case name) and the attributes it carries.

_DETAILS: dict[str, tuple[str, ...]] = {
    "FilterSyntaxError": ("text", "position"),
    "SignatureMismatch": ("problems",),
    "ApprovalRequired": ("request_id",),
    "TooManyAttempts": ("retry_after_s",),
    "PromotionRefused": ("report",),
}


def _subclasses(cls: type[LooplineError]) -> list[type[LooplineError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found


def error_code(cls: type[LooplineError]) -> str:
    name = cls.__name__
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


def error_details(exc: LooplineError) -> dict[str, object]:
    """The attributes an error carries, as JSON values (a report as its dict)."""
    found = {key: getattr(exc, key) for key in _DETAILS.get(type(exc).__name__, ())}
    return {key: value.to_dict() if hasattr(value, "to_dict") else value for key, value in found.items()}


def error_from_code(code: str, message: str, details: dict[str, object]) -> LooplineError:
    """Rebuild, on the client, the error the server raised: same class, message and details."""
    cls = next((c for c in _subclasses(LooplineError) if error_code(c) == code), LooplineError)
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    for key in _DETAILS.get(cls.__name__, ()):
        if key in details:
            setattr(exc, key, details[key])
    return exc
