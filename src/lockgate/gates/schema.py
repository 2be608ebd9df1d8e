"""The schema gate: the candidate accepts every request the versions it would replace accept.

It compares the candidate's signature with the signature of each version taking traffic on the
model's endpoints (or one named endpoint), using
:func:`lockgate.registry.signature.compatible`: no input removed, no dtype narrowed, no new
required input. With no endpoint serving the model yet, it compares with the baseline; with
neither there is nothing to break and the gate passes.
"""

from __future__ import annotations

from typing import ClassVar

from lockgate.gates.base import Check, Gate, GateResult
from lockgate.gates.context import GateContext
from lockgate.gates.params import BOOL, STRING, Param
from lockgate.registry.models import ModelVersion, VersionRef
from lockgate.registry.signature import compatible


class SchemaGate(Gate):
    type: ClassVar[str] = "schema"
    isolated: ClassVar[bool] = True
    summary: ClassVar[str] = "the candidate's signature is compatible with what is served"
    parameters = {
        "endpoint": Param(
            None, STRING, None, help="check only this endpoint (default: every endpoint)"
        ),
        "allow_new_inputs": Param(
            False, BOOL, help="accept new input columns (when every client sends them already)"
        ),
    }

    def evaluate(self, ctx: GateContext) -> GateResult:
        wanted = self.params_["endpoint"]
        targets: list[tuple[str, ModelVersion]] = []
        for endpoint, number in ctx.endpoint_versions():
            if wanted is None or endpoint == wanted:
                ref = VersionRef(ctx.candidate.model, version=number)
                served = ctx.ws.registry.get_version(ref)
                targets.append((f"endpoint {endpoint} (v{number})", served))
        if wanted is not None and not targets:
            return self.result(
                [Check.undecided("endpoint", f"endpoint {wanted!r} does not serve this model")]
            )
        if not targets and ctx.baseline is not None:
            targets.append((f"baseline {ctx.baseline.ref}", ctx.baseline))
        if not targets:
            return self.result(
                [],
                reason="no endpoint serves the model and there is no baseline: "
                "nothing to stay compatible with",
            )
        checks = []
        for label, served in targets:
            problems = compatible(served.signature, ctx.candidate.signature)
            if self.params_["allow_new_inputs"]:
                problems = [p for p in problems if not p.endswith("is new and required")]
            key = f"compatible[{label.split(' (')[0]}]"
            if problems:
                msg = f"incompatible with {label}: " + "; ".join(problems)
                checks.append(Check(key, "fail", msg, float(len(problems)), 0.0, "max"))
            else:
                checks.append(Check(key, "pass", f"compatible with {label}", 0.0, 0.0, "max"))
        return self.result(
            checks,
            details={
                "candidate_inputs": [c.to_dict() for c in ctx.candidate.signature.inputs],
                "compared_with": [label for label, _ in targets],
            },
        )
