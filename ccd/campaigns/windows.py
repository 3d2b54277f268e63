"""Calling windows: when a contact may be called, in the contact's own time zone.

Pure functions; the time comes in as epoch seconds. A window is a set of weekdays and a
span of local wall-clock time (``mon-fri 09:00-20:00``). A campaign's windows are always
intersected with the legal calling hours (the US Telemarketing Sales Rule allows 8 a.m. to
9 p.m. at the called person's location; :data:`LEGAL_HOURS`).

Daylight-saving changes are handled by building each candidate start as a local time in
the contact's zone and converting it, so "09:00" means 09:00 on both sides of a change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_SETS = {"daily": tuple(range(7)), "weekdays": tuple(range(5)), "weekends": (5, 6)}
#: 08:00-21:00 local time of the called person (16 CFR 310.4(c))
LEGAL_HOURS = (8 * 60, 21 * 60)

_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


class WindowError(ValueError):
    """A calling window or time zone that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Window:
    """Weekdays (0 = Monday) and local minutes since midnight ``[start, end)``."""

    days: frozenset[int]
    start: int
    end: int

    def __str__(self) -> str:
        return f"{_days_text(self.days)} {_hm(self.start)}-{_hm(self.end)}"


def _hm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _days_text(days: frozenset[int]) -> str:
    for name, ds in DAY_SETS.items():
        if days == frozenset(ds):
            return name
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def _day(name: str) -> int:
    try:
        return DAY_NAMES.index(name[:3].lower())
    except ValueError:
        raise WindowError(f"unknown weekday {name!r} (use mon..sun)") from None


def _days(spec: str) -> frozenset[int]:
    spec = spec.strip().lower()
    if spec in DAY_SETS:
        return frozenset(DAY_SETS[spec])
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            a, b = (_day(x.strip()) for x in part.split("-", 1))
            d = a
            while True:
                out.add(d)
                if d == b:
                    break
                d = (d + 1) % 7
        elif part:
            out.add(_day(part))
    if not out:
        raise WindowError(f"no weekday in {spec!r}")
    return frozenset(out)


def parse_span(text: str) -> tuple[int, int]:
    """``"09:00-20:00"`` -> (540, 1200); the end may be 24:00."""
    m = _SPAN.match(text.strip())
    if not m:
        raise WindowError(f"{text!r} is not a time span like 09:00-20:00")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60 or start >= end:
        raise WindowError(f"{text!r}: the start must be before the end, within one day")
    return start, end


def parse_window(text: str) -> Window:
    """``"mon-fri 09:00-20:00"``, ``"sat,sun 10:00-14:00"``, ``"daily 09:00-21:00"``."""
    parts = text.split()
    if len(parts) != 2:
        raise WindowError(f"{text!r} is not a window like 'mon-fri 09:00-20:00'")
    start, end = parse_span(parts[1])
    return Window(_days(parts[0]), start, end)


def parse_windows(texts: Iterable[str]) -> list[Window]:
    out = [parse_window(t) for t in texts]
    if not out:
        raise WindowError("a campaign needs at least one calling window")
    return out


def clip(windows: Sequence[Window], legal: tuple[int, int] = LEGAL_HOURS) -> list[Window]:
    """The windows intersected with the legal hours (empty ones dropped)."""
    out = []
    for w in windows:
        s, e = max(w.start, legal[0]), min(w.end, legal[1])
        if s < e:
            out.append(Window(w.days, s, e))
    return out


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`WindowError` if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise WindowError(f"unknown time zone {name!r}") from None


def _local_ts(day: date, minutes: int, tz: ZoneInfo) -> float:
    base = datetime(day.year, day.month, day.day, tzinfo=tz)
    if minutes >= 24 * 60:
        nxt = day + timedelta(days=1)
        return datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()
    return base.replace(hour=minutes // 60, minute=minutes % 60).timestamp()


def is_open(windows: Sequence[Window], now: float, tz_name: str) -> bool:
    """True when ``now`` (epoch) falls in one of the windows, in zone ``tz_name``."""
    tz = zone(tz_name)
    local = datetime.fromtimestamp(now, tz)
    minute = local.hour * 60 + local.minute
    wd = local.weekday()
    return any(wd in w.days and w.start <= minute < w.end for w in windows)


def next_open(windows: Sequence[Window], now: float, tz_name: str,
              horizon_days: int = 14) -> float | None:
    """The first epoch >= ``now`` inside a window (``now`` itself when open), or None
    when no window opens within ``horizon_days``."""
    if not windows:
        return None
    if is_open(windows, now, tz_name):
        return now
    tz = zone(tz_name)
    today = datetime.fromtimestamp(now, tz).date()
    best: float | None = None
    for offset in range(horizon_days + 1):
        day = today + timedelta(days=offset)
        for w in windows:
            if day.weekday() not in w.days:
                continue
            start, end = _local_ts(day, w.start, tz), _local_ts(day, w.end, tz)
            if end <= now:
                continue
            cand = max(start, now)
            if best is None or cand < best:
                best = cand
        if best is not None:
            return best
    return None
