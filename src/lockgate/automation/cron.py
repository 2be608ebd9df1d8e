"""A small cron-expression matcher: the five standard fields, evaluated in UTC.

``minute hour day-of-month month day-of-week``; each field is ``*``, a number, a range
``a-b``, a list ``a,b,c`` and any of these with a step ``/n`` (``*/15``, ``1-30/5``). Months
and weekdays also take their English three-letter names (``jan``, ``mon``); Sunday is 0 or 7.
As in Vixie cron, when both day-of-month and day-of-week are restricted (neither is ``*``), a
day matches if either does. The nicknames ``@hourly``, ``@daily`` (``@midnight``),
``@weekly``, ``@monthly`` and ``@yearly`` (``@annually``) are accepted.

``@every DURATION`` (``@every 30s``, ``@every 15m``, ``@every 2h``, ``@every 1d``; 1 s to
366 d) is an interval rather than calendar minutes: it is due once ``DURATION`` has passed
since it last fired. It serves frequent online updates, and tests that cannot wait for a
minute to turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lockgate.errors import InvalidInputError

_NICKNAMES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
#: (name, low, high, names starting at low)
_FIELDS: tuple[tuple[str, int, int, list[str]], ...] = (
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day of month", 1, 31, []),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
#: how far :meth:`CronSchedule.next_after` looks before giving up (e.g. ``0 0 31 2 *``)
_HORIZON = timedelta(days=366 * 5)
_EVERY = re.compile(r"@every\s+(\d+(?:\.\d+)?)\s*(s|m|h|d)", re.IGNORECASE)
_EVERY_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_EVERY_RANGE = (1.0, 366 * 86_400.0)


def _error(expr: str, why: str) -> InvalidInputError:
    return InvalidInputError.for_field(
        "schedule", f"a cron expression 'minute hour day month weekday' ({why})", expr
    )


def _value(text: str, low: int, names: list[str], expr: str, what: str) -> int:
    t = text.lower()
    if names and t in names:
        return names.index(t) + low
    if not t.isdigit():
        raise _error(expr, f"{what}: {text!r} is not a number")
    return int(t)


def _parse_field(
    text: str, what: str, low: int, high: int, names: list[str], expr: str
) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise _error(expr, f"{what}: empty list item")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise _error(expr, f"{what}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            a, b = low, high
        elif "-" in base:
            left, _, right = base.partition("-")
            a = _value(left, low, names, expr, what)
            b = _value(right, low, names, expr, what)
        else:
            a = _value(base, low, names, expr, what)
            b = high if step_text else a
        if not (low <= a <= high and low <= b <= high) or a > b:
            raise _error(expr, f"{what}: {part!r} outside {low}-{high}")
        out.update(range(a, b + 1, step))
    return out


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression; :meth:`matches` a minute, :meth:`next_after` finds one."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool
    #: ``@every``: seconds between firings (the calendar fields then match every minute)
    every: float | None = None

    @classmethod
    def parse(cls, expression: object) -> CronSchedule:
        if not isinstance(expression, str) or not expression.strip() or len(expression) > 200:
            raise InvalidInputError.for_field(
                "schedule", "a cron expression such as '0 3 * * *'", expression
            )
        expr = expression.strip()
        if expr.lower().startswith("@every"):
            return cls._every(expr)
        text = _NICKNAMES.get(expr.lower(), expr)
        parts = text.split()
        if len(parts) != 5:
            raise _error(expr, f"5 fields, got {len(parts)}")
        sets = [
            _parse_field(p, what, lo, hi, names, expr)
            for p, (what, lo, hi, names) in zip(parts, _FIELDS, strict=True)
        ]
        weekdays = {0 if d == 7 else d for d in sets[4]}
        return cls(
            expression=expr,
            minutes=frozenset(sets[0]),
            hours=frozenset(sets[1]),
            days=frozenset(sets[2]),
            months=frozenset(sets[3]),
            weekdays=frozenset(weekdays),
            any_day=parts[2].startswith("*"),
            any_weekday=parts[4].startswith("*"),
        )

    @classmethod
    def _every(cls, expr: str) -> CronSchedule:
        m = _EVERY.fullmatch(expr)
        low, high = _EVERY_RANGE
        seconds = float(m[1]) * _EVERY_UNITS[m[2].lower()] if m else None
        if seconds is None or not low <= seconds <= high:
            raise InvalidInputError.for_field(
                "schedule", "'@every DURATION' with a duration from 1s to 366d (30s, 15m, 2h)", expr
            )
        return cls(
            expression=expr,
            minutes=frozenset(range(60)),
            hours=frozenset(range(24)),
            days=frozenset(range(1, 32)),
            months=frozenset(range(1, 13)),
            weekdays=frozenset(range(7)),
            any_day=True,
            any_weekday=True,
            every=seconds,
        )

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def matches(self, t: datetime) -> bool:
        """Whether the minute of ``t`` (UTC) is one of the schedule's."""
        t = t.astimezone(UTC)
        return (
            t.minute in self.minutes
            and t.hour in self.hours
            and t.month in self.months
            and self._day_matches(t)
        )

    def next_after(self, t: datetime) -> datetime | None:
        """The first matching minute strictly after ``t`` (UTC), or None if none comes
        within five years (a date that never exists, such as 31 February). For ``@every``:
        ``t`` plus the interval."""
        if self.every is not None:
            return t.astimezone(UTC) + timedelta(seconds=self.every)
        t = t.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = t + _HORIZON
        while t < end:
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            return t
        return None

    def due(self, last: datetime | None, now: datetime) -> bool:
        """Whether a run is due at ``now``: a scheduled minute passed since ``last`` (or,
        never run, ``now`` is itself a scheduled minute). ``@every``: the interval passed
        since ``last`` (never run: due at once)."""
        if last is None:
            return self.matches(now)
        nxt = self.next_after(last)
        return nxt is not None and nxt <= now


def parse_cron(expression: object) -> CronSchedule:
    return CronSchedule.parse(expression)
