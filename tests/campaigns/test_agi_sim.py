"""Notification campaigns and CSAT surveys: the FastAGI routes driven by the simulated PBX
(real FastAGI over TCP, digits pressed on the simulated phones)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytestmark = [pytest.mark.timeout(120), pytest.mark.agi]


def num(i: int) -> str:
    return f"+155501000{i:02d}"


def press_on_agi(stack: Any, inst: Any, script: str, digits: dict[str, list[tuple[float, str]]]
                 ) -> None:
    """When a channel of endpoint E enters the AGI ``script``, press ``digits[E]`` (real
    seconds after, digits)."""
    loop = asyncio.get_running_loop()

    def on(e: Any) -> None:
        if e.kind != "ivr_entered" or e.script != script:
            return
        ep = e.channel.split("/", 1)[1].rsplit("-", 1)[0]
        ch = stack.sim.engine.find_channel(e.channel)
        phone = stack.sim.engine.phones.get(ep)
        for delay, keys in digits.get(ep, []):
            loop.call_later(delay, phone.press, ch, keys)

    inst.daemon.bus.subscribe("press", on)


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
    press_on_agi(stack, ccd, "notify", {num(1)[1:]: [(0.1, "1")], num(2)[1:]: [(0.1, "2")]})
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
    press_on_agi(stack, ccd, "survey", {"2000": [(0.1, "7"), (0.3, "4"), (0.6, "#")]})
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

    # a caller who hangs up without rating
    third = carol.place_call("survey")
    await wait_for(lambda: any(e.kind == "ivr_entered" and e.call_id == third.linkedid
                               for e in ccd.events), 10, "third survey started")
    await asyncio.sleep(0.1)
    carol.hangup(third)
    await wait_for(lambda: len(db.q("SELECT 1 FROM survey_results")) == 2, 10, "hangup row")
    last = db.q("SELECT * FROM survey_results ORDER BY id DESC LIMIT 1")[0]
    assert (last["status"], last["rating"], last["call_id"]) == ("hangup", None, third.linkedid)
