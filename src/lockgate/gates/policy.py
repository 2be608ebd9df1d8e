"""Gate policies: which gates a model's candidates must pass, with which parameters.

A policy is a plain value: an ordered list of gate specs (type, name, parameters), the alias
candidates are compared with by default (``baseline``), and whether deploys of the model require
a passing report under it (``required``). It comes from a TOML or YAML file checked into the
user's repository (:func:`load_policy`), from a mapping given to the API, or from
:func:`default_policy`. Every gate's parameters are checked when the policy is built, so a typo
fails before anything runs.

File format (TOML; YAML has the same structure)::

    baseline = "champion"      # compare with this alias unless --against says otherwise
    required = true            # deploys need a passing report under this policy

    [[gates]]
    type = "schema"

    [[gates]]
    type = "quality"
    slices = ["region"]
    metrics = { roc_auc = { min = 0.7, max_regression = 0.01 } }

A file may hold the policies of several models under ``[models.<name>]`` instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from lockgate.errors import InvalidInputError
from lockgate.gates.base import Gate
from lockgate.gates.catalog import get_gate
from lockgate.gates.params import unknown_key_error

POLICY_KEYS = ("version", "baseline", "required", "gates")
FORMAT_VERSION = 1
_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class GateSpec:
    """One gate of a policy: its type, its name in reports (default: the type) and its raw
    parameters."""

    type: str
    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def build(self) -> Gate:
        """The gate instance, parameters checked (``params_`` set)."""
        cls = get_gate(self.type)
        gate = cls(self.name, **dict(self.params))
        gate.validate_params()
        return gate

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "params": dict(self.params)}


@dataclass(frozen=True)
class GatePolicy:
    """An ordered list of gates plus ``baseline`` and ``required``. ``source`` says where it
    came from (a file path, ``saved``, ``default``); it is not part of :meth:`sha256`."""

    gates: tuple[GateSpec, ...]
    baseline: str | None = None
    required: bool = False
    source: str = "api"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gates", tuple(self.gates))
        names = [g.name for g in self.gates]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidInputError.for_field(
                "gates", "unique gate names (set 'name' to run a type twice)", dupes
            )
        if self.baseline is not None and (
            not isinstance(self.baseline, str) or not _NAME_RE.match(self.baseline)
        ):
            raise InvalidInputError.for_field("baseline", "an alias name", self.baseline)
        if not isinstance(self.required, bool):
            raise InvalidInputError.for_field("required", "true or false", self.required)

    def build(self) -> list[Gate]:
        """Every gate, parameters checked; the first bad value raises, naming the gate."""
        out = []
        for spec in self.gates:
            try:
                out.append(spec.build())
            except InvalidInputError as exc:
                raise _located(exc, f"gate {spec.name!r}", self.source) from None
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "required": self.required,
            "gates": [g.to_dict() for g in self.gates],
        }

    def sha256(self) -> str:
        """A hash of the policy's content (not its source): equal policies, equal hashes."""
        body = orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()

    def with_gates(self, extra: Sequence[GateSpec]) -> GatePolicy:
        return GatePolicy((*self.gates, *extra), self.baseline, self.required, self.source)

    def has_type(self, type_name: str) -> bool:
        return any(g.type == type_name for g in self.gates)

    @classmethod
    def from_dict(
        cls, doc: Mapping[str, Any], *, model: str | None = None, source: str = "api"
    ) -> GatePolicy:
        """A policy from a parsed file or an API mapping. With a ``models`` table, the
        section of ``model`` is used. Gates are given as ``{"type": ..., "name": ...,
        **params}`` (as in files) or ``{"type", "name", "params": {...}}`` (as stored)."""
        try:
            return cls._from_dict(doc, model, source)
        except InvalidInputError as exc:
            raise _located(exc, None, source) from None

    @classmethod
    def _from_dict(cls, doc: Any, model: str | None, source: str) -> GatePolicy:
        if not isinstance(doc, Mapping):
            raise InvalidInputError.for_field("policy", "a table of settings", type(doc).__name__)
        if "models" in doc:
            extra = sorted(set(doc) - {"models", "version"})
            if extra:
                raise InvalidInputError.for_field(
                    "policy", "only 'version' and 'models' beside a [models] table", extra
                )
            _check_format(doc.get("version", FORMAT_VERSION))
            sections = doc["models"]
            if not isinstance(sections, Mapping):
                raise InvalidInputError.for_field("models", "a table of model sections", sections)
            if model is None or model not in sections:
                raise InvalidInputError(
                    f"the policy has no section for model {model!r} "
                    f"(it has: {', '.join(sorted(sections)) or 'none'})",
                    field="models",
                    expected=f"a [models.{model}] section",
                    got=sorted(sections),
                )
            return cls._from_dict(sections[model], None, source)
        for key in doc:
            if key not in POLICY_KEYS:
                raise unknown_key_error("the policy", str(key), POLICY_KEYS, "key")
        _check_format(doc.get("version", FORMAT_VERSION))
        raw = doc.get("gates", [])
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            raise InvalidInputError.for_field("gates", "a list of gate tables", raw)
        gates = tuple(_spec(i, g) for i, g in enumerate(raw))
        return cls(
            gates,
            baseline=doc.get("baseline"),
            required=doc.get("required", False),
            source=source,
        )


