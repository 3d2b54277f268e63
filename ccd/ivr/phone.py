"""Caller-ID normalisation to E.164 (``+<country code><national number>``).

Enough to match the numbers a trunk delivers against ``customer_phones.e164``; it does
not validate number plans (that is what the ``phonenumbers`` library is for, and a
lookup only needs both sides written the same way). Rules, for a default country:

* ``+8613800138000``, ``008613800138000``, ``01186...`` (the country's international
  prefix) -> kept / prefix replaced by ``+``;
* a national number with the trunk prefix (``013800138000`` in CN, ``1 555 777 0001`` in
  the US) -> the prefix is dropped and the country code added;
* a national number without it (``5557770001``) -> the country code is added;
* spaces, dashes, dots and parentheses are ignored; ``anonymous``, ``unknown``, empty, or
  anything with letters gives ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NumberPlan:
    """What a country's dialling looks like from inside it."""

    country_code: str
    trunk_prefix: str  # dialled before national numbers ('0'; '1' in NANP; '' for none)
    international: tuple[str, ...]  # prefixes that start an international number
    national_length: tuple[int, int]  # shortest and longest national significant number


NANP = NumberPlan("1", "1", ("011",), (10, 10))

#: ISO 3166 alpha-2 -> plan. Add a country when a tenant needs it.
PLANS: dict[str, NumberPlan] = {
    "US": NANP,
    "CA": NANP,
    "CN": NumberPlan("86", "0", ("00",), (7, 11)),
    "HK": NumberPlan("852", "", ("001", "002", "00"), (8, 8)),
    "TW": NumberPlan("886", "0", ("002", "00"), (8, 9)),
    "SG": NumberPlan("65", "", ("000", "001", "002"), (8, 8)),
    "JP": NumberPlan("81", "0", ("010",), (9, 10)),
    "KR": NumberPlan("82", "0", ("001", "002", "00700"), (8, 10)),
    "IN": NumberPlan("91", "0", ("00",), (10, 10)),
    "AU": NumberPlan("61", "0", ("0011",), (9, 9)),
    "GB": NumberPlan("44", "0", ("00",), (9, 10)),
    "DE": NumberPlan("49", "0", ("00",), (6, 13)),
    "FR": NumberPlan("33", "0", ("00",), (9, 9)),
    "ES": NumberPlan("34", "", ("00",), (9, 9)),
    "IT": NumberPlan("39", "", ("00",), (6, 11)),
    "NL": NumberPlan("31", "0", ("00",), (9, 9)),
    "BR": NumberPlan("55", "0", ("00",), (10, 11)),
    "MX": NumberPlan("52", "", ("00",), (10, 10)),
}

_IGNORED = str.maketrans("", "", " -.()/\t")


def plan_for(country: str) -> NumberPlan:
    """The plan of ``country`` (ISO alpha-2); KeyError names the unknown country."""
    try:
        return PLANS[country.upper()]
    except KeyError:
        raise KeyError(f"no number plan for country {country!r} (known: "
                       f"{', '.join(sorted(PLANS))})") from None


def to_e164(raw: str | None, default_country: str = "US") -> str | None:
    """``raw`` caller ID as E.164, or None when it is not a usable number."""
    if not raw:
        return None
    s = raw.strip().translate(_IGNORED)
    if not s:
        return None
    plus = s.startswith("+")
    digits = s[1:] if plus else s
    if not digits.isdigit():
        return None
    if plus:
        return _sane("+" + digits)
    plan = plan_for(default_country)
    for prefix in sorted(plan.international, key=len, reverse=True):
        if digits.startswith(prefix) and len(digits) > len(prefix) + 6:
            return _sane("+" + digits[len(prefix):])
    lo, hi = plan.national_length
    if plan.trunk_prefix and digits.startswith(plan.trunk_prefix):
        rest = digits[len(plan.trunk_prefix):]
        if lo <= len(rest) <= hi:
            return _sane("+" + plan.country_code + rest)
    if lo <= len(digits) <= hi:
        return _sane("+" + plan.country_code + digits)
    if digits.startswith(plan.country_code) and lo <= len(digits) - len(plan.country_code) <= hi:
        return _sane("+" + digits)
    return None


def _sane(e164: str) -> str | None:
    """E.164 allows at most 15 digits; fewer than 8 is not a public number."""
    n = len(e164) - 1
    return e164 if 8 <= n <= 15 and e164[1] != "0" else None
