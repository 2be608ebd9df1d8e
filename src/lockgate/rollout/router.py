"""Routing decisions as values: a :class:`Route` is computed from a
:class:`~lockgate.rollout.policy.TrafficPolicy` once, when the policy changes; per request the
data plane only hashes a key (or draws a random bucket) and bisects a tuple of a few ints.

Traffic is cut into :data:`BUCKETS` buckets. Each live version owns a contiguous range of
them, sized by its weight; a canary owns the *first* range, so when its weight grows from 5 to
25 percent every key that was on the canary stays on it. A request with a key lands in
``bucket_of(key, salt)``: blake2b of the salt and the key, so the assignment is the same in
every process, across restarts and replicas; a request without a key gets a random bucket.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from dataclasses import dataclass

from lockgate.rollout.policy import TrafficPolicy

#: the resolution of a split: 10,000 buckets, so weights are honoured to 0.01 percent
BUCKETS = 10_000


def bucket_of(key: str | bytes, salt: bytes = b"") -> int:
    """The bucket in ``[0, BUCKETS)`` of a request key; stable everywhere."""
    data = key.encode() if isinstance(key, str) else key
    digest = hashlib.blake2b(salt + b"\x00" + data, digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def to_buckets(weights: list[float]) -> tuple[int, ...]:
    """Cumulative upper bounds of the bucket ranges of ``weights`` (percent, adding up to
    100): rounding the running sum, so the ranges always cover exactly ``BUCKETS``."""
    bounds: list[int] = []
    running = 0.0
    for w in weights:
        running += w
        bounds.append(min(BUCKETS, round(running * BUCKETS / 100)))
    if bounds:
        bounds[-1] = BUCKETS
    return tuple(bounds)


@dataclass(frozen=True, slots=True)
class Target:
    version: int
    role: str


@dataclass(frozen=True, slots=True)
class ShadowTarget:
    version: int
    #: a request is copied to this shadow when a random bucket is below this bound
    threshold: int


@dataclass(frozen=True, slots=True)
class Route:
    """Where an endpoint's requests go. ``targets[i]`` takes the buckets in
    ``[bounds[i-1], bounds[i])``; ``shadows`` get copies."""

    targets: tuple[Target, ...]
    bounds: tuple[int, ...]
    shadows: tuple[ShadowTarget, ...] = ()
    key_column: str | None = None
    salt: bytes = b""

    @property
    def single(self) -> bool:
        """One live version: no key, hash or draw is needed."""
        return len(self.targets) == 1

    def pick(self, bucket: int) -> Target:
        return self.targets[bisect_right(self.bounds, bucket)]

    def pick_key(self, key: str | bytes) -> Target:
        return self.targets[bisect_right(self.bounds, bucket_of(key, self.salt))]

    def shares(self) -> dict[int, float]:
        """Percent of the buckets per live version."""
        out: dict[int, float] = {}
        lo = 0
        for t, hi in zip(self.targets, self.bounds, strict=True):
            out[t.version] = out.get(t.version, 0.0) + (hi - lo) * 100 / BUCKETS
            lo = hi
        return out

    @classmethod
    def from_policy(cls, policy: TrafficPolicy) -> Route:
        if policy.arms:
            targets = tuple(Target(a.version, "arm") for a in policy.arms)
            weights = [a.weight for a in policy.arms]
        elif policy.canary is not None:
            # the canary first: a growing weight keeps the keys it already has
            targets = (Target(policy.canary, "canary"), Target(policy.primary, "primary"))
            weights = [policy.canary_weight, 100.0 - policy.canary_weight]
        else:
            targets = (Target(policy.primary, "primary"),)
            weights = [100.0]
        shadows = tuple(
            ShadowTarget(s.version, round(s.sample_percent * BUCKETS / 100)) for s in policy.shadows
        )
        bounds = to_buckets(weights)
        keep = [i for i, hi in enumerate(bounds) if hi > (bounds[i - 1] if i else 0)]
        return cls(
            targets=tuple(targets[i] for i in keep),
            bounds=tuple(bounds[i] for i in keep),
            shadows=shadows,
            key_column=policy.key_column,
            salt=policy.salt.encode(),
        )
