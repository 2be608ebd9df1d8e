"""The traffic policy of an endpoint: which versions take its traffic, and how.

A policy is a plain value stored with the endpoint. The data plane turns it into a routing
decision once, when it changes, never per request. Today a policy has a primary version; the
fields for canary weight, shadows and A/B arms are validated here so the rollout work extends
the same value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lockgate.errors import InvalidInputError


def _version(value: Any, field_name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInputError(
            f"The '{field_name}' parameter of TrafficPolicy must be a positive int. "
            f"Got {value!r} instead.",
            field=field_name,
            expected="a positive int",
            got=value,
        )
    return value


def _percent(value: Any, field_name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 100:
        raise InvalidInputError(
            f"The '{field_name}' parameter of TrafficPolicy must be a number in the range "
            f"[0, 100]. Got {value!r} instead.",
            field=field_name,
            expected="a number in [0, 100]",
            got=value,
        )
    return float(value)


@dataclass(frozen=True)
class Shadow:
    version: int
    sample_percent: float = 100.0


@dataclass(frozen=True)
class TrafficPolicy:
    primary: int
    canary: int | None = None
    canary_weight: float = 0.0
    shadows: tuple[Shadow, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        _version(self.primary, "primary")
        if self.canary is not None:
            _version(self.canary, "canary")
            if self.canary == self.primary:
                raise InvalidInputError.for_field(
                    "canary", "a version other than the primary", self.canary
                )
        _percent(self.canary_weight, "canary_weight")
        if self.canary is None and self.canary_weight:
            raise InvalidInputError.for_field(
                "canary_weight", "0 without a canary version", self.canary_weight
            )
        for i, s in enumerate(self.shadows):
            _version(s.version, f"shadows[{i}].version")
            _percent(s.sample_percent, f"shadows[{i}].sample_percent")

    @property
    def versions(self) -> list[int]:
        """Every version the policy needs loaded, primary first."""
        out = [self.primary]
        if self.canary is not None:
            out.append(self.canary)
        out.extend(s.version for s in self.shadows if s.version not in out)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "canary": self.canary,
            "canary_weight": self.canary_weight,
            "shadows": [
                {"version": s.version, "sample_percent": s.sample_percent} for s in self.shadows
            ],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrafficPolicy:
        if not isinstance(d, Mapping) or "primary" not in d:
            raise InvalidInputError.for_field("policy", "an object with 'primary'", d)
        shadows = d.get("shadows") or []
        if not isinstance(shadows, list):
            raise InvalidInputError.for_field("shadows", "a list", shadows)
        return cls(
            primary=d["primary"],
            canary=d.get("canary"),
            canary_weight=d.get("canary_weight", 0) or 0,
            shadows=tuple(
                Shadow(s.get("version"), s.get("sample_percent", 100.0))  # type: ignore[arg-type]
                for s in shadows
            ),
        )
