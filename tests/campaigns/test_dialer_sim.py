"""The dialer end to end: the simulated PBX over real AMI, a ccd daemon, real PostgreSQL,
APScheduler on a controllable clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from ccd.sim.phones import PhoneProfile

pytestmark = pytest.mark.timeout(120)


def num(i: int) -> str:
    return f"+155501000{i:02d}"


def by_contact(attempts: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for a in attempts:
        out.setdefault(a["contact_id"], []).append(a)
    return out


@pytest.mark.phones(**{"15550100003": PhoneProfile(answer="busy"),
                       "15550100004": PhoneProfile(answer="never"),
                       "15550100005": PhoneProfile(registered=False)})
async def test_campaign_runs_through_the_list(stack, db, clock, wait_for) -> None:
    tid = db.seed()
    cid = db.campaign(tid)
    ids = db.contacts(tid, cid, [(num(1), None), (num(2), None), (num(3), None),
                                 (num(4), None), (num(5), None), (num(6), None),
                                 (num(7), "Asia/Tokyo")])
    db.q("INSERT INTO dnc (tenant_id, e164, source) VALUES (%s, %s, 'test')", tid, num(6))
    db.q("INSERT INTO dnc (tenant_id, e164, source) VALUES (NULL, %s, 'test')", num(9))
    ccd = await stack.ccd()
    stack.hang_up_answered(ccd)
    t0 = clock()
    res = await ccd.svc.set_state("spring", "start")
    assert res["state"] == "running"

    def settled() -> bool:
        done = by_contact([a for a in db.attempts(cid) if a["state"] == "done"])
        return all(ids[num(i)] in done for i in range(1, 6)) and \
            not db.q("SELECT 1 FROM campaign_attempts WHERE state <> 'done'")

    await wait_for(settled, 30, "the first pass")
    first = by_contact(db.attempts(cid))
    assert [a["outcome"] for a in first[ids[num(1)]]] == ["answered"]
    assert first[ids[num(1)]][0]["agent"] in ("PJSIP/1001", "PJSIP/1002")
    assert first[ids[num(1)]][0]["reason"] == 4 and first[ids[num(1)]][0]["call_id"]
    assert first[ids[num(1)]][0]["talk_seconds"] > 0
    # a busy SIP number: Reason 0 (chan_pjsip hangs up, real capture F7), cause 17
    assert [(a["outcome"], a["reason"], a["hangup_cause"]) for a in first[ids[num(3)]]] == [
        ("busy", 0, 17)]
    assert "hangup cause 17" in first[ids[num(3)]][0]["detail"]
    assert [(a["outcome"], a["reason"]) for a in first[ids[num(4)]]] == [("no_answer", 3)]
    assert [(a["outcome"], a["reason"]) for a in first[ids[num(5)]]] == [("failed", 0)]
    assert ids[num(6)] not in first and ids[num(7)] not in first
    for a in db.attempts(cid):
        assert a["runner"] == "ccd-a" and a["created_at"].timestamp() >= t0 - 1
    c3, c4, c5, c6, c7 = (db.contact(ids[num(i)]) for i in (3, 4, 5, 6, 7))
    assert c6["status"] == "dnc"
    # retries at the rule's delay from the attempt's end (campaign clock)
    busy_end = first[ids[num(3)]][0]["ended_at"].timestamp()
    assert c3["next_at"].timestamp() == pytest.approx(busy_end + 600, abs=0.01)
    assert c4["next_at"].timestamp() == pytest.approx(
        first[ids[num(4)]][0]["ended_at"].timestamp() + 3600, abs=0.01)
    assert c5["next_at"].timestamp() == pytest.approx(
        first[ids[num(5)]][0]["ended_at"].timestamp() + 1800, abs=0.01)
    # Tokyo: Tuesday 09:00 local = Tuesday 00:00 UTC
    assert c7["status"] == "pending"
    assert c7["next_at"] == datetime(2030, 1, 8, 0, 0, tzinfo=UTC)

    # nothing is redialled before its time
    await asyncio.sleep(1.0)
    assert len(db.attempts(cid)) == 5

    # +10 min: the busy number again (busy again: 2 of 3)
    clock.advance(busy_end + 601 - clock())
    await stack.wake(ccd)
    await wait_for(lambda: len(db.attempts(cid)) == 6 and
                   db.attempts(cid)[-1]["state"] == "done", 20, "busy retry")
    assert db.attempts(cid)[-1]["contact_id"] == ids[num(3)]

    # +30 min: the failed number (failed twice: exhausted)
    clock.advance(t0 + 1801 - clock())
    await stack.wake(ccd)
    await wait_for(lambda: db.contact(ids[num(5)])["status"] == "exhausted", 20,
                   "failed retry")
    # +1 h: no answer again (2 of 2: exhausted) and busy #3 (3 attempts: exhausted)
    clock.advance(t0 + 3700 - clock())
    await stack.wake(ccd)
    await wait_for(lambda: db.contact(ids[num(4)])["status"] == "exhausted" and
                   db.contact(ids[num(3)])["status"] == "exhausted", 30, "last retries")
    assert db.contact(ids[num(3)])["attempts"] == 3
    assert db.contact(ids[num(3)])["outcomes"] == {"busy": 3}

    # Tuesday 00:00 UTC: Tokyo's window opens (New York's is closed)
    clock.advance(datetime(2030, 1, 8, 0, 0, 5, tzinfo=UTC).timestamp() - clock())
    await stack.wake(ccd)
    await wait_for(lambda: db.contact(ids[num(7)])["status"] == "done", 20, "Tokyo contact")
    await wait_for(lambda: db.q("SELECT state FROM campaigns WHERE id = %s",
                                cid)[0]["state"] == "completed", 20, "campaign completed")
    per = by_contact(db.attempts(cid))
    assert sum(len(v) for v in per.values()) == 10
    # every Originate kept the 15 s ring minimum and carried the attempt id
    st = (await ccd.svc.statuses("spring"))[0]
    assert st["state"] == "completed"
    assert st["abandonment"]["live"] == 3 and st["abandonment"]["campaign_pct"] == 0.0


@pytest.mark.phones(**{"15550100001": PhoneProfile(answer="manual"),
                       "15550100002": PhoneProfile(answer="manual")})
async def test_no_agent_within_two_seconds_is_abandoned_with_the_message(stack, db, clock,
                                                                        wait_for) -> None:
    tid = db.seed()
    cid = db.campaign(tid, ring_timeout=120)  # time enough for the test, however busy
    ids = db.contacts(tid, cid, [(num(1), None), (num(2), None), (num(3), None)])
    ccd = await stack.ccd()
    stack.hang_up_answered(ccd)
    await ccd.svc.set_state(str(cid), "start")
    phones = [stack.sim.engine.phones.get(num(i)[1:]) for i in (1, 2)]
    await wait_for(lambda: all(any(c.state == 5 for c in p.calls) for p in phones), 30,
                   "two calls ringing")  # 5: Ringing
    # both agents go on a break while the two contacts' phones ring; then they answer
    for agent in ("PJSIP/1001", "PJSIP/1002"):
        await ccd.daemon.client.command("QueuePause", {"Queue": "outbound", "Interface": agent,
                                                       "Paused": "true", "Reason": "break"})
    agents = [ccd.daemon.model.agents[a] for a in ("PJSIP/1001", "PJSIP/1002")]
    await wait_for(lambda: all(a.memberships["outbound"].paused for a in agents), 30,
                   "ccd sees both agents paused")
    for p in phones:
        assert p.answer()
    await wait_for(lambda: all(a["state"] == "done" for a in db.attempts(cid)) and
                   len(db.attempts(cid)) == 2, 20, "both calls ended")
    attempts = db.attempts(cid)
    assert [a["outcome"] for a in attempts] == ["abandoned", "abandoned"]
    ended = {e.call_id: e.record for e in ccd.events if e.kind == "call_ended"}
    for a in attempts:
        rec = ended[a["call_id"]]
        assert rec.variables["CCD_ABANDONED"] == "1"  # the dialplan played the message
        assert rec.variables["CCD_ATTEMPT"] == str(a["id"])
        contact = db.contact(a["contact_id"])
        # Ofcom: not called again within 72 hours
        assert contact["next_at"].timestamp() == pytest.approx(
            a["ended_at"].timestamp() + 72 * 3600, abs=0.01)
    st = (await ccd.svc.statuses(str(cid)))[0]
    assert st["abandonment"]["abandoned"] == 2 and st["abandonment"]["campaign_pct"] == 100.0
    # no agent free: nobody else is called
    await asyncio.sleep(1.0)
    assert len(db.attempts(cid)) == 2
    await ccd.daemon.client.command("QueuePause", {"Queue": "outbound",
                                                   "Interface": "PJSIP/1001", "Paused": "false"})
    await wait_for(lambda: db.contact(ids[num(3)])["status"] == "done", 20, "third contact")


def originations(*instances: Any) -> dict[str, int]:
    """Calls each contact's phone received, as the ccd daemons saw them start (every
    daemon sees every call: counted once per call id)."""
    seen: set[tuple[str, str]] = set()
    for inst in instances:
        for e in inst.events:
            if e.kind == "call_started" and not e.adopted and "/1555" in e.channel:
                seen.add((e.channel.split("/", 1)[1].rsplit("-", 1)[0], e.call_id))
    out: dict[str, int] = {}
    for ep, _ in seen:
        out[ep] = out.get(ep, 0) + 1
    return out


async def test_restart_mid_campaign_calls_nobody_twice(stack, db, clock, wait_for) -> None:
    tid = db.seed()
    cid = db.campaign(tid, queue="outbound3")
    ids = db.contacts(tid, cid, [(num(i), None) for i in range(1, 6)])
    a = await stack.ccd("ccd-a")
    await a.svc.set_state("spring", "start")
    await wait_for(lambda: sum(x["state"] == "connected" for x in db.attempts(cid)) == 3, 15,
                   "three agents talking")
    assert len(db.attempts(cid)) == 3
    calls = {x["contact_id"]: x for x in db.attempts(cid)}
    phone = {i: stack.sim.engine.phones.get(num(i)[1:]) for i in range(1, 4)}

    # the dialer dies; the daemon still records calls: contact 1 hangs up meanwhile
    await a.svc.stop()
    phone[1].hangup()
    await wait_for(lambda: bool(db.q("SELECT 1 FROM calls WHERE call_id = %s AND NOT open",
                                     calls[ids[num(1)]]["call_id"])), 10, "call 1 stored")
    # then the whole instance is down; contact 2 hangs up while nobody listens
    await a.stop()
    phone[2].hangup()
    call2 = calls[ids[num(2)]]["call_id"]
    await wait_for(lambda: not any(ch.linkedid == call2
                                   for ch in stack.sim.engine.channels.values()), 30,
                   "call 2 gone from the PBX before ccd-b connects")

    b = await stack.ccd("ccd-b")
    stack.hang_up_answered(b)
    await wait_for(lambda: db.contact(ids[num(1)])["status"] == "done", 10,
                   "call 1 resolved from the call store")
    first = db.attempts(cid)[0]
    assert (first["outcome"], first["agent"] != "") == ("answered", True)
    assert "call store" in first["detail"]
    # call 3 is still up: followed, not redialled
    assert db.q("SELECT state FROM campaign_attempts WHERE id = %s",
                calls[ids[num(3)]]["id"])[0]["state"] == "connected"
    phone[3].hangup()
    await wait_for(lambda: db.contact(ids[num(3)])["status"] == "done", 10, "call 3 followed")
    # call 2 left no trace: unknown once it cannot be ringing any more, retried only later
    clock.advance(120)
    await stack.wake(b)
    await wait_for(lambda: db.q("SELECT outcome FROM campaign_attempts WHERE id = %s",
                                calls[ids[num(2)]]["id"])[0]["outcome"] == "unknown", 10,
                   "call 2 unknown")
    c2 = db.contact(ids[num(2)])
    assert c2["status"] == "pending" and c2["next_at"].timestamp() > clock() + 3000
    # the rest of the list goes on
    await wait_for(lambda: db.contact(ids[num(5)])["status"] == "done", 20, "contacts 4, 5")
    seen = originations(a, b)
    assert seen == {num(i)[1:]: 1 for i in range(1, 6)}
    assert [len([x for x in db.attempts(cid) if x["contact_id"] == ids[num(i)]])
            for i in range(1, 6)] == [1, 1, 1, 1, 1]


async def test_two_instances_only_one_dials(stack, db, clock, wait_for) -> None:
    tid = db.seed()
    cid = db.campaign(tid)
    ids = db.contacts(tid, cid, [(num(i), None) for i in range(1, 13)])
    a = await stack.ccd("ccd-a")
    b = await stack.ccd("ccd-b")
    for inst in (a, b):
        stack.hang_up_answered(inst, after=2.0)
    await a.svc.set_state("spring", "start")
    await wait_for(lambda: cid in a.svc.runners and cid in b.svc.runners and
                   (a.svc.runners[cid].locked or b.svc.runners[cid].locked), 10, "a dialer")
    await wait_for(lambda: len(db.attempts(cid)) >= 3, 15, "some attempts")
    ra, rb = a.svc.runners[cid], b.svc.runners[cid]
    assert ra.locked != rb.locked
    first, second = (a, b) if ra.locked else (b, a)
    standby = second.svc.runners[cid]
    # the second runner says "standby" once its own first tick has tried the lock
    await wait_for(lambda: "standby" in standby.note, 10, "the other runner in standby")
    assert {x["runner"] for x in db.attempts(cid)} == {first.svc.name}
    st = {s["dialer"]: s for s in [(await first.svc.statuses("spring"))[0],
                                   (await second.svc.statuses("spring"))[0]]}
    assert st[first.svc.name]["dialling"] and not st[second.svc.name]["dialling"]

    await first.stop()
    await wait_for(lambda: standby.locked, 10, "the standby takes over")
    await wait_for(lambda: all(db.contact(ids[num(i)])["status"] == "done"
                               for i in range(1, 13)), 60, "every contact called")
    runners = [x["runner"] for x in db.attempts(cid)]
    assert set(runners) == {first.svc.name, second.svc.name}
    assert runners == sorted(runners, key=lambda r: r != first.svc.name)
    assert originations(a, b) == {num(i)[1:]: 1 for i in range(1, 13)}
