"""What a tenant's dial patterns let through, in words (toll-fraud defence).

Dial patterns are regular expressions matched against the number in E.164
(:func:`ccd.services.directory.check_number`). A new tenant gets the national numbers of its
country without the premium-rate ranges (``ccd_national_dial_patterns`` in sql/056); anything
wider is an explicit administrator's choice, and :func:`describe` tells what a set of patterns
allows by trying it on sample numbers: national numbers of every country ccd has a number plan
for, premium-rate and special numbers, satellite networks, short codes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ccd.ivr.phone import PLANS

#: any number in E.164 (+ and 8-15 digits): every country, premium-rate and satellite too
INTERNATIONAL = r"^\+[1-9][0-9]{7,14}$"

#: one ordinary (fixed or mobile) number per country ccd has a number plan for
NATIONAL_SAMPLES: dict[str, str] = {
    "US": "+12025550143", "CA": "+14165550143", "GB": "+442079460000", "DE": "+493012345678",
    "FR": "+33142685300", "ES": "+34912345678", "IT": "+390612345678", "NL": "+31201234567",
    "JP": "+81312345678", "KR": "+8221234567", "CN": "+8613800138000", "HK": "+85221234567",
    "TW": "+886223456789", "SG": "+6561234567", "IN": "+919812345678", "AU": "+61212345678",
    "BR": "+5511912345678", "MX": "+525512345678"}

#: (number, what) of numbers that cost the caller (much) more than a call: premium rate,
#: revenue share, personal numbers, NANP countries billed as international
PREMIUM: list[tuple[str, str]] = [
    ("+19005550123", "US 1-900 premium rate"), ("+12129765555", "US 976 premium exchange"),
    ("+17005550123", "US 1-700 carrier services"),
    ("+18765550123", "Jamaica +1 876 (Caribbean NANP, international rates)"),
    ("+18095550123", "Dominican Republic +1 809 (Caribbean NANP)"),
    ("+449098790000", "UK 09 premium rate"), ("+447012345678", "UK 070 personal number"),
    ("+448712345678", "UK 087 revenue share"), ("+499001234567", "Germany 0900 premium rate"),
    ("+33899123456", "France 089 premium rate"), ("+34806123456", "Spain 806 premium rate"),
    ("+39899123456", "Italy 899 premium rate"), ("+319001234567", "Netherlands 0900 premium"),
    ("+81990123456", "Japan 0990 premium rate"), ("+611900123456", "Australia 1900 premium"),
    ("+529001234567", "Mexico 900 premium rate")]

#: satellite and international networks, and countries known for toll-fraud traffic
FAR: list[tuple[str, str]] = [
    ("+881612345678", "Iridium satellite (+881)"), ("+870772123456", "Inmarsat (+870)"),
    ("+88234567890", "international networks (+882)"), ("+2392212345", "Sao Tome (+239)"),
    ("+5371234567", "Cuba (+53)")]

#: numbers that are not E.164 (sent to the trunk as typed)
SHORT: list[str] = ["112", "911", "1234", "118118"]


@dataclass(slots=True)
class Allowance:
    """What a set of dial patterns allows, for a tenant of ``country``."""

    country: str
    patterns: list[str]
    invalid: list[str] = field(default_factory=list)  # patterns that do not compile
    national: bool = False  # the tenant's own country's ordinary numbers
    #: countries sharing the tenant's country code (NANP: US and CA) whose numbers pass
    same_code: list[str] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)  # other countries' ordinary numbers
    premium: list[str] = field(default_factory=list)
    far: list[str] = field(default_factory=list)
    short: list[str] = field(default_factory=list)

    @property
    def wider_than_national(self) -> bool:
        """Anything beyond the tenant's own national numbers."""
        return bool(self.countries or self.premium or self.far or self.short)

    def lines(self) -> list[str]:
        """What the patterns allow, one statement per line (warnings first word)."""
        out = []
        plan = PLANS.get(self.country)
        if self.national:
            out.append(f"allows national numbers of {self.country} (+{plan.country_code})"
                       if plan else f"allows national numbers of {self.country}")
        if self.same_code and plan:
            out.append(f"allows numbers of {', '.join(self.same_code)} (same country code "
                       f"+{plan.country_code})")
        if self.countries:
            out.append(f"WIDER: allows international calls to {', '.join(self.countries)}")
        if self.premium:
            out.append("WIDER: allows premium-rate / special numbers: " + "; ".join(self.premium))
        if self.far:
            out.append("WIDER: allows satellite / far international numbers: "
                       + "; ".join(self.far))
        if self.short:
            out.append("WIDER: allows short codes sent to the trunk: " + ", ".join(self.short))
        if not out:
            out.append("allows no number at all (click-to-dial, transfers to numbers and "
                       "campaigns are refused)")
        out += [f"ignored (not a valid regular expression): {p}" for p in self.invalid]
        return out

    def to_dict(self) -> dict[str, object]:
        return {"country": self.country, "patterns": self.patterns, "invalid": self.invalid,
                "national": self.national, "same_code": self.same_code,
                "countries": self.countries,
                "premium": self.premium, "far": self.far, "short": self.short,
                "wider_than_national": self.wider_than_national, "allows": self.lines()}


def compile_patterns(patterns: list[str]) -> tuple[list[re.Pattern[str]], list[str]]:
    """The patterns that compile, and those that do not."""
    ok, bad = [], []
    for p in patterns:
        try:
            ok.append(re.compile(p))
        except re.error:
            bad.append(p)
    return ok, bad


def describe(patterns: list[str], country: str) -> Allowance:
    """What ``patterns`` let a tenant of ``country`` dial (sample numbers tried)."""
    compiled, bad = compile_patterns(patterns)

    def allowed(number: str) -> bool:
        return any(p.fullmatch(number) for p in compiled)

    a = Allowance(country.upper(), list(patterns), bad)
    own = NATIONAL_SAMPLES.get(a.country)
    a.national = bool(own and allowed(own))
    plan = PLANS.get(a.country)
    for c, n in NATIONAL_SAMPLES.items():
        if c != a.country and allowed(n):
            same = plan is not None and PLANS[c].country_code == plan.country_code
            (a.same_code if same else a.countries).append(c)
    a.premium = [f"{what} ({n})" for n, what in PREMIUM if allowed(n)]
    a.far = [f"{what} ({n})" for n, what in FAR if allowed(n)]
    a.short = [n for n in SHORT if allowed(n)]
    return a
