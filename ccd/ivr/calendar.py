"""Business hours and holidays in a tenant's time zone.

A :class:`Calendar` holds weekly opening ranges, closed holidays and special days with
their own hours. ``state(now)`` answers ``open``, ``closed`` or ``holiday`` for an aware
``datetime`` (the clock is always passed in, so tests fix it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
State = Literal["open", "closed", "holiday"]
#: "24:00" closes at the end of the day
END_OF_DAY = time(23, 59, 59, 999999)


def zone(name: str) -> ZoneInfo:
    """ZoneInfo for ``name``; ValueError names an unknown zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_range(text: str) -> tuple[time, time]:
    """``"09:00-18:00"`` -> (09:00, 18:00); ``24:00`` is allowed as an end."""
    try:
        a, b = (p.strip() for p in text.split("-"))
        start = time.fromisoformat(a)
        end = END_OF_DAY if b == "24:00" else time.fromisoformat(b)
    except ValueError:
        raise ValueError(f"bad opening range {text!r} (want HH:MM-HH:MM)") from None
    if not start < end:
        raise ValueError(f"opening range {text!r} ends before it starts "
                         "(split ranges that pass midnight)")
    return start, end


Ranges = tuple[tuple[time, time], ...]


@dataclass(frozen=True, slots=True)
class Calendar:
    """Weekly hours (index 0 = Monday) plus holidays and special days, in ``timezone``."""

    timezone: str
    weekly: tuple[Ranges, ...] = field(default_factory=lambda: ((),) * 7)
    holidays: frozenset[date] = frozenset()
    special: Mapping[date, Ranges] = field(default_factory=dict)

    def state(self, now: datetime) -> State:
        """Open, closed, or holiday (a holiday, or a special day outside its hours)."""
        if now.tzinfo is None:
            raise ValueError("Calendar.state needs an aware datetime")
        local = now.astimezone(zone(self.timezone))
        day, t = local.date(), local.time()
        if day in self.special:
            return "open" if _within(self.special[day], t) else "holiday"
        if day in self.holidays:
            return "holiday"
        return "open" if _within(self.weekly[local.weekday()], t) else "closed"

    def with_overrides(self, *, timezone: str | None = None,
                       weekly: tuple[Ranges, ...] | None = None,
                       holidays: Iterable[date] = (),
                       special: Mapping[date, Ranges] | None = None) -> Calendar:
        """A copy with the tenant's own zone/hours and extra holidays/special days."""
        return Calendar(
            timezone=timezone or self.timezone,
            weekly=weekly if weekly is not None else self.weekly,
            holidays=self.holidays | frozenset(holidays),
            special={**self.special, **(special or {})},
        )


def _within(ranges: Ranges, t: time) -> bool:
    return any(start <= t < end or (end == END_OF_DAY and t >= start) for start, end in ranges)


def build(timezone: str, hours: Mapping[str, Iterable[str]],
          holidays: Iterable[date] = (),
          special: Mapping[date, Iterable[str]] | None = None) -> Calendar:
    """A calendar from text ranges: ``build("Asia/Shanghai", {"mon": ["09:00-18:00"]})``."""
    zone(timezone)
    weekly = []
    for name in WEEKDAYS:
        weekly.append(tuple(sorted(parse_range(r) for r in hours.get(name, ()))))
    unknown = set(hours) - set(WEEKDAYS)
    if unknown:
        raise ValueError(f"unknown weekday(s) {', '.join(sorted(unknown))} (use mon..sun)")
    spec = {d: tuple(parse_range(r) for r in rs) for d, rs in (special or {}).items()}
    return Calendar(timezone, tuple(weekly), frozenset(holidays), spec)
