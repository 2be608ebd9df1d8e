"""The traffic policy of an endpoint: which versions take its traffic, and how.

A policy is a plain value stored with the endpoint. The data plane turns it into a routing
decision (:class:`~lockgate.rollout.router.Route`) once, when it changes, never per request.

Shapes a policy can take (checked on construction, with errors naming the field):

* a **primary** version alone (after a deploy);
* a primary plus a **canary** version that takes ``canary_weight`` percent of the traffic;
* **A/B arms**: two or more versions with weights that add up to 100, the primary among them;
* any of the above plus **shadows**: versions that receive a copy of ``sample_percent``
  percent of the requests off the response path; their answers are logged, never returned.

Assignment to a canary or an arm is sticky by a request key (the ``X-Lockgate-Key`` header, or
the value of the input column ``key_column``), hashed with ``salt`` into one of 10,000
buckets, so the same key lands on the same version across requests, restarts and replicas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lockgate.errors import InvalidInputError

#: how far the arm weights may be from adding up to exactly 100 (floating point slack)
WEIGHT_TOLERANCE = 1e-6


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
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not 0 <= value <= 100
    ):
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
    """A version that receives a copy of ``sample_percent`` percent of the requests."""

    version: int
    sample_percent: float = 100.0


@dataclass(frozen=True)
class Arm:
    """One arm of an A/B split: a version and its share of the traffic in percent."""

    version: int
    weight: float


@dataclass(frozen=True)
class TrafficPolicy:
    primary: int
    canary: int | None = None
    canary_weight: float = 0.0
    shadows: tuple[Shadow, ...] = field(default_factory=tuple)
    arms: tuple[Arm, ...] = field(default_factory=tuple)
    key_column: str | None = None
    salt: str = ""

    def __post_init__(self) -> None:
        _version(self.primary, "primary")
        if self.canary is not None:
            _version(self.canary, "canary")
            if self.canary == self.primary:
                raise InvalidInputError.for_field(
                    "canary", "a version other than the primary", self.canary
                )
        object.__setattr__(self, "canary_weight", _percent(self.canary_weight, "canary_weight"))
        if self.canary is None and self.canary_weight:
            raise InvalidInputError.for_field(
                "canary_weight", "0 without a canary version", self.canary_weight
            )
        object.__setattr__(self, "arms", tuple(self.arms))
        object.__setattr__(self, "shadows", tuple(self.shadows))
        if self.arms:
            self._check_arms()
        seen = set(self.live_versions)
        for i, s in enumerate(self.shadows):
            if not isinstance(s, Shadow):
                raise InvalidInputError.for_field(
                    f"shadows[{i}]", "a Shadow(version, sample_percent)", s
                )
            _version(s.version, f"shadows[{i}].version")
            _percent(s.sample_percent, f"shadows[{i}].sample_percent")
            if s.version in seen:
                raise InvalidInputError.for_field(
                    f"shadows[{i}].version",
                    "a version that takes no live traffic and is not shadowed twice",
                    s.version,
                )
            seen.add(s.version)
        if self.key_column is not None and (
            not isinstance(self.key_column, str) or not 0 < len(self.key_column) <= 128
        ):
            raise InvalidInputError.for_field(
                "key_column", "an input column name (1-128 characters)", self.key_column
            )
        if not isinstance(self.salt, str) or len(self.salt) > 128:
            raise InvalidInputError.for_field("salt", "a string of at most 128 chars", self.salt)

    def _check_arms(self) -> None:
        if self.canary is not None:
            raise InvalidInputError.for_field(
                "arms", "no A/B arms together with a canary", [a.version for a in self.arms]
            )
        if len(self.arms) < 2:
            raise InvalidInputError.for_field("arms", "at least two arms", len(self.arms))
        versions: set[int] = set()
        for i, a in enumerate(self.arms):
            if not isinstance(a, Arm):
                raise InvalidInputError.for_field(f"arms[{i}]", "an Arm(version, weight)", a)
            _version(a.version, f"arms[{i}].version")
            _percent(a.weight, f"arms[{i}].weight")
            if a.version in versions:
                raise InvalidInputError.for_field(
                    f"arms[{i}].version", "a version not used by another arm", a.version
                )
            versions.add(a.version)
        total = sum(a.weight for a in self.arms)
        if abs(total - 100.0) > WEIGHT_TOLERANCE:
            raise InvalidInputError(
                f"The 'arms' parameter of TrafficPolicy must have weights that add up to 100. "
                f"Got {[a.weight for a in self.arms]} (sum {total:g}) instead.",
                field="arms",
                expected="weights adding up to 100",
                got=[a.weight for a in self.arms],
            )
        if self.primary not in versions:
            raise InvalidInputError.for_field(
                "primary", f"one of the arm versions {sorted(versions)}", self.primary
            )

    # -- views ------------------------------------------------------------------------------
    @property
    def is_simple(self) -> bool:
        """True when the primary takes all the traffic and nothing is shadowed."""
        return self.canary is None and not self.shadows and not self.arms

    @property
    def live_versions(self) -> list[int]:
        """Versions that answer requests, primary first."""
        if self.arms:
            return [self.primary, *(a.version for a in self.arms if a.version != self.primary)]
        return [self.primary] if self.canary is None else [self.primary, self.canary]

    @property
    def versions(self) -> list[int]:
        """Every version the policy needs loaded, primary first."""
        out = self.live_versions
        out.extend(s.version for s in self.shadows if s.version not in out)
        return out

    def role_of(self, version: int) -> str:
        """The role a version's predictions are logged with: primary, canary, arm, shadow."""
        if self.arms and any(a.version == version for a in self.arms):
            return "arm"
        if version == self.primary:
            return "primary"
        if version == self.canary:
            return "canary"
        if any(s.version == version for s in self.shadows):
            return "shadow"
        raise InvalidInputError.for_field("version", f"one of {self.versions}", version)

    def weights(self) -> dict[int, float]:
        """Percent of the live traffic per version (adds up to 100)."""
        if self.arms:
            return {a.version: a.weight for a in self.arms}
        if self.canary is None:
            return {self.primary: 100.0}
        return {self.primary: 100.0 - self.canary_weight, self.canary: self.canary_weight}

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "canary": self.canary,
            "canary_weight": self.canary_weight,
            "shadows": [
                {"version": s.version, "sample_percent": s.sample_percent} for s in self.shadows
            ],
            "arms": [{"version": a.version, "weight": a.weight} for a in self.arms],
            "key_column": self.key_column,
            "salt": self.salt,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrafficPolicy:
        if not isinstance(d, Mapping) or "primary" not in d:
            raise InvalidInputError.for_field("policy", "an object with 'primary'", d)
        return cls(
            primary=d["primary"],
            canary=d.get("canary"),
            canary_weight=d.get("canary_weight", 0) or 0,
            shadows=tuple(
                Shadow(s["version"], s.get("sample_percent", 100.0))
                for s in _objects(d.get("shadows"), "shadows", ("version",))
            ),
            arms=tuple(
                Arm(a["version"], a["weight"])
                for a in _objects(d.get("arms"), "arms", ("version", "weight"))
            ),
            key_column=d.get("key_column"),
            salt=d.get("salt") or "",
        )


def _objects(value: Any, name: str, required: tuple[str, ...]) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInputError.for_field(name, "a list", value)
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or any(k not in item for k in required):
            raise InvalidInputError.for_field(
                f"{name}[{i}]", "an object with " + ", ".join(repr(k) for k in required), item
            )
    return value
