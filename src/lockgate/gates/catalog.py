"""The gate types Lockgate knows: its built-ins, those installed packages declare under the
``lockgate.gates`` entry point group, and those registered at run time with
:func:`register_gate`.

A package adds a gate type with, in its ``pyproject.toml``::

    [project.entry-points."lockgate.gates"]
    artifact_size = "my_package.gates:ArtifactSizeGate"

Lockgate's own built-ins are declared the same way in its ``pyproject.toml``; the table below is
the fallback when Lockgate runs from a source tree that was never installed. An entry point may
not replace a built-in type with another class.
"""

from __future__ import annotations

import importlib
import re
import warnings
from functools import cache
from importlib.metadata import entry_points

from lockgate.errors import InvalidInputError
from lockgate.gates.base import Gate

ENTRY_POINT_GROUP = "lockgate.gates"

#: type name -> "module:Class"
BUILTIN_GATES: dict[str, str] = {
    "schema": "lockgate.gates.schema:SchemaGate",
    "smoke": "lockgate.gates.smoke:SmokeGate",
    "quality": "lockgate.gates.quality:QualityGate",
    "latency": "lockgate.gates.latency:LatencyGate",
    "fairness": "lockgate.gates.fairness:FairnessGate",
}

_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_registered: dict[str, type[Gate]] = {}


class GatePluginWarning(UserWarning):
    """An entry point of the ``lockgate.gates`` group was ignored (and why)."""


@cache
def _entry_point_specs() -> dict[str, str]:
    specs: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        builtin = BUILTIN_GATES.get(ep.name)
        if builtin is not None and builtin != ep.value:
            warnings.warn(
                f"entry point {ep.name} = {ep.value!r} ({ep.dist.name if ep.dist else '?'}) "
                f"would replace the built-in {ep.name!r} gate; ignored",
                GatePluginWarning,
                stacklevel=2,
            )
            continue
        specs.setdefault(ep.name, ep.value)
    return specs


def refresh() -> None:
    """Forget the cached entry points (after installing a plugin into a running process)."""
    _entry_point_specs.cache_clear()


def entry_point_types() -> dict[str, str]:
    """The gate types declared by installed distributions: type name -> ``module:Class``."""
    return dict(_entry_point_specs())


def available_gates() -> list[str]:
    """Every gate type name: built-ins first, then plugins and run-time registrations."""
    names = list(BUILTIN_GATES)
    names += [n for n in _entry_point_specs() if n not in names]
    names += [n for n in _registered if n not in names]
    return names


def register_gate(cls: type[Gate], *, replace: bool = False) -> type[Gate]:
    """Register a gate class under its ``type`` for this process (usable as a decorator).

    Built-in types cannot be replaced; another registration of the same type needs
    ``replace=True``."""
    if not (isinstance(cls, type) and issubclass(cls, Gate)):
        raise InvalidInputError.for_field("gate", "a subclass of lockgate.gates.Gate", cls)
    name = getattr(cls, "type", None)
    if not isinstance(name, str) or not _TYPE_RE.match(name):
        raise InvalidInputError.for_field(
            f"{cls.__name__}.type", "a lowercase name of letters, digits and _", name
        )
    if name in BUILTIN_GATES:
        raise InvalidInputError.for_field("type", "a name other than a built-in gate's", name)
    if name in _registered and _registered[name] is not cls and not replace:
        raise InvalidInputError.for_field(
            "type", "a gate type not registered yet (or replace=True)", name
        )
    _registered[name] = cls
    return cls


def unregister_gate(name: str) -> None:
    """Remove a run-time registration (a no-op for unknown names)."""
    _registered.pop(name, None)


def get_gate(name: str) -> type[Gate]:
    """The gate class of type ``name``; a clear error when unknown or broken."""
    if name in _registered:
        return _registered[name]
    spec = BUILTIN_GATES.get(name) or _entry_point_specs().get(name)
    if spec is None:
        from lockgate.gates.params import unknown_key_error

        raise unknown_key_error("the gate policy", str(name), available_gates(), "gate type")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(
            f"gate type {name!r} is declared as {spec!r}, which cannot be imported: "
            f"{type(exc).__name__}: {exc}",
            field="type",
            expected="an importable gate class",
            got=spec,
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Gate)):
        raise InvalidInputError.for_field("type", "a subclass of lockgate.gates.Gate", spec)
    return cls
