"""Notification campaigns and CSAT surveys: the FastAGI routes driven by the simulated PBX
(real FastAGI over TCP, digits pressed on the simulated phones)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytestmark = [pytest.mark.timeout(120), pytest.mark.agi]


def num(i: int) -> str:
    return f"+155501000{i:02d}"


def press_on_agi(stack: Any, plans: dict[str, list[tuple[str, str, float]]]) -> None:
    """The callers' fingers: ``plans[E]`` is a list of (AGI command, keys, simulated seconds):
    when the simulated Asterisk starts the next such AGI command on a channel of endpoint E
    (its AGIExecStart event), E presses the keys that many simulated seconds later. Keyed to
    the PBX's own events and clock, the keys fall into the same prompt however late a busy
    machine runs anything (digits pressed early wait in the channel, as DTMF does)."""
    loop = asyncio.get_running_loop()
    sim = stack.sim

    def on(ev: Any) -> None:
        if ev.name != "AGIExecStart":
            return
        ep = ev.get("Channel").split("/", 1)[-1].rsplit("-", 1)[0]
        plan = plans.get(ep)
        if not plan or not ev.get("Command").startswith(plan[0][0]):
            return
        _, keys, after = plan.pop(0)
        ch = sim.engine.find_channel(ev.get("Channel"))
        loop.call_later(sim.clock.real(after), sim.engine.phones.get(ep).press, ch, keys)

    sim.engine.subscribe(on)


async def test_notification_confirm_agent_and_no_input(stack, db, clock, wait_for) -> None:
    tid = db.seed()
    cid = db.campaign(tid, "reminder", kind="notify", dial_mode="notify", abandon_message="",
                      confirm=True, max_channels=5,
                      prompts={"message": {"en": "custom/reminder-en",
                                           "fr": "custom/reminder-fr"}})
    ids = db.contacts(tid, cid, [(num(1), None), (num(2), None), (num(3), None)])
    db.q("UPDATE campaign_contacts SET language = 'fr' WHERE id = %s", ids[num(1)])
    ccd = await stack.ccd()
    stack.hang_up_answered(ccd)
    # 1 confirms and 2 asks for an agent while the message plays; 3 never presses anything
    press_on_agi(stack, {num(1)[1:]: [("GET DATA", "1", 0.5)],
                         num(2)[1:]: [("GET DATA", "2", 0.5)]})
    await ccd.svc.set_state("reminder", "start")
    await wait_for(lambda: len(db.q("SELECT 1 FROM notification_results")) == 3 and
                   all(a["state"] == "done" for a in db.attempts(cid)) and
                   len(db.attempts(cid)) == 3, 40, "three notifications")
    res = {r["contact_id"]: r for r in db.q("SELECT * FROM notification_results")}
    assert (res[ids[num(1)]]["result"], res[ids[num(1)]]["language"],
            res[ids[num(1)]]["digits"]) == ("confirmed", "fr", "1")
    assert res[ids[num(2)]]["result"] == "agent"
    assert res[ids[num(3)]]["result"] == "no_input"
    attempts = {a["contact_id"]: a for a in db.attempts(cid)}
    assert {a["outcome"] for a in attempts.values()} == {"answered"}
    assert attempts[ids[num(2)]]["agent"] in ("PJSIP/1001", "PJSIP/1002")  # talked to one
    for r in res.values():
        assert r["call_id"] == attempts[r["contact_id"]]["call_id"]
    played = [e for e in ccd.events if e.kind == "call_ended"]
    fr = next(e for e in played if e.call_id == res[ids[num(1)]]["call_id"])
    assert fr.record.variables["CCD_NOTIFY_RESULT"] == "confirmed"
    await wait_for(lambda: db.q("SELECT state FROM campaigns WHERE id = %s",
                                cid)[0]["state"] == "completed", 15, "completed")


async def test_csat_survey_linked_to_call_and_agent(stack, db, wait_for, tmp_path) -> None:
    db.seed()
    ccd = await stack.ccd(service=False)
    # an invalid rating, then 4, then a comment of two simulated seconds ended by #
    press_on_agi(stack, {"2000": [("GET DATA", "7", 0.5), ("GET DATA", "4", 0.5),
                                  ("RECORD FILE", "#", 2.0)]})
    carol = stack.sim.engine.phones.get("2000")
    call = carol.place_call("survey")
    await wait_for(lambda: bool(db.q("SELECT 1 FROM survey_results")), 20, "a survey result")
    (row,) = db.q("SELECT * FROM survey_results")
    alice = db.q("SELECT id FROM agents WHERE interface = 'PJSIP/1001'")[0]["id"]
    assert (row["rating"], row["status"], row["queue"], row["agent"], row["agent_id"]) == \
        (4, "completed", "support", "PJSIP/1001", alice)
    assert row["call_id"] == call.linkedid and row["uniqueid"] == call.uniqueid
    assert row["comment_file"].startswith(str(tmp_path / "rec" / "acme" / "surveys"))
    assert row["comment_file"].endswith(".wav") and row["comment_seconds"] >= 1
    await wait_for(lambda: any(e.kind == "call_ended" for e in ccd.events), 10, "call end")
    ended = next(e for e in ccd.events if e.kind == "call_ended")
    assert ended.record.variables["CCD_SURVEY"] == "completed"
    assert ended.record.variables["CCD_SURVEY_RATING"] == "4"

    # a queue without surveys: nothing asked, nothing stored
    other = carol.place_call("nosurvey")
    await wait_for(lambda: any(e.kind == "call_ended" and e.call_id == other.linkedid
                               for e in ccd.events), 10, "second call end")
    ended2 = next(e for e in ccd.events if e.kind == "call_ended" and e.call_id == other.linkedid)
    assert ended2.record.variables["CCD_SURVEY"] == "off"
    assert len(db.q("SELECT 1 FROM survey_results")) == 1

    # a caller who hangs up without rating, while the rating prompt plays
    third = carol.place_call("survey")  # its AGI starts later, over TCP
    asked: list[Any] = []
    stack.sim.engine.subscribe(lambda ev: asked.append(ev) if ev.name == "AGIExecStart"
                               and ev.get("Channel") == third.name
                               and ev.get("Command").startswith("GET DATA") else None)
    await wait_for(lambda: bool(asked), 30, "third survey asking for a rating")
    carol.hangup(third)
    await wait_for(lambda: len(db.q("SELECT 1 FROM survey_results")) == 2, 10, "hangup row")
    last = db.q("SELECT * FROM survey_results ORDER BY id DESC LIMIT 1")[0]
    assert (last["status"], last["rating"], last["call_id"]) == ("hangup", None, third.linkedid)
