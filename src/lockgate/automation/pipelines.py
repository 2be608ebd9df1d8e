"""Pipeline definitions: a model's training entry point, its schedule and how a candidate it
produces is rolled out, stored per model in the metadata store.

An entry point is ``package.module:function`` (identifier segments only) or a Python script
``path/to/train.py`` (its function ``train``) or ``path/to/train.py:function``. A script path
must exist, end in ``.py`` and contain no ``..`` segment; it is stored absolute.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from lockgate.audit.events import record_event
from lockgate.automation.cron import parse_cron
from lockgate.errors import InvalidInputError, NotFoundError
from lockgate.store.paths import validate_name
from lockgate.store.schema import PipelineRow

if TYPE_CHECKING:
    from lockgate.workspace import Workspace

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
ENTRY_RE = re.compile(rf"{_IDENT}(\.{_IDENT})*:{_IDENT}")
ENTRY_RULE = (
    "'package.module:function' (identifier segments) or a script 'path/to/train.py[:function]'"
)
STRATEGIES = ("shadow", "canary", "shadow-then-canary", "none")
#: the built-in entry point of online learning (``partial_fit`` on the parent version)
ONLINE_ENTRY = "lockgate.automation.online:partial_fit_update"
#: the key of a pipeline's ``state``: when the policy engine last considered its schedule
SCHEDULE_LAST = "schedule_last"


def _error(name: str, expected: str, got: Any) -> InvalidInputError:
    return InvalidInputError(
        f"The '{name}' parameter of PipelineSpec must be {expected}. Got {got!r} instead.",
        field=name,
        expected=expected,
        got=got,
    )


def parse_entry(entry: object) -> tuple[str, str | None, str]:
    """``(kind, module_or_script, function)`` of an entry point string; kind is ``module``
    or ``script``. Raises InvalidInputError (field ``entry``) on anything else."""
    if not isinstance(entry, str) or not entry or len(entry) > 500 or "\x00" in entry:
        raise _error("entry", ENTRY_RULE, entry)
    if ENTRY_RE.fullmatch(entry):
        module, _, func = entry.partition(":")
        return "module", module, func
    path_text, func = entry, "train"
    head, sep, tail = entry.rpartition(":")
    if sep and head.endswith(".py") and re.fullmatch(_IDENT, tail):
        path_text, func = head, tail
    if not path_text.endswith(".py"):
        raise _error("entry", ENTRY_RULE, entry)
    if "\\" in path_text or any(p == ".." for p in Path(path_text).parts):
        raise _error("entry", "a script path without '..' segments", entry)
    return "script", path_text, func


def resolve_entry(entry: object, *, base: Path | None = None) -> str:
    """The entry point as stored: module entries as given, script paths made absolute and
    checked to exist."""
    kind, target, func = parse_entry(entry)
    if kind == "module":
        return str(entry)
    assert target is not None
    path = Path(target)
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    path = path.resolve()
    if not path.is_file():
        raise InvalidInputError.for_field("entry", "an existing script file", str(target))
    return f"{path}:{func}"


@dataclass(frozen=True)
class PipelineSpec:
    """How to retrain ``model`` and roll the result out. ``endpoint`` defaults to the
    model's name; ``strategy`` ``none`` registers and validates without a rollout."""

    model: str
    entry: str
    schedule: str | None = None
    endpoint: str | None = None
    strategy: str = "shadow-then-canary"
    steps: tuple[float, ...] = (10.0, 50.0, 100.0)
    interval: float = 60.0
    timeout: float = 600.0
    #: seconds of prediction log (joined with feedback) a run trains on
    window: float = 7 * 86_400.0
    #: labelled rows a run needs before it trains
    min_rows: int = 100
    #: share of the window (the newest rows) held out for the gates
    holdout: float = 0.3
    #: the label column name given to the training function (default: the parent's target)
    target: str | None = None
    analysis: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_name(self.model, "model")
        parse_entry(self.entry)
        if self.schedule is not None:
            parse_cron(self.schedule)
        if self.endpoint is not None:
            validate_name(self.endpoint, "endpoint")
        if self.strategy not in STRATEGIES:
            raise _error("strategy", "one of " + ", ".join(STRATEGIES), self.strategy)
        steps = self.steps
        if isinstance(steps, str) or not all(
            isinstance(s, int | float) and not isinstance(s, bool) and 0 < s <= 100 for s in steps
        ):
            raise _error("steps", "a list of percentages in (0, 100]", steps)
        object.__setattr__(self, "steps", tuple(float(s) for s in steps))
        for name, low, high in (
            ("interval", 0.1, 86_400.0),
            ("timeout", 1.0, 86_400.0),
            ("window", 1.0, 366 * 86_400.0),
            ("holdout", 0.05, 0.9),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not low <= v <= high:
                raise _error(name, f"a number in the range [{low:g}, {high:g}]", v)
            object.__setattr__(self, name, float(v))
        n = self.min_rows
        if isinstance(n, bool) or not isinstance(n, int) or not 10 <= n <= 100_000_000:
            raise _error("min_rows", "an int in the range [10, 100000000]", n)
        if self.target is not None and (not isinstance(self.target, str) or not self.target):
            raise _error("target", "a column name", self.target)
        if not isinstance(self.analysis, dict):
            raise _error("analysis", "a mapping of rollout analysis thresholds", self.analysis)
        if self.analysis:
            from lockgate.rollout.analysis import AnalysisConfig

            AnalysisConfig.from_dict(self.analysis)

    @property
    def endpoint_name(self) -> str:
        return self.endpoint or self.model

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"] = list(self.steps)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> PipelineSpec:
        if not isinstance(d, dict):
            raise InvalidInputError.for_field("pipeline", "an object", type(d).__name__)
        allowed = set(cls.__dataclass_fields__)
        unknown = set(d) - allowed
        if unknown:
            raise InvalidInputError.for_field(
                "pipeline", "keys among " + ", ".join(sorted(allowed)), sorted(unknown)
            )
        for key in ("model", "entry"):
            if key not in d:
                raise InvalidInputError.for_field(key, "a value (required)", None)
        args = dict(d)
        if isinstance(args.get("steps"), list):
            args["steps"] = tuple(args["steps"])
        if args.get("analysis") is None:
            args.pop("analysis", None)
        return cls(**args)


class PipelineStore:
    """Pipeline definitions of a workspace; every change is an event."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def set(self, spec: PipelineSpec | dict[str, Any], *, reason: str = "") -> PipelineSpec:
        """Create or replace ``spec.model``'s pipeline (script entries are stored absolute).
        A new or changed schedule starts counting when the policy engine first sees it."""
        if not isinstance(spec, PipelineSpec):
            spec = PipelineSpec.from_dict(spec)
        if spec.entry != ONLINE_ENTRY:
            spec = replace(spec, entry=resolve_entry(spec.entry))
        self.ws.registry.get_model(spec.model)  # NotFoundError for an unknown model
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            row = s.execute(
                select(PipelineRow).where(PipelineRow.model == spec.model).with_for_update()
            ).scalar_one_or_none()
            kind = "pipeline.updated"
            if row is None:
                kind = "pipeline.created"
                row = PipelineRow(
                    model=spec.model, state={}, created_at=now, created_by=self.ws.actor
                )
                s.add(row)
            elif (row.spec or {}).get("schedule") != spec.schedule:
                row.state = {k: v for k, v in (row.state or {}).items() if k != SCHEDULE_LAST}
            row.spec = spec.to_dict()
            row.updated_at = now
            row.updated_by = self.ws.actor
            record_event(
                self.ws.db, s, kind=kind, subject=spec.model, actor=self.ws.actor, at=now,
                payload={"pipeline": spec.to_dict(), "reason": reason},
            )  # fmt: skip
        return spec

    def get(self, model: str) -> PipelineSpec:
        validate_name(model, "model")
        with self.ws.db.read() as s:
            row = s.execute(
                select(PipelineRow).where(PipelineRow.model == model)
            ).scalar_one_or_none()
            if row is None:
                raise NotFoundError("pipeline", model)
            return PipelineSpec.from_dict(dict(row.spec))

    def find(self, model: str) -> PipelineSpec | None:
        try:
            return self.get(model)
        except NotFoundError:
            return None

    def list(self) -> list[PipelineSpec]:
        with self.ws.db.read() as s:
            rows = s.execute(select(PipelineRow).order_by(PipelineRow.model)).scalars()
            return [PipelineSpec.from_dict(dict(r.spec)) for r in rows]

    def remove(self, model: str, *, reason: str = "") -> PipelineSpec:
        validate_name(model, "model")
        now = self.ws.clock.now()
        with self.ws.db.write() as s:
            row = s.execute(
                select(PipelineRow).where(PipelineRow.model == model).with_for_update()
            ).scalar_one_or_none()
            if row is None:
                raise NotFoundError("pipeline", model)
            spec = PipelineSpec.from_dict(dict(row.spec))
            s.delete(row)
            record_event(
                self.ws.db, s, kind="pipeline.removed", subject=model, actor=self.ws.actor,
                at=now, payload={"model": model, "reason": reason},
            )  # fmt: skip
        return spec


__all__ = [
    "ENTRY_RULE",
    "ONLINE_ENTRY",
    "SCHEDULE_LAST",
    "PipelineSpec",
    "PipelineStore",
    "parse_entry",
    "resolve_entry",
]
