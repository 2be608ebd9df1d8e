"""Validation reports: the stored outcome of one validation run, and the deploy decision made
from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lockgate.gates.base import STATUSES, GateResult, Status

#: ``lockgate validate`` exit codes
EXIT_CODES: dict[Status, int] = {"pass": 0, "fail": 1, "inconclusive": 2}
EXIT_USAGE = 3


@dataclass(frozen=True)
class ValidationReport:
    """One validation run of ``model/version``: overall status, the baseline it was compared
    with, the policy (and its hash) it ran under, its inputs and every gate's result."""

    id: int | None
    model: str
    version: int
    status: Status
    gates: tuple[GateResult, ...]
    policy: dict[str, Any]
    policy_sha256: str
    policy_source: str
    inputs: dict[str, Any]
    baseline_alias: str | None
    baseline_version: int | None
    created_at: datetime
    created_by: str
    duration_s: float = 0.0

    @property
    def ref(self) -> str:
        return f"{self.model}/{self.version}"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def gate(self, name: str) -> GateResult:
        for g in self.gates:
            if g.name == name:
                return g
        raise KeyError(name)

    def counts(self) -> dict[str, int]:
        return {s: sum(g.status == s for g in self.gates) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "status": self.status,
            "baseline": {"alias": self.baseline_alias, "version": self.baseline_version},
            "gates": [g.to_dict() for g in self.gates],
            "counts": self.counts(),
            "policy": self.policy,
            "policy_sha256": self.policy_sha256,
            "policy_source": self.policy_source,
            "inputs": self.inputs,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "duration_s": round(self.duration_s, 6),
        }


@dataclass(frozen=True)
class DeployCheck:
    """Whether a version may be deployed as far as gates go, and the evidence.

    ``required`` is True when the model has a saved policy with ``required = true``; then
    ``allowed`` needs the version's latest report under that policy to be ``pass``."""

    model: str
    version: int
    required: bool
    allowed: bool
    reason: str
    report_id: int | None = None
    report_status: Status | None = None
    policy_sha256: str | None = None
    forced: bool = False
    force_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "required": self.required,
            "allowed": self.allowed,
            "reason": self.reason,
            "report_id": self.report_id,
            "report_status": self.report_status,
            "policy_sha256": self.policy_sha256,
            "forced": self.forced,
            "force_reason": self.force_reason,
        }
