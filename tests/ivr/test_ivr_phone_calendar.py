"""Caller-ID normalisation, digit checks and business-hours calendars."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from ccd.ivr.calendar import build
from ccd.ivr.checks import luhn_complete, luhn_ok
from ccd.ivr.phone import to_e164


@pytest.mark.parametrize(("raw", "country", "e164"), [
    ("5557770001", "US", "+15557770001"),
    ("15557770001", "US", "+15557770001"),
    ("+1 (555) 777-0001", "US", "+15557770001"),
    ("011 86 138 0013 8000", "US", "+8613800138000"),
    ("13800138000", "CN", "+8613800138000"),
    ("013800138000", "CN", "+8613800138000"),
    ("010-12345678", "CN", "+861012345678"),
    ("008613800138000", "CN", "+8613800138000"),
    ("8613800138000", "CN", "+8613800138000"),
    ("020 7946 0000", "GB", "+442079460000"),
    ("+442079460000", "CN", "+442079460000"),
    ("anonymous", "US", None),
    ("unknown", "CN", None),
    ("", "US", None),
    (None, "US", None),
    ("123", "US", None),
    ("+0123456789", "US", None),
    ("+1234567890123456", "US", None),
])
def test_to_e164(raw: str | None, country: str, e164: str | None) -> None:
    assert to_e164(raw, country) == e164


def test_unknown_country_is_named() -> None:
    with pytest.raises(KeyError, match="'XX'"):
        to_e164("12345678", "XX")


def test_luhn() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")
    assert not luhn_ok("7992739871a") and not luhn_ok("7")
    assert luhn_ok(luhn_complete("4000123412341"))


def test_calendar_states_across_a_dst_change() -> None:
    cal = build("America/New_York", {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu",
                                                                  "fri")},
                holidays=[date(2026, 11, 26)], special={date(2026, 12, 24): ["09:00-12:00"]})
    # 09:30 local is 13:30 UTC in summer time and 14:30 UTC in winter time
    assert cal.state(datetime(2026, 10, 30, 13, 30, tzinfo=UTC)) == "open"   # EDT Friday
    assert cal.state(datetime(2026, 11, 2, 13, 30, tzinfo=UTC)) == "closed"  # EST Monday 08:30
    assert cal.state(datetime(2026, 11, 2, 14, 30, tzinfo=UTC)) == "open"
    assert cal.state(datetime(2026, 11, 26, 15, 0, tzinfo=UTC)) == "holiday"  # Thanksgiving
    assert cal.state(datetime(2026, 12, 24, 15, 0, tzinfo=UTC)) == "open"     # 10:00
    assert cal.state(datetime(2026, 12, 24, 18, 0, tzinfo=UTC)) == "holiday"  # 13:00
    assert cal.state(datetime(2026, 11, 28, 15, 0, tzinfo=UTC)) == "closed"   # Saturday


def test_calendar_end_of_day_and_errors() -> None:
    cal = build("UTC", {"sun": ["20:00-24:00"]})
    assert cal.state(datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)) == "open"
    with pytest.raises(ValueError, match="aware"):
        cal.state(datetime(2026, 11, 29, 23, 0))
    with pytest.raises(ValueError, match="unknown weekday"):
        build("UTC", {"funday": ["09:00-10:00"]})
    with pytest.raises(ValueError, match="bad opening range"):
        build("UTC", {"mon": ["9-10"]})
