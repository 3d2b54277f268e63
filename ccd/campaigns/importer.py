"""Contact list import: CSV rows -> validated contacts and a report of rejected rows.

Pure (no database): the caller passes the numbers already in the campaign and a check of
the tenant's dial patterns. Columns (case-insensitive): a phone column (``phone``,
``number``, ``e164``, ``msisdn``, ``tel``) is required; ``name``, ``timezone`` (IANA),
``language`` and ``country`` (ISO code used to read national numbers of that row) are
optional; every other column is kept as data shown to the agent in preview.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from ccd.campaigns.windows import WindowError, zone
from ccd.ivr.phone import PLANS, to_e164

PHONE_COLUMNS = ("phone", "number", "e164", "msisdn", "tel", "telephone", "mobile")
NAME_COLUMNS = ("name", "full_name", "contact")
TZ_COLUMNS = ("timezone", "tz", "time_zone")
LANG_COLUMNS = ("language", "lang")
COUNTRY_COLUMNS = ("country",)
LANGUAGE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})?$")
MAX_DATA_COLUMNS = 50
MAX_VALUE = 500


class ImportFormatError(ValueError):
    """The file cannot be imported at all (no phone column ...)."""


@dataclass(frozen=True, slots=True)
class ContactRow:
    line: int
    e164: str
    name: str = ""
    timezone: str | None = None
    language: str = ""
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    raw: str
    reason: str


def _pick(header: Iterable[str], names: tuple[str, ...]) -> str | None:
    lowered = {h.strip().lower(): h for h in header if h is not None}
    for n in names:
        if n in lowered:
            return lowered[n]
    return None


def check_header(header: Iterable[str] | None) -> None:
    """Raise :class:`ImportFormatError` unless a phone column is present."""
    if not header or _pick(header, PHONE_COLUMNS) is None:
        raise ImportFormatError("no phone column: the first line must name the columns, one "
                                f"of them {', '.join(PHONE_COLUMNS)}")


def read_contacts(rows: Iterable[Mapping[str, str | None]], header: list[str], *,
                  default_country: str, allowed: Callable[[str], bool],
                  existing: set[str] | None = None,
                  first_line: int = 2) -> Iterator[ContactRow | Rejected]:
    """Validate ``rows`` (``csv.DictReader`` dicts; line numbers start at ``first_line``)."""
    check_header(header)
    phone_col = _pick(header, PHONE_COLUMNS)
    name_col = _pick(header, NAME_COLUMNS)
    tz_col = _pick(header, TZ_COLUMNS)
    lang_col = _pick(header, LANG_COLUMNS)
    country_col = _pick(header, COUNTRY_COLUMNS)
    known = {c for c in (phone_col, name_col, tz_col, lang_col, country_col) if c}
    data_cols = [h for h in header if h and h not in known][:MAX_DATA_COLUMNS]
    seen: dict[str, int] = {}
    existing = existing or set()
    for i, row in enumerate(rows):
        line = first_line + i
        raw = (row.get(phone_col) or "").strip() if phone_col else ""
        if None in row:  # more values than columns
            yield Rejected(line, raw, "more values than columns")
            continue
        if not raw:
            yield Rejected(line, raw, "no phone number")
            continue
        country = default_country
        if country_col and (row.get(country_col) or "").strip():
            country = (row.get(country_col) or "").strip().upper()
            if country not in PLANS:
                yield Rejected(line, raw, f"unknown country {country!r}")
                continue
        e164 = to_e164(raw, country)
        if e164 is None:
            yield Rejected(line, raw, f"not a phone number (read as {country})")
            continue
        if not allowed(e164):
            yield Rejected(line, raw, f"{e164} is not allowed by the tenant's dial patterns")
            continue
        tz = (row.get(tz_col) or "").strip() if tz_col else ""
        if tz:
            try:
                zone(tz)
            except WindowError:
                yield Rejected(line, raw, f"unknown time zone {tz!r}")
                continue
        lang = (row.get(lang_col) or "").strip() if lang_col else ""
        if lang and not LANGUAGE.match(lang):
            yield Rejected(line, raw, f"language {lang!r} is not a code like en or pt-BR")
            continue
        if e164 in seen:
            yield Rejected(line, raw, f"{e164} is a duplicate of line {seen[e164]}")
            continue
        if e164 in existing:
            yield Rejected(line, raw, f"{e164} is already in the campaign")
            continue
        seen[e164] = line
        name = (row.get(name_col) or "").strip()[:200] if name_col else ""
        data = {c.strip(): (row.get(c) or "").strip()[:MAX_VALUE] for c in data_cols
                if (row.get(c) or "").strip()}
        yield ContactRow(line, e164, name, tz or None, lang, data)
