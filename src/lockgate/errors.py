"""The one exception tree of Lockgate.

Every error Lockgate raises on purpose derives from :class:`LockgateError`. The core never
imports a web framework: the web layer maps these classes to HTTP status codes and the CLI
maps them to one readable line and an exit code.

::

    LockgateError
    ├── InvalidInputError          bad input from a user: names field, expected, got   (400/422)
    │   ├── InvalidNameError       a model, alias or endpoint name breaks the naming rule
    │   ├── UnsafePathError        traversal, absolute path, unexpected URL scheme
    │   └── SchemaError            data does not match a signature (column, expected, got)
    ├── NotFoundError              unknown model, version, alias, endpoint ...           (404)
    ├── ConflictError              the request clashes with current state                (409)
    ├── UntrustedArtifactError     pickle-based artifact without explicit trust          (403)
    ├── IntegrityError             stored bytes no longer match their sha256             (500)
    ├── RuntimeUnavailableError    a flavor's optional framework is not installed        (501)
    ├── ModelLoadError             a runtime could not load an artifact                  (500)
    ├── PredictionError            the model raised while predicting                     (500)
    ├── OverloadedError            a bounded queue is full; retry later                  (503)
    └── StoreError                 the metadata store is unusable (bad URL, migration)   (500)
"""

from __future__ import annotations

from typing import Any


class LockgateError(Exception):
    """Base class of every error Lockgate raises on purpose."""

    #: a short stable code, used in JSON error documents
    code: str = "error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, **self.details}


class InvalidInputError(LockgateError, ValueError):
    """Bad input. The message names the field, what was expected and what was got."""

    code = "invalid_input"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        expected: Any = None,
        got: Any = None,
        **details: Any,
    ) -> None:
        extra = {
            k: v
            for k, v in (("field", field), ("expected", expected), ("got", got))
            if v is not None
        }
        super().__init__(message, **extra, **details)
        self.field = field
        self.expected = expected
        self.got = got

    @classmethod
    def for_field(cls, field: str, expected: str, got: Any) -> InvalidInputError:
        return cls(
            f"{field}: expected {expected}, got {got!r}", field=field, expected=expected, got=got
        )


class InvalidNameError(InvalidInputError):
    code = "invalid_name"


class UnsafePathError(InvalidInputError):
    code = "unsafe_path"


class SchemaError(InvalidInputError):
    code = "schema_mismatch"


class NotFoundError(LockgateError, LookupError):
    """An object that does not exist was asked for."""

    code = "not_found"

    def __init__(self, kind: str, name: str, message: str | None = None) -> None:
        super().__init__(message or f"{kind} not found: {name}", kind=kind, name=name)
        self.kind = kind
        self.name = name


class ConflictError(LockgateError):
    code = "conflict"


class UntrustedArtifactError(LockgateError):
    code = "untrusted_artifact"


class IntegrityError(LockgateError):
    code = "integrity_error"


class RuntimeUnavailableError(LockgateError):
    code = "runtime_unavailable"


class ModelLoadError(LockgateError):
    code = "model_load_error"


class PredictionError(LockgateError):
    code = "prediction_error"


class OverloadedError(LockgateError):
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class StoreError(LockgateError):
    code = "store_error"
