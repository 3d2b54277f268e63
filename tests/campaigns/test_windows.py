"""Calling windows in the contact's time zone (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ccd.campaigns.windows import (
    Window,
    WindowError,
    clip,
    is_open,
    next_open,
    parse_window,
    parse_windows,
)


def at(tz: str, *args: int) -> float:
    return datetime(*args, tzinfo=ZoneInfo(tz)).timestamp()


def test_parse_days_and_spans() -> None:
    w = parse_window("mon-fri 09:00-20:00")
    assert w == Window(frozenset(range(5)), 540, 1200)
    assert str(w) == "weekdays 09:00-20:00"
    assert parse_window("sat,sun 10:00-14:30").days == frozenset({5, 6})
    assert parse_window("fri-mon 08:00-24:00").days == frozenset({4, 5, 6, 0})
    assert parse_window("daily 08:00-21:00").end == 1260
    for bad in ("mon 20:00-09:00", "funday 09:00-10:00", "mon-fri", "mon 9-10", "mon 25:00-26:00"):
        with pytest.raises(WindowError):
            parse_window(bad)
    with pytest.raises(WindowError):
        parse_windows([])


def test_clip_to_legal_hours() -> None:
    ws = parse_windows(["mon-fri 07:00-22:00", "sun 05:00-07:30"])
    assert clip(ws) == [Window(frozenset(range(5)), 480, 1260)]


def test_open_in_the_contacts_zone() -> None:
    ws = parse_windows(["mon-fri 09:00-20:00"])
    # Monday 2030-01-07 15:00 UTC = 10:00 in New York, 00:00 Tuesday in Tokyo
    now = datetime(2030, 1, 7, 15, 0, tzinfo=UTC).timestamp()
    assert is_open(ws, now, "America/New_York")
    assert not is_open(ws, now, "Asia/Tokyo")
    assert next_open(ws, now, "America/New_York") == now
    assert next_open(ws, now, "Asia/Tokyo") == at("Asia/Tokyo", 2030, 1, 8, 9, 0)
    # end of the window is exclusive: 20:00 New York -> next day 09:00
    evening = at("America/New_York", 2030, 1, 7, 20, 0)
    assert not is_open(ws, evening, "America/New_York")
    assert next_open(ws, evening, "America/New_York") == at("America/New_York", 2030, 1, 8, 9, 0)


def test_weekend_and_horizon() -> None:
    ws = parse_windows(["mon-fri 09:00-20:00"])
    friday_night = at("Europe/London", 2030, 1, 11, 21, 0)
    assert next_open(ws, friday_night, "Europe/London") == at("Europe/London", 2030, 1, 14, 9, 0)
    only_sunday = parse_windows(["sun 10:00-11:00"])
    monday = at("UTC", 2030, 1, 7, 12, 0)
    assert next_open(only_sunday, monday, "UTC", horizon_days=3) is None
    assert next_open(only_sunday, monday, "UTC") == at("UTC", 2030, 1, 13, 10, 0)


def test_daylight_saving_keeps_local_time() -> None:
    ws = parse_windows(["daily 09:00-10:00"])
    # New York springs forward on 2030-03-10: 09:00 local is 13:00 UTC, not 14:00
    before = at("America/New_York", 2030, 3, 9, 12, 0)
    opens = next_open(ws, before, "America/New_York")
    assert opens == datetime(2030, 3, 10, 13, 0, tzinfo=UTC).timestamp()


def test_unknown_zone() -> None:
    with pytest.raises(WindowError, match="unknown time zone"):
        is_open(parse_windows(["daily 09:00-10:00"]), 0.0, "Mars/Olympus")
