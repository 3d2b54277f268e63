"""Closed hours, holidays, voicemail and callbacks on the real PBX (real-3/F2a, F2b)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from conftest import Rig
from real_rig import wait_for
from scenarios import dial_in


@pytest.fixture
def closed(r: Rig) -> Iterator[Rig]:
    """The support calendar closed all week (restored after); ccd reads hours per call."""
    r.ccd.rows("DELETE FROM business_hours WHERE calendar = 'support' RETURNING tenant_id")
    t = r.ccd.row("SELECT id FROM tenants WHERE slug = 'demo'")["id"]
    r.ccd.rows("INSERT INTO business_hours (tenant_id, calendar, weekday, opens, closes) "
               "VALUES (%s, 'support', 0, '00:00', '00:01') RETURNING tenant_id", t)
    try:
        yield r
    finally:
        r.ccd.rows("DELETE FROM business_hours WHERE calendar = 'support' RETURNING tenant_id")
        for weekday in range(7):
            r.ccd.rows("INSERT INTO business_hours (tenant_id, calendar, weekday, opens, "
                       "closes) VALUES (%s, 'support', %s, '00:00', '24:00') "
                       "RETURNING tenant_id", t, weekday)


def test_closed_hours_callback_then_the_ivr_hangs_up(closed: Rig) -> None:
    r = closed
    r.ccd.rows("DELETE FROM callback_requests RETURNING id")
    call = dial_in(r, digits="")
    time.sleep(3.5)  # "we are closed" + "1 = call me back"
    call.caller.dtmf("1")
    call.caller.wait("CALL_CLOSED", timeout=30)  # the IVR's goodbye, then it hangs up
    rec = r.ccd.ended_call(call.call_id)
    assert rec["hangup_by"] == "ivr", "the IVR ended the call, not the caller (F2a)"
    cb = wait_for(lambda: r.ccd.row("SELECT * FROM callback_requests WHERE e164 = "
                                    "'+15557770001'"), 10, "the callback request")
    assert cb["status"] == "pending" and cb["queue"] == "support"


def test_holiday_voicemail_leaves_a_real_message(r: Rig) -> None:
    t = r.ccd.row("SELECT id FROM tenants WHERE slug = 'demo'")["id"]
    today = dt.datetime.now(dt.UTC).date()
    days = [today - dt.timedelta(days=1), today, today + dt.timedelta(days=1)]
    for d in days:  # whatever the tenant's time zone says "today" is
        r.ccd.rows("INSERT INTO holidays (tenant_id, calendar, day) VALUES (%s, 'support', %s) "
                   "ON CONFLICT DO NOTHING RETURNING tenant_id", t, d)
    box = r.pbx.spool / "voicemail" / "support" / "1000" / "INBOX"
    before = len(list(box.glob("msg*.txt"))) if box.exists() else 0
    try:
        call = dial_in(r, digits="")
        time.sleep(3.5)
        call.caller.dtmf("2")  # leave a message
        time.sleep(7.0)  # "leave your message after the tone", the tone
        time.sleep(5.0)  # the message (the phone's test tone)
        call.caller.hangup()
    finally:
        r.ccd.rows("DELETE FROM holidays WHERE tenant_id = %s RETURNING tenant_id", t)
    rec = r.ccd.ended_call(call.call_id)
    assert rec["record"]["variables"].get("CCD_IVR_RESULT") == "voicemail"
    wait_for(lambda: box.exists() and len(list(box.glob("msg*.txt"))) > before, 10,
             "a message in mailbox 1000@support")