def _spec(index: int, raw: Any) -> GateSpec:
    where = f"gates[{index}]"
    if not isinstance(raw, Mapping):
        raise InvalidInputError.for_field(where, "a table with a 'type'", raw)
    if "type" not in raw:
        raise InvalidInputError.for_field(f"{where}.type", "a gate type", None)
    type_name = raw["type"]
    if not isinstance(type_name, str):
        raise InvalidInputError.for_field(f"{where}.type", "a gate type name", type_name)
    get_gate(type_name)  # unknown types fail here, with the known ones listed
    name = raw.get("name", type_name)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInputError.for_field(
            f"{where}.name", "a lowercase name of letters, digits, - and _", name
        )
    if "params" in raw and isinstance(raw["params"], Mapping):
        extra = sorted(set(raw) - {"type", "name", "params"})
        if extra:
            raise InvalidInputError.for_field(
                where, "parameters either inline or under 'params', not both", extra
            )
        params = dict(raw["params"])
    else:
        params = {k: v for k, v in raw.items() if k not in ("type", "name")}
    return GateSpec(type_name, name, params)


def _check_format(version: Any) -> None:
    if version != FORMAT_VERSION:
        raise InvalidInputError.for_field("version", f"{FORMAT_VERSION}", version)


def _located(exc: InvalidInputError, gate: str | None, source: str) -> InvalidInputError:
    where = f"policy ({source})" if source not in ("api", "default") else "policy"
    prefix = f"{where}, {gate}: " if gate else f"{where}: "
    return InvalidInputError(
        prefix + exc.message, field=exc.field, expected=exc.expected, got=exc.got
    )


def load_policy(path: str | Path, model: str) -> GatePolicy:
    """Read a policy file: ``.toml`` (always), ``.yaml`` / ``.yml`` (when PyYAML is
    installed; it is not a Lockgate dependency). Errors name the file and the problem."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise InvalidInputError.for_field("policy", "a .toml, .yaml or .yml file", p.name)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError.for_field(
            "policy", "a readable policy file", f"{p} ({type(exc).__name__}: {exc})"
        ) from None
    doc: Any
    if suffix == ".toml":
        import tomllib

        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInputError.for_field("policy", "valid TOML", f"{p}: {exc}") from None
    else:
        try:
            import yaml
        except ImportError:
            raise InvalidInputError.for_field(
                "policy",
                "a .toml file, or PyYAML installed for YAML (pip install pyyaml)",
                p.name,
            ) from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInputError.for_field("policy", "valid YAML", f"{p}: {exc}") from None
    return GatePolicy.from_dict(doc or {}, model=model, source=str(p))


def default_policy(*, compare: bool, fairness: bool) -> GatePolicy:
    """The policy used without a file or a saved policy: schema and smoke always; quality
    (no worse than the baseline beyond the default margins) when ``compare`` (a baseline and
    labelled evaluation data); fairness with default thresholds when ``fairness``."""
    gates = [GateSpec("schema", "schema"), GateSpec("smoke", "smoke")]
    if compare:
        gates.append(GateSpec("quality", "quality"))
    if fairness:
        gates.append(GateSpec("fairness", "fairness"))
    return GatePolicy(tuple(gates), source="default")
