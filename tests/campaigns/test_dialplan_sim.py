"""A campaign dials only what Asterisk can run (the real capture F7's camp2: AMD on,
app_amd not loaded, every answered contact hung up 8 ms later): checked before dialling,
after an Asterisk restart, and after a call the PBX dropped - end to end with the simulated
PBX (which hangs up like Asterisk when an application is missing), a ccd daemon and
PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from ccd.campaigns import preflight
from ccd.sim.phones import PhoneProfile

pytestmark = pytest.mark.timeout(120)


def num(i: int) -> str:
    return f"+155501000{i:02d}"


def later(db, contact_id: int, at: float) -> None:
    db.q("UPDATE campaign_contacts SET next_at = %s WHERE id = %s",
         datetime.fromtimestamp(at, UTC), contact_id)


async def test_amd_campaign_does_not_dial_without_app_amd(stack, db, clock, wait_for,
                                                         caplog) -> None:
    caplog.set_level(logging.INFO, "ccd.campaigns")
    stack.sim.engine.modules.unload("app_amd.so")  # as on the F7 rig (no amd.conf)
    tid = db.seed()
    cid = db.campaign(tid, "camp2", amd=True)
    plain = db.campaign(tid, "camp1", queue="outbound3")  # AMD off: not concerned
    ids = db.contacts(tid, cid, [(num(1), None), (num(2), None)])
    db.contacts(tid, plain, [(num(3), None)])
    ccd = await stack.ccd()
    stack.hang_up_answered(ccd)
    await ccd.svc.set_state("camp2", "start")
    await ccd.svc.set_state("camp1", "start")
    await wait_for(lambda: cid in ccd.svc.runners and
                   "AMD (app_amd)" in ccd.svc.runners[cid].note, 10, "the refusal")
    await wait_for(lambda: db.contact(ids[num(1)])["status"] == "pending" and
                   len(db.attempts(plain)) == 1, 10, "camp1 dials")
    await asyncio.sleep(1.0)
    assert db.attempts(cid) == []  # nobody was called
    [st] = await ccd.svc.statuses("camp2")
    assert st["state"] == "running" and st["dialling"] is False
    assert st["note"].startswith("not dialling: Asterisk lacks AMD (app_amd)")
    assert st["dialplan"]["missing"] == ["AMD (app_amd)"] and not st["dialplan"]["ok"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("campaign camp2: not dialling: Asterisk lacks AMD (app_amd)" in m
               for m in errors)
    assert sum("campaign camp2: not dialling" in m for m in errors) == 1  # once, not per tick

    # the operator loads it: at the next check the campaign dials, AMD says HUMAN, an
    # agent takes the call
    assert stack.sim.engine.modules.load("app_amd.so")
    clock.advance(preflight.RECHECK + 1)
    await stack.wake(ccd)
    await wait_for(lambda: db.contact(ids[num(1)])["status"] == "done" and
                   db.contact(ids[num(2)])["status"] == "done", 30, "both contacts called")
    assert [a["outcome"] for a in db.attempts(cid)] == ["answered", "answered"]
    ended = {e.call_id: e.record for e in ccd.events if e.kind == "call_ended"}
    assert ended[db.attempts(cid)[0]["call_id"]].variables["CCD_AMD_STATUS"] == "HUMAN"
    assert any("campaign camp2: Asterisk can run context ccd-campaign again" in
               r.getMessage() for r in caplog.records)


async def test_asterisk_restart_without_app_amd_stops_the_campaign(stack, db, clock,
                                                                   wait_for) -> None:
    tid = db.seed()
    cid = db.campaign(tid, "camp2", amd=True)
    ids = db.contacts(tid, cid, [(num(1), None), (num(2), None)])
    later(db, ids[num(2)], clock() + 600)
    ccd = await stack.ccd()
    stack.hang_up_answered(ccd)
    await ccd.svc.set_state("camp2", "start")
    await wait_for(lambda: db.contact(ids[num(1)])["status"] == "done", 20, "contact 1")
    runner = ccd.svc.runners[cid]
    assert runner.dialplan is not None and runner.dialplan.ok
    # Asterisk restarts and comes back without app_amd (amd.conf gone, say)
    stack.sim.boot_hooks.append(lambda engine: engine.modules.unload("app_amd"))
    connects = ccd.daemon.client.stats.connects
    await stack.sim.restart(0.2)
    await wait_for(lambda: ccd.daemon.client.stats.connects > connects and
                   ccd.daemon.client.connected, 20, "the AMI link back")
    # checked again on the new connection, before contact 2 is due (same campaign clock)
    await wait_for(lambda: "AMD (app_amd)" in runner.note, 10, "the new check")
    clock.advance(601)
    await stack.wake(ccd)
    await asyncio.sleep(1.0)
    assert len(db.attempts(cid)) == 1 and db.contact(ids[num(2)])["status"] == "pending"


@pytest.mark.phones(**{"15550100001": PhoneProfile(answer="auto", answer_delay=10.0),
                       "15550100002": PhoneProfile(answer="auto", answer_delay=10.0)})
async def test_a_call_the_pbx_drops_is_dropped_logged_and_dialling_stops(
        stack, db, clock, wait_for, caplog) -> None:
    """app_amd is unloaded while the contacts' phones ring (after the check passed): both
    answer, Asterisk hangs them up at AMD() - dropped, logged, counted as abandons, and the
    dialplan check runs again before anyone else is called."""
    caplog.set_level(logging.INFO, "ccd.campaigns")
    tid = db.seed()
    cid = db.campaign(tid, "camp2", amd=True)
    ids = db.contacts(tid, cid, [(num(1), None), (num(2), None), (num(3), None)])
    later(db, ids[num(3)], clock() + 30)
    ccd = await stack.ccd()
    await ccd.svc.set_state("camp2", "start")
    await wait_for(lambda: len(db.attempts(cid)) == 2, 10, "two calls ringing")
    assert stack.sim.engine.modules.unload("app_amd")
    await wait_for(lambda: all(a["state"] == "done" for a in db.attempts(cid))
                   and len(db.attempts(cid)) == 2, 20, "both calls ended")
    attempts = db.attempts(cid)
    assert [a["outcome"] for a in attempts] == ["dropped", "dropped"]
    for a in attempts:
        assert a["detail"].startswith("answered, then hung up by Asterisk")
        assert "counted as abandoned" in a["detail"] and a["hangup_cause"] == 0
        contact = db.contact(a["contact_id"])  # retried like an abandon: not within 72 h
        assert contact["next_at"].timestamp() == pytest.approx(
            a["ended_at"].timestamp() + 72 * 3600, abs=0.01)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert sum("answered, then hung up by Asterisk" in m and "checking the dialplan again" in m
               for m in errors) == 2
    runner = ccd.svc.runners[cid]
    await wait_for(lambda: "AMD (app_amd)" in runner.note, 10, "the check after the drop")
    [st] = await ccd.svc.statuses("camp2")
    assert st["abandonment"]["live"] == 2 and st["abandonment"]["abandoned"] == 2
    clock.advance(31)
    await stack.wake(ccd)
    await asyncio.sleep(1.0)
    assert len(db.attempts(cid)) == 2  # contact 3 is due and not called
