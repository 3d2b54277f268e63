"""The dialer's database side without a PBX: the double-dial guard, the advisory lock,
restart resolution to ``unknown`` and its late correction, scheduled actions on the
controllable clock, statuses."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ccd.api import ApiError
from ccd.campaigns import store
from ccd.campaigns.model import Campaign
from ccd.campaigns.runner import CampaignRunner, Inflight
from ccd.campaigns.service import CampaignService
from ccd.config import Config
from ccd.daemon import Daemon
from ccd.model import domain as d
from ccd.model.live import LiveModel
from ccd.store.db import open_async_pool

pytestmark = pytest.mark.timeout(60)


class NoAmi:
    connected = False


def service_stub(url: str, pool: Any, clock: Any, name: str) -> Any:
    return SimpleNamespace(ami=NoAmi(), model=LiveModel(), pool=pool, clock=clock, url=url,
                           name=name, wrapup=lambda q: 0.0)


def campaign(db: Any, cid: int) -> Campaign:
    return Campaign.from_row(db.q(store.CAMPAIGN_BY_ID, cid)[0])


def test_a_contact_has_one_open_attempt_at_most(db) -> None:
    tid = db.seed()
    cid = db.campaign(tid)
    (ct,) = db.contacts(tid, cid, [("+15550100001", None)]).values()
    ins = ("INSERT INTO campaign_attempts (tenant_id, campaign_id, contact_id, attempt_no, "
           "e164, mode, created_at) VALUES (%s, %s, %s, 1, '+15550100001', 'progressive', now())")
    db.q(ins, tid, cid, ct)
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.q(ins, tid, cid, ct)
    with pytest.raises(psycopg.errors.CheckViolation):
        db.q("UPDATE campaign_attempts SET state = 'done'")  # done needs an outcome
    with pytest.raises(psycopg.errors.CheckViolation):  # FTC: ring at least 15 s
        db.campaign(tid, "short", ring_timeout=10)
    with pytest.raises(psycopg.errors.CheckViolation):  # never above 3 %
        db.campaign(tid, "loose", max_abandon_pct=5)
    with pytest.raises(psycopg.errors.CheckViolation):  # abandoned calls must hear who called
        db.campaign(tid, "silent", dial_mode="predictive", abandon_message="")


async def test_only_one_runner_holds_the_campaign(db, db_url, clock) -> None:
    tid = db.seed()
    cid = db.campaign(tid, state="running")
    pool = await open_async_pool(db_url, max_size=4, name="t")
    try:
        a = CampaignRunner(service_stub(db_url, pool, clock, "a"), campaign(db, cid))
        b = CampaignRunner(service_stub(db_url, pool, clock, "b"), campaign(db, cid))
        await a.step()
        await b.step()
        assert (a.locked, b.locked) == (True, False)
        assert "standby" in b.note and a.note == "waiting for the AMI link"
        locks = db.q("SELECT objid, granted FROM pg_locks WHERE locktype = 'advisory'")
        assert [(r["objid"], r["granted"]) for r in locks] == [(cid, True)]
        await a.close()
        await b.step()
        assert b.locked
        await b.close()
    finally:
        await pool.close()


async def test_open_attempts_after_a_restart(db, db_url, clock, wait_for) -> None:
    tid = db.seed()
    cid = db.campaign(tid, state="running")
    ids = db.contacts(tid, cid, [("+15550100001", None), ("+15550100002", None)])
    old, fresh = ids["+15550100001"], ids["+15550100002"]
    now = datetime.fromtimestamp(clock(), UTC)
    for contact, age in ((old, 600), (fresh, 1)):
        db.q("INSERT INTO campaign_attempts (tenant_id, campaign_id, contact_id, attempt_no, "
             "e164, mode, created_at, state) SELECT %s, %s, id, 1, e164, 'progressive', "
             "%s::timestamptz - make_interval(secs => %s), 'answered' "
             "FROM campaign_contacts WHERE id = %s", tid, cid, now, age, contact)
        db.q("UPDATE campaign_contacts SET status = 'dialing' WHERE id = %s", contact)
    pool = await open_async_pool(db_url, max_size=4, name="t")
    try:
        r = CampaignRunner(service_stub(db_url, pool, clock, "b"), campaign(db, cid))
        await r.step()
        att = {a["contact_id"]: a for a in db.attempts(cid)}
        # the old one cannot be ringing any more and left no trace: unknown, retried later
        assert (att[old]["outcome"], att[old]["state"]) == ("unknown", "done")
        c = db.contact(old)
        assert c["status"] == "pending" and c["next_at"].timestamp() >= clock() + 3500
        # the fresh one may still be ringing: not touched, its contact not dialled
        assert att[fresh]["state"] == "answered" and db.contact(fresh)["status"] == "dialing"
        assert r.status()["in_flight"]["unresolved"] == 1
        # its call ends: followed by its variables, answered by an agent
        rec = d.CallRecord(call_id="1700000000.5", outcome="answered", agent="PJSIP/1001",
                           talk_seconds=42.0, answer=1.0,
                           variables={"CCD_CAMPAIGN": str(cid),
                                      "CCD_ATTEMPT": str(att[fresh]["id"])})
        r.on_event(d.CallEnded(clock(), rec.call_id, "caller", 16, "Normal", 42.0, 50.0, rec))
        # and the unknown one turns out to have been answered too (a late end)
        rec2 = d.CallRecord(call_id="1700000000.1", outcome="answered", agent="PJSIP/1002",
                            talk_seconds=10.0, answer=1.0,
                            segments=[d.Segment("PJSIP/1002", "PJSIP/1002-01", 1.0, 11.0)],
                            variables={"CCD_CAMPAIGN": str(cid),
                                       "CCD_ATTEMPT": str(att[old]["id"])})
        r.on_event(d.CallEnded(clock(), rec2.call_id, "caller", 16, "Normal", 10.0, 12.0, rec2))
        await wait_for(lambda: not r._tasks, 30, "the runner's writes")
        att = {a["contact_id"]: a for a in db.attempts(cid)}
        assert (att[fresh]["outcome"], att[fresh]["agent"], float(att[fresh]["talk_seconds"])) \
            == ("answered", "PJSIP/1001", 42.0)
        assert (att[old]["outcome"], att[old]["call_id"]) == ("answered", "1700000000.1")
        assert "corrected" in att[old]["detail"]
        assert db.contact(old)["status"] == "done" and db.contact(old)["next_at"] is None
        assert db.contact(old)["outcomes"] == {"unknown": 0, "answered": 1}
        assert db.contact(fresh)["status"] == "done"
        await r.close()
    finally:
        await pool.close()


async def test_the_answer_is_stored_whichever_write_lands_first(db, db_url, clock) -> None:
    """The OriginateResponse (answered), the agent's connect and the call's end are written
    by different tasks on different pool connections: on a busy machine they commit in any
    order, and the attempt must still say it was answered (Reason 4, answered_at)."""
    tid = db.seed()
    cid = db.campaign(tid, state="running")
    ids = db.contacts(tid, cid, [("+15550100001", None), ("+15550100002", None)])
    aid = {}
    for e164, contact in ids.items():
        aid[e164] = db.q("INSERT INTO campaign_attempts (tenant_id, campaign_id, contact_id, "
                         "attempt_no, e164, mode, created_at) VALUES (%s, %s, %s, 1, %s, "
                         "'progressive', now()) RETURNING id", tid, cid, contact, e164)[0]["id"]
    now = datetime.fromtimestamp(clock(), UTC)
    first, second = aid["+15550100001"], aid["+15550100002"]
    # the agent's connect lands before the answer
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(store.CONNECTED, {"id": first, "at": now, "agent": "PJSIP/1001",
                                       "call_id": "1.1"})
        conn.execute(store.ANSWERED, {"id": first, "at": now, "call_id": "1.1",
                                      "channel": "Local/x", "ring": 2.0})
    (row,) = db.q("SELECT state, reason, answered_at, connected_at, agent FROM "
                  "campaign_attempts WHERE id = %s", first)
    assert (row["state"], row["reason"], row["agent"]) == ("connected", 4, "PJSIP/1001")
    assert row["answered_at"] is not None and row["connected_at"] is not None
    # the call's end is stored before the answer ever is
    pool = await open_async_pool(db_url, max_size=2, name="t")
    try:
        r = CampaignRunner(service_stub(db_url, pool, clock, "a"), campaign(db, cid))
        f = Inflight(second, ids["+15550100002"], "+15550100002", clock(), "progressive",
                     state="connected", agent="PJSIP/1002")
        r.inflight[second] = f
        rec = d.CallRecord(call_id="1.2", outcome="answered", agent="PJSIP/1002",
                           talk_seconds=5.0, answer=1.0)
        await r._finish(f, "answered", record=rec, detail="call ended")
        await r.close()
    finally:
        await pool.close()
    (row,) = db.q("SELECT state, outcome, reason FROM campaign_attempts WHERE id = %s", second)
    assert (row["state"], row["outcome"], row["reason"]) == ("done", "answered", 4)


async def test_final_status_and_callback_survive_the_outcome(db, db_url, clock) -> None:
    tid = db.seed()
    cid = db.campaign(tid)
    ids = db.contacts(tid, cid, [("+15550100001", None), ("+15550100002", None)])
    c = campaign(db, cid)
    aids = {}
    for e164, contact in ids.items():
        aids[contact] = db.q("INSERT INTO campaign_attempts (tenant_id, campaign_id, "
                             "contact_id, attempt_no, e164, mode, created_at) VALUES "
                             "(%s, %s, %s, 1, %s, 'progressive', now()) RETURNING id",
                             tid, cid, contact, e164)[0]["id"]
    dnc_contact, cb_contact = ids["+15550100001"], ids["+15550100002"]
    db.q("UPDATE campaign_contacts SET status = 'dnc' WHERE id = %s", dnc_contact)
    db.q("UPDATE campaign_attempts SET disposition = 'callback', callback_at = "
         "'2030-02-01T10:00:00Z' WHERE id = %s", aids[cb_contact])
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        p1 = await store.finish_attempt(conn, c, aids[dnc_contact], dnc_contact, "busy", clock())
        p2 = await store.finish_attempt(conn, c, aids[cb_contact], cb_contact, "answered",
                                        clock())
        again = await store.finish_attempt(conn, c, aids[cb_contact], cb_contact, "busy",
                                           clock())
    assert p1 is not None and p1.status == "dnc"
    assert p2 is not None and (p2.status, p2.next_at) == (
        "pending", datetime(2030, 2, 1, 10, tzinfo=UTC).timestamp())
    assert again is None  # finished once only
    assert db.contact(cb_contact)["attempts"] == 1


@pytest.fixture
async def service(db, db_url, clock, tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = Config.model_validate({"data_dir": str(tmp_path)})
    daemon = Daemon(cfg, db_url)
    daemon.pool = await open_async_pool(db_url, max_size=4, name="svc")
    scheduler = AsyncIOScheduler(timezone="UTC")
    svc = CampaignService(cfg, daemon, db_url, scheduler, clock=clock, tick=0.2, name="svc")
    yield svc
    await svc.stop()
    if scheduler.running:
        scheduler.shutdown(wait=False)
    await daemon.pool.close()


async def test_scheduled_start_pause_stop_and_resume(db, clock, service, wait_for) -> None:
    tid = db.seed()
    cid = db.campaign(tid)
    # a start that fell due while ccd was down runs when it starts
    db.q("INSERT INTO campaign_schedule (tenant_id, campaign_id, action, at) VALUES "
         "(%s, %s, 'start', %s)", tid, cid, datetime.fromtimestamp(clock() - 60, UTC))
    svc = service
    await svc.start()
    svc.scheduler.start()
    state = lambda: db.q("SELECT state FROM campaigns WHERE id = %s", cid)[0]["state"]  # noqa: E731
    await wait_for(lambda: state() == "running", 20, "missed start")
    await wait_for(lambda: cid in svc.runners and svc.runners[cid].locked, 20, "runner")
    pause_at = datetime.fromtimestamp(clock() + 3600, UTC).isoformat()
    res = await svc.set_state("spring", "pause", at=pause_at)
    assert res["scheduled"] == "pause" and res["state"] == "running"
    stop_at = datetime.fromtimestamp(clock() + 7200, UTC).replace(tzinfo=None).isoformat()
    await svc.set_state(str(cid), "stop", at=stop_at)  # naive = UTC
    await asyncio.sleep(0.3)
    assert state() == "running"
    clock.advance(3601)
    svc.scheduler.wakeup()
    await wait_for(lambda: state() == "paused", 20, "scheduled pause")
    await wait_for(lambda: svc.runners[cid].state == "paused", 20, "runner paused")
    clock.advance(3600)
    svc.scheduler.wakeup()
    await wait_for(lambda: state() == "stopped", 20, "scheduled stop")
    await wait_for(lambda: cid not in svc.runners, 20, "runner gone")
    done = db.q("SELECT action, result FROM campaign_schedule ORDER BY id")
    assert [(r["action"], r["result"]) for r in done] == [
        ("start", "start: running"), ("pause", "pause: paused"), ("stop", "stop: stopped")]
    with pytest.raises(ApiError) as err:
        await svc.set_state("spring", "pause")
    assert err.value.code == 2
    with pytest.raises(ApiError) as err:
        await svc.set_state("nope", "start")
    assert err.value.code == 4
    with pytest.raises(ApiError):
        await svc.set_state("spring", "start", at="tomorrow")
    # statuses from the database for a campaign nobody dials
    (st,) = await svc.statuses("spring")
    assert (st["state"], st["dialling"], st["abandonment"]["limit_pct"]) == ("stopped", False, 3.0)
    methods = svc.methods()
    assert set(methods) == {"campaigns.status", "campaign.start", "campaign.pause",
                            "campaign.stop", "campaign.preview.next", "campaign.preview.dial",
                            "campaign.preview.skip", "campaign.disposition"}
    again = await methods["campaign.start"]({"campaign": "spring"})
    assert again["state"] == "running" and again["previous"] == "stopped"
    listed = await methods["campaigns.status"]({})
    assert [s["name"] for s in listed] == ["spring"]
