"""The IVR against real PostgreSQL (a fresh migrated database per test, ``db_url``)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from ccd.ivr.checks import luhn_complete
from ccd.ivr.lookup import PgDirectory
from ccd.sim.agi_client import HANGUP, SUCCESS, ScriptedChannel
from ccd.store.db import with_database

#: Tuesday 2026-11-24 10:00 in Shanghai (the flow's calendar says open)
OPEN = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)

ACCOUNT = luhn_complete("62220200001")


def seed(url: str) -> dict[str, int]:
    """Two tenants; the same mobile number belongs to a customer of each."""
    with psycopg.connect(url, autocommit=True) as c:
        acme = c.execute("INSERT INTO tenants (slug, name, timezone, default_country) VALUES "
                         "('acme', 'Acme', 'Asia/Shanghai', 'CN') RETURNING id").fetchone()[0]
        other = c.execute("INSERT INTO tenants (slug, name) VALUES ('other', 'Other') "
                          "RETURNING id").fetchone()[0]
        c.execute("INSERT INTO dids (number, tenant_id) VALUES ('4008001000', %s), "
                  "('5551000', %s)", (acme, other))
        c.execute("INSERT INTO ivr_routes (number, tenant_id, flow) VALUES "
                  "('4008001000', %s, 'support')", (acme,))
        zhang = c.execute("INSERT INTO customers (tenant_id, name, account_no, vip, language) "
                          "VALUES (%s, '张三', %s, true, 'zh-CN') RETURNING id",
                          (acme, ACCOUNT)).fetchone()[0]
        bob = c.execute("INSERT INTO customers (tenant_id, name, account_no, vip, language) "
                        "VALUES (%s, 'Bob', %s, false, 'en') RETURNING id",
                        (other, ACCOUNT)).fetchone()[0]
        c.execute("INSERT INTO customer_phones (tenant_id, customer_id, e164) VALUES "
                  "(%s, %s, '+8613800138000'), (%s, %s, '+8613800138000')",
                  (acme, zhang, other, bob))
    return {"acme": acme, "other": other, "zhang": zhang, "bob": bob}


@pytest.fixture
async def pool(db_url: str):
    p = AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False)
    await p.open(wait=True)
    yield p
    await p.close()


def rows(url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(url) as c:
        return c.execute(sql, params).fetchall()


async def test_lookup_by_caller_id_within_the_tenant_of_the_did(ivr, db_url, pool) -> None:
    ids = seed(db_url)
    h = await ivr(directory=PgDirectory(pool))
    ch = ScriptedChannel(["3"], callerid="013800138000", dnid="4008001000",
                         uniqueid="1795465300.11")
    assert await h.call(ch) == SUCCESS
    v = ch.variables
    assert (v["CCD_CUSTOMER_ID"], v["CCD_CUSTOMER_NAME"], v["CCD_VIP"]) == \
        (str(ids["zhang"]), "张三", "1")
    assert (v["CCD_LANG"], v["CCD_PRIORITY"]) == ("zh-CN", "10")  # known language, VIP
    assert v["CCD_IVR_PATH"].startswith("identify(found)>language(known:zh-CN)>")
    got = rows(db_url, "SELECT tenant_id, uniqueid, flow, did, caller_e164, customer_id, "
                       "outcome, queue, priority, path->4, path_text FROM ivr_sessions")
    assert got == [(ids["acme"], "1795465300.11", "support", "4008001000", "+8613800138000",
                    ids["zhang"], "queue", "support", 10,
                    {"node": "main", "type": "menu", "input": "3"}, v["CCD_IVR_PATH"])]
    # the same number calling the other tenant's DID finds that tenant's customer
    ch = ScriptedChannel(["3"], callerid="+8613800138000", dnid="5551000")
    await h.call(ch)
    assert (ch.variables["CCD_CUSTOMER_NAME"], ch.variables["CCD_PRIORITY"]) == ("Bob", "0")


async def test_lookup_by_account_number(ivr, db_url, pool) -> None:
    ids = seed(db_url)
    h = await ivr(directory=PgDirectory(pool))
    ch = ScriptedChannel(["2", "1", ACCOUNT + "#"], callerid="13900000000", dnid="4008001000")
    assert await h.call(ch) == SUCCESS
    v = ch.variables
    assert "identify(not_found)" in v["CCD_IVR_PATH"]
    assert "account_lookup(found)>accounts_queue(accounts/10)" in v["CCD_IVR_PATH"]
    assert v["CCD_CUSTOMER_ID"] == str(ids["zhang"])
    # an unknown DID belongs to the default tenant, which has no such account
    ch = ScriptedChannel(["2", "1", ACCOUNT + "#"], dnid="5559999")
    await h.call(ch)
    assert "account_lookup(not_found)" in ch.variables["CCD_IVR_PATH"]
    default = rows(db_url, "SELECT id FROM tenants WHERE slug = 'default'")[0][0]
    assert rows(db_url, "SELECT tenant_id FROM ivr_sessions ORDER BY id")[-1] == (default,)


async def test_tenant_hours_and_holidays_override_the_flow(ivr, db_url, pool) -> None:
    ids = seed(db_url)
    with psycopg.connect(db_url, autocommit=True) as c:
        # acme opens Tuesdays 12:00-24:00 only, and 2026-11-25 is its own holiday
        c.execute("INSERT INTO business_hours (tenant_id, calendar, weekday, opens, closes) "
                  "VALUES (%s, 'support', 1, '12:00', '24:00'), "
                  "(%s, 'support', 2, '09:00', '18:00')", (ids["acme"], ids["acme"]))
        c.execute("INSERT INTO holidays (tenant_id, calendar, day, name) VALUES "
                  "(%s, 'support', '2026-11-25', 'company day')", (ids["acme"],))
    d = PgDirectory(pool)
    for now, state in [(OPEN, "closed"),  # Tue 10:00 Shanghai: the flow says open
                       (datetime(2026, 11, 24, 14, 0, tzinfo=UTC), "open"),     # Tue 22:00
                       (datetime(2026, 11, 25, 3, 0, tzinfo=UTC), "holiday")]:  # Wed 11:00
        h = await ivr(directory=d, now=now)
        ch = ScriptedChannel(["", "", "", ""], callerid="13900000000", dnid="4008001000")
        await h.call(ch)
        assert f"hours({state})" in ch.variables["CCD_IVR_PATH"], now


async def test_callback_request_is_stored_once(ivr, db_url, pool) -> None:
    ids = seed(db_url)
    h = await ivr(directory=PgDirectory(pool), now=datetime(2026, 11, 24, 13, 0, tzinfo=UTC))
    for _ in range(2):
        ch = ScriptedChannel(["2", "1"], callerid="13900000000", dnid="4008001000")
        assert await h.call(ch) == HANGUP
    assert rows(db_url, "SELECT tenant_id, e164, queue, language, status FROM "
                        "callback_requests") == \
        [(ids["acme"], "+8613900000000", "support", "en", "pending")]
    assert [r[0] for r in rows(db_url, "SELECT outcome FROM ivr_sessions")] == \
        ["callback", "callback"]


async def test_database_down_still_queues_the_caller(ivr, db_url) -> None:
    bad = AsyncConnectionPool(with_database(db_url, "no_such_database"),
                              min_size=0, max_size=1, open=False, timeout=0.5)
    await bad.open(wait=False)
    try:
        h = await ivr(directory=PgDirectory(bad, timeout=0.5))
        ch = ScriptedChannel(["2", "3"])
        assert await h.call(ch) == SUCCESS
        assert ch.variables["CCD_QUEUE"] == "support"
        assert ch.variables["CCD_IVR_PATH"].startswith("identify(error)>")
    finally:
        await bad.close()
