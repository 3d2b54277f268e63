"""National-only dial patterns (sql/056): the defaults per country, the migration that
tightens tenants still on the old any-number default (and logs it), the audit trail."""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ccd.ivr.phone import PLANS
from ccd.services.dialing import FAR, NATIONAL_SAMPLES, PREMIUM, SHORT, describe
from ccd.store import migrate

OLD_DEFAULT = ["^[0-9]{3,6}$", "^\\+?[1-9][0-9]{6,14}$"]  # sql/020


def q(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def national(url: str, country: str) -> list[str]:
    return q(url, "SELECT ccd_national_dial_patterns(%s)", (country,))[0][0]


def test_every_country_gets_its_national_numbers_and_nothing_premium(db_url: str) -> None:
    assert set(NATIONAL_SAMPLES) == set(PLANS)  # a sample for every number plan
    for country, plan in PLANS.items():
        pats = national(db_url, country)
        assert pats, country
        a = describe(pats, country)
        assert a.national, country
        assert a.premium == [] and a.far == [] and a.short == [], (country, a)
        assert a.countries == [] and not a.wider_than_national, a  # own country code only
        assert all(PLANS[c].country_code == plan.country_code for c in a.same_code), a
        assert all(p.startswith(f"^\\+{plan.country_code}") for p in pats)
        # PostgreSQL keeps them as written (one definition, read by Python's re)
        for p in pats:
            re.compile(p)
    # the premium-rate samples are what the national patterns of their country refuse
    us = national(db_url, "US")
    for number in ("+19005550123", "+12129765555", "+18765550123", "+442079460000"):
        assert not any(re.fullmatch(p, number) for p in us), number
    for number in ("+18005550123", "+15550100001", "+12025550143"):  # 1-800 is free
        assert any(re.fullmatch(p, number) for p in us), number
    assert national(db_url, "ZZ") == [] and national(db_url, "us") == us


def test_new_tenants_get_their_countrys_patterns_and_follow_a_country_change(
        db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        cn = conn.execute("INSERT INTO tenants (slug, name, default_country) VALUES "
                          "('acme', 'Acme', 'CN') RETURNING id, dial_patterns").fetchone()
        own = conn.execute("INSERT INTO tenants (slug, name, dial_patterns) VALUES "
                           "('own', 'Own', ARRAY['^\\+15550100[0-9]{3}$']) RETURNING id"
                           ).fetchone()
        assert cn is not None and own is not None
        conn.execute("UPDATE tenants SET default_country = 'GB' WHERE id IN (%s, %s)",
                     (cn[0], own[0]))
    assert cn[1] == national(db_url, "CN")
    assert q(db_url, "SELECT slug, dial_patterns FROM tenants WHERE id IN (%s, %s) ORDER BY id",
             (cn[0], own[0])) == [("acme", national(db_url, "GB")),
                                  ("own", ["^\\+15550100[0-9]{3}$"])]
    changes = q(db_url, "SELECT t.slug, c.old, c.new, c.reason FROM dial_pattern_changes c "
                        "JOIN tenants t ON t.id = c.tenant_id WHERE t.slug <> 'default' "
                        "ORDER BY c.id")
    assert [(s, r) for s, _, _, r in changes] == [
        ("acme", "new tenant"), ("own", "new tenant"),
        ("acme", "changed directly in the database")]
    assert changes[2][1:3] == (national(db_url, "CN"), national(db_url, "GB"))


def test_migration_tightens_the_old_default_and_logs_it(
        make_db: Callable[..., str], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    full = migrate.sql_dir()
    before = tmp_path / "sql"
    before.mkdir()
    for f in full.glob("*.sql"):
        if int(f.name[:3]) < 56:
            shutil.copy(f, before / f.name)
    url = make_db(migrate=False)
    migrate.upgrade(url, before)
    with psycopg.connect(url) as conn:  # tenants as sql/020 left them
        conn.execute("INSERT INTO tenants (slug, name, default_country) VALUES "
                     "('acme', 'Acme', 'GB'), ('mars', 'Mars', 'ZZ')")
        conn.execute("INSERT INTO tenants (slug, name, dial_patterns) VALUES ('custom', 'C', "
                     "ARRAY['^[0-9]{3,6}$', '^\\+?[1-9][0-9]{6,14}$', '^\\+33[1-9][0-9]{8}$']),"
                     " ('chosen', 'Ch', ARRAY['^\\+1555[0-9]{7}$'])")
    assert q(url, "SELECT dial_patterns FROM tenants WHERE slug = 'default'") == [(OLD_DEFAULT,)]
    with caplog.at_level(logging.WARNING):
        migrate.upgrade(url, full)
    got = dict(q(url, "SELECT slug, dial_patterns FROM tenants"))
    us, gb = national(url, "US"), national(url, "GB")
    assert got == {"default": us, "acme": gb, "mars": [],
                   "custom": [*us, "^\\+33[1-9][0-9]{8}$"],  # what an admin added is kept
                   "chosen": ["^\\+1555[0-9]{7}$"]}  # never on the old default: untouched
    for slug, pats in got.items():
        assert not describe(pats, "US").short and \
            not any(p in OLD_DEFAULT for p in pats), slug
    audit = q(url, "SELECT t.slug, c.old, c.new, c.actor, c.reason FROM dial_pattern_changes c"
                   " JOIN tenants t ON t.id = c.tenant_id ORDER BY t.slug")
    assert [(s, o, n) for s, o, n, _, _ in audit] == [
        ("acme", OLD_DEFAULT, gb), ("custom", [*OLD_DEFAULT, "^\\+33[1-9][0-9]{8}$"],
                                    got["custom"]),
        ("default", OLD_DEFAULT, us), ("mars", OLD_DEFAULT, [])]
    assert {a for *_, a, _ in audit} == {"migration 056_dial_patterns"}
    assert all("national-only" in r for *_, r in audit)
    logged = [r.getMessage() for r in caplog.records]
    assert any("tenant acme: dial patterns tightened" in m for m in logged)
    assert any("tenant mars" in m and "can dial no number" in m for m in logged)


def test_probes_are_what_they_say() -> None:
    """The sample numbers describe() tries are E.164 numbers of the kind they name."""
    e164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
    for n in [*NATIONAL_SAMPLES.values(), *(n for n, _ in PREMIUM), *(n for n, _ in FAR)]:
        assert e164.fullmatch(n), n
    assert all(not e164.fullmatch(s) for s in SHORT)
    wide = describe(["^\\+[1-9][0-9]{7,14}$"], "US")
    assert wide.wider_than_national and len(wide.premium) == len(PREMIUM) and \
        len(wide.far) == len(FAR) and set(wide.countries) == set(NATIONAL_SAMPLES) - {"US", "CA"}
    old = describe(OLD_DEFAULT, "US")
    assert old.short == SHORT and len(old.premium) == len(PREMIUM)
    assert describe([], "US").lines() == ["allows no number at all (click-to-dial, transfers "
                                          "to numbers and campaigns are refused)"]
