"""``ccd tenants dial-patterns``: national-only by default, wider only by an explicit choice
that says what it allows; every change recorded. ``check_number`` against the stored
patterns of a real database (what click-to-dial and transfers to numbers use)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from ccd.api import ApiError
from ccd.cli.main import cli
from ccd.services.dialing import INTERNATIONAL
from ccd.services.directory import Directory, check_number
from ccd.store.db import open_async_pool


def run(db_url: str, tmp_path: Path, *args: str):
    env = {"CCD_DATABASE_URL": db_url, "CCD_DATA_DIR": str(tmp_path), "CCD_CONFIG": ""}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def patterns(db_url: str, slug: str) -> list[str]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT dial_patterns FROM tenants WHERE slug = %s",
                           (slug,)).fetchone()
    assert row is not None
    return list(row[0])


def changes(db_url: str, slug: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT c.actor, c.reason, c.new FROM dial_pattern_changes c JOIN "
                            "tenants t ON t.id = c.tenant_id WHERE t.slug = %s ORDER BY c.id",
                            (slug,)).fetchall()


def test_national_by_default_and_wider_only_by_explicit_choice(db_url: str,
                                                                tmp_path: Path) -> None:
    r = run(db_url, tmp_path, "tenants", "add", "acme", "--name", "Acme", "--country", "US")
    assert r.exit_code == 0, r.output
    assert "dialling: allows national numbers of US (+1)" in r.output
    national = patterns(db_url, "acme")
    shown = json.loads(run(db_url, tmp_path, "tenants", "dial-patterns", "acme",
                           "--json").output)
    assert (shown["national"], shown["premium"], shown["far"], shown["short"]) == \
        (True, [], [], [])
    assert (shown["same_code"], shown["countries"]) == (["CA"], [])
    assert not shown["wider_than_national"]

    # another country's national numbers: named, and said
    r = run(db_url, tmp_path, "tenants", "dial-patterns", "acme", "--allow-country", "gb")
    assert r.exit_code == 0, r.output
    assert "WIDER: allows international calls to GB" in r.output and "premium" not in r.output
    # an own pattern that opens premium numbers needs --confirm, and says what it opens
    r = run(db_url, tmp_path, "tenants", "dial-patterns", "acme", "--add-pattern",
            "^\\+1900[0-9]{7}$")
    assert r.exit_code == 2 and "US 1-900 premium rate" in r.output and "--confirm" in r.output
    assert len(patterns(db_url, "acme")) == 2
    r = run(db_url, tmp_path, "tenants", "dial-patterns", "acme", "--add-pattern",
            "^\\+1900[0-9]{7}$", "--confirm")
    assert r.exit_code == 0 and "WIDER: allows premium-rate" in r.output
    r = run(db_url, tmp_path, "tenants", "dial-patterns", "acme", "--remove-pattern",
            "^\\+1900[0-9]{7}$")
    assert r.exit_code == 0 and "premium" not in r.output
    r = run(db_url, tmp_path, "tenants", "dial-patterns", "acme", "--allow-international")
    assert r.exit_code == 0
    assert INTERNATIONAL in patterns(db_url, "acme")
    assert "satellite" in r.output and "premium-rate" in r.output
    r = run(db_url, tmp_path, "tenants", "dial-patterns", "acme", "--national")
    assert r.exit_code == 0 and patterns(db_url, "acme") == national

    log = changes(db_url, "acme")
    assert [why for _, why, _ in log] == [
        "new tenant", "--allow-country GB: national numbers of GB",
        "--add-pattern ^\\+1900[0-9]{7}$", "--remove-pattern ^\\+1900[0-9]{7}$",
        "--allow-international: every E.164 number, premium-rate and satellite included",
        "--national: national numbers of US"]
    assert all(who.startswith("ccd tenants dial-patterns (") for who, _, _ in log[1:])

    for bad, code, text in ((("--add-pattern", "(["), 2, "not a valid regular expression"),
                            (("--remove-pattern", "^x$"), 2, "has no pattern"),
                            (("--allow-country", "ZZ"), 2, "no number plan")):
        r = run(db_url, tmp_path, "tenants", "dial-patterns", "acme", *bad)
        assert r.exit_code == code and text in r.output, r.output
    assert run(db_url, tmp_path, "tenants", "dial-patterns", "nosuch").exit_code == 4
    assert patterns(db_url, "acme") == national


@pytest.mark.parametrize(("typed", "dialled"), [
    ("5559876543", "+15559876543"), ("1 555 777-0009", "+15557770009"),
    ("+15557770009", "+15557770009"), ("18005550123", "+18005550123")])
async def test_national_numbers_are_dialled_in_e164(db_url: str, typed: str,
                                                    dialled: str) -> None:
    pool = await open_async_pool(db_url, name="test")
    try:
        assert await check_number(Directory(pool), 1, typed) == dialled
    finally:
        await pool.close()


async def test_international_premium_and_short_numbers_are_refused(db_url: str) -> None:
    """The default tenant (US) after sql/056: what the old default let through is refused."""
    pool = await open_async_pool(db_url, name="test")
    try:
        d = Directory(pool, ttl=0)
        for number in ("+442079460000", "011442079460000", "19005550123", "9005550123",
                       "2129765555", "+18765550123", "+881612345678", "118118", "911",
                       "5551234", "09001234"):
            with pytest.raises(ApiError, match="not allowed for this tenant"):
                await check_number(d, 1, number)
        with psycopg.connect(db_url) as conn:  # the explicit choice, as the CLI makes it
            conn.execute("UPDATE tenants SET dial_patterns = dial_patterns || "
                         "ccd_national_dial_patterns('GB') WHERE id = 1")
        assert await check_number(d, 1, "011442079460000") == "+442079460000"
        with pytest.raises(ApiError, match="not allowed"):
            await check_number(d, 1, "+449098790000")  # GB premium rate stays refused
    finally:
        await pool.close()


def test_the_daemon_sees_a_change_within_the_cache_time(db_url: str) -> None:
    async def go() -> None:
        pool = await open_async_pool(db_url, name="test")
        try:
            d = Directory(pool, ttl=0.0)
            with pytest.raises(ApiError):
                await check_number(d, 1, "+33142685300")
            with psycopg.connect(db_url) as conn:
                conn.execute("UPDATE tenants SET dial_patterns = dial_patterns || "
                             "ccd_national_dial_patterns('FR') WHERE id = 1")
            assert await check_number(d, 1, "+33142685300") == "+33142685300"
        finally:
            await pool.close()

    asyncio.run(go())
