"""Per-endpoint serving configuration, with declarative constraints and clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from lockgate.errors import InvalidInputError

_RULES: dict[str, tuple[type, float, float, str]] = {
    "max_batch_size": (int, 1, 100_000, "an int in the range [1, 100000]"),
    "max_wait_ms": (float, 0, 10_000, "a number in the range [0, 10000]"),
    "max_queue": (int, 1, 10_000_000, "an int in the range [1, 10000000]"),
    "timeout_ms": (float, 1, 3_600_000, "a number in the range [1, 3600000]"),
}


@dataclass(frozen=True)
class BatchingConfig:
    """Adaptive batching of one endpoint's versions. Off by default.

    ``max_batch_size`` rows per model call; ``max_wait_ms`` the longest a request waits for
    others to join its batch; ``max_queue`` rows waiting before new requests get 503 with
    Retry-After; ``timeout_ms`` the per-request deadline (504 when passed), applied with or
    without batching."""

    enabled: bool = False
    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    max_queue: int = 4096
    timeout_ms: float = 30_000.0

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise InvalidInputError(
                f"The 'enabled' parameter of BatchingConfig must be a bool. "
                f"Got {self.enabled!r} instead.",
                field="enabled",
                expected="a bool",
                got=self.enabled,
            )
        for name, (typ, lo, hi, text) in _RULES.items():
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if typ is int:
                ok = ok and float(value).is_integer()
            if not ok or not lo <= value <= hi:
                raise InvalidInputError(
                    f"The '{name}' parameter of BatchingConfig must be {text}. "
                    f"Got {value!r} instead.",
                    field=name,
                    expected=text,
                    got=value,
                )
            object.__setattr__(self, name, typ(value))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> BatchingConfig:
        d = dict(d or {})
        unknown = set(d) - {"enabled", *_RULES}
        if unknown:
            raise InvalidInputError.for_field(
                "batching", f"keys among enabled, {', '.join(_RULES)}", sorted(unknown)
            )
        return cls(**d)
