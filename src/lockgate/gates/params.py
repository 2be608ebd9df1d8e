"""Declarative parameter constraints for gates, checked in one place.

A gate declares its parameters as :class:`Param` values (a default, the constraints a value must
meet, a one-line help); :func:`validate_params` checks a mapping of values against them and
raises :class:`~lockgate.errors.InvalidInputError` with the message scikit-learn users know::

    The 'max_ratio' parameter of LatencyGate must be a float in the range (1, inf). Got 0.5
    instead.

Constraints: :class:`Interval` (int or float with open or closed ends), :class:`Options` (one of
a fixed set), :data:`BOOL`, :data:`STRING`, :class:`ListOf` (a list of strings), :data:`MAPPING`,
:data:`SCALAR` and ``None`` (the value may be None).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lockgate.errors import InvalidInputError

Closed = Literal["both", "left", "right", "neither"]


class Constraint:
    """One acceptable kind of value. ``describe`` completes "must be ..."."""

    def accepts(self, value: Any) -> bool:
        raise NotImplementedError

    def convert(self, value: Any) -> Any:
        """The value as the gate receives it (for example an int given for a float)."""
        return value

    def describe(self) -> str:
        raise NotImplementedError


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"


@dataclass(frozen=True)
class Interval(Constraint):
    """An int or a float in a range; ``None`` for an open end (``-inf`` / ``inf``)."""

    type: type[int] | type[float]
    left: float | None
    right: float | None
    closed: Closed = "both"

    def accepts(self, value: Any) -> bool:
        if _is_bool(value) or not isinstance(value, numbers.Real):
            return False
        if self.type is int and not isinstance(value, numbers.Integral):
            return False
        v = float(value)
        if math.isnan(v):
            return False
        open_left = self.closed in ("right", "neither")
        open_right = self.closed in ("left", "neither")
        if self.left is not None and (v < self.left or (v == self.left and open_left)):
            return False
        return not (self.right is not None and (v > self.right or (v == self.right and open_right)))

    def convert(self, value: Any) -> Any:
        return int(value) if self.type is int else float(value)

    def describe(self) -> str:
        kind = "an int" if self.type is int else "a float"
        lo = "-inf" if self.left is None else _num(self.left)
        hi = "inf" if self.right is None else _num(self.right)
        lb = "[" if self.closed in ("both", "left") and self.left is not None else "("
        rb = "]" if self.closed in ("both", "right") and self.right is not None else ")"
        return f"{kind} in the range {lb}{lo}, {hi}{rb}"


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values."""

    values: tuple[Any, ...]

    def accepts(self, value: Any) -> bool:
        return any(value == v and type(value) is type(v) for v in self.values)

    def describe(self) -> str:
        kinds = {type(v).__name__ for v in self.values}
        kind = kinds.pop() if len(kinds) == 1 else "value"
        shown = ", ".join(repr(v) for v in self.values)
        return f"a {kind} among {{{shown}}}"


@dataclass(frozen=True)
class _Kind(Constraint):
    check: Callable[[Any], bool]
    description: str

    def accepts(self, value: Any) -> bool:
        return self.check(value)

    def describe(self) -> str:
        return self.description


BOOL = _Kind(_is_bool, "a bool")
STRING = _Kind(lambda v: isinstance(v, str) and bool(v), "a non-empty str")
MAPPING = _Kind(lambda v: isinstance(v, Mapping), "a mapping")
SCALAR = _Kind(lambda v: isinstance(v, str | numbers.Integral), "a label (str, int or bool)")


@dataclass(frozen=True)
class ListOf(Constraint):
    """A list (or tuple) of non-empty strings, converted to a tuple."""

    unique: bool = True

    def accepts(self, value: Any) -> bool:
        if isinstance(value, str) or not isinstance(value, Sequence):
            return False
        items = list(value)
        if not all(isinstance(v, str) and v for v in items):
            return False
        return not (self.unique and len(set(items)) != len(items))

    def convert(self, value: Any) -> Any:
        return tuple(value)

    def describe(self) -> str:
        return "a list of unique non-empty str" if self.unique else "a list of non-empty str"


@dataclass(frozen=True)
class Param:
    """A gate parameter: its default, the constraints a value must meet (any one of them;
    ``None`` in the list allows None) and a one-line description for the docs."""

    default: Any
    constraints: tuple[Constraint | None, ...]
    help: str = ""

    def __init__(self, default: Any, *constraints: Constraint | None, help: str = "") -> None:
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "constraints", constraints)
        object.__setattr__(self, "help", help)

    def describe(self) -> str:
        parts = [c.describe() if c is not None else "None" for c in self.constraints]
        if len(parts) == 1:
            return parts[0]
        return ", ".join(parts[:-1]) + " or " + parts[-1]


def parameter_error(owner: str, name: str, expected: str, got: Any) -> InvalidInputError:
    """The error for a bad value of parameter ``name`` of ``owner``."""
    return InvalidInputError(
        f"The {name!r} parameter of {owner} must be {expected}. Got {got!r} instead.",
        field=name,
        expected=expected,
        got=got,
    )


def check_value(owner: str, name: str, param: Param, value: Any) -> Any:
    """``value`` converted by the first constraint of ``param`` it meets; else the error."""
    for c in param.constraints:
        if c is None:
            if value is None:
                return None
        elif c.accepts(value):
            return c.convert(value)
    raise parameter_error(owner, name, param.describe(), value)


def unknown_key_error(
    owner: str, key: str, known: Iterable[str], what: str, prefix: str = ""
) -> InvalidInputError:
    """The error for an unknown ``key`` (shown after ``prefix``), with the closest known one
    as a hint."""
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean {prefix + close[0]!r}?" if close else ""
    return InvalidInputError(
        f"{owner} got an unexpected {what} {prefix + key!r}; expected one of {known}.{hint}",
        field=prefix + key,
        expected=known,
        got=key,
    )


def validate_params(
    owner: str, params: Mapping[str, Param], values: Mapping[str, Any]
) -> dict[str, Any]:
    """Every parameter of ``params`` resolved: the given value (checked and converted) or the
    default. Unknown names are an error naming the closest known one."""
    for key in values:
        if key not in params:
            raise unknown_key_error(owner, str(key), params, "parameter")
    out: dict[str, Any] = {}
    for name, param in params.items():
        if name in values:
            out[name] = check_value(owner, name, param, values[name])
        else:
            out[name] = param.default
    return out


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))
