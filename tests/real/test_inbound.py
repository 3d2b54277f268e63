"""Inbound calls on the real PBX: IVR digits, queue, ring, answer, talk, hang-ups, abandon,
ring-no-answer, overflow, the zh-CN path, the survey, the screen pop. What the phones saw is
the truth; ccd's records, CLI and reports must agree with it."""

from __future__ import annotations

import json
import time

from conftest import Rig
from real_rig import wait_for
from scenarios import dial_in, only_logged_in, ring_and_answer


def kinds(r: Rig, call_id: str) -> list[str]:
    return [e["kind"] for e in r.ccd.rows(
        "SELECT kind FROM call_events WHERE call_id = %s ORDER BY ts, event_id", call_id)]


def test_ivr_digit_queue_answer_caller_hangs_up_with_the_screen_pop(r: Rig) -> None:
    only_logged_in(r, "1001")
    alice = r.panel("alice")
    since = time.time()
    call = dial_in(r, digits="3")
    ring_and_answer(r, call, "1001")
    t_pop, pop = alice.wait("pop", lambda p: p.get("call_id") == call.call_id, since=since)
    assert t_pop < call.answered, "the pop comes when the phone rings, not on answer"
    assert pop["caller_num"] in ("5557770001", "+15557770001")
    assert pop["customer"] and pop["customer"]["name"] == "Customer Carol"
    assert "main=3" in pop["ivr_path"]
    time.sleep(3.0)
    call.caller.hangup()
    hung = time.time()
    r.phone("1001").wait("CALL_CLOSED")
    rec = r.ccd.ended_call(call.call_id)
    assert (rec["direction"], rec["did"], rec["queue"], rec["agent"]) == \
        ("inbound", "5551000", "support", "PJSIP/1001")
    assert (rec["outcome"], rec["hangup_by"]) == ("answered", "caller")
    assert abs(float(rec["talk_seconds"]) - (hung - call.answered)) < 0.5
    # the wait runs from joining the queue (after the IVR) to the answer
    assert call.answered - call.ring - 0.5 < float(rec["queue_wait"]) < \
        call.answered - call.dialled
    assert rec["customer_id"] is not None  # identified by caller ID
    assert rec["record"]["recordings"], "support records every call (policy always)"
    # the stored statistics see the talk too (real-2: talk and hold were 0 in reports)
    report = r.ccd.json("report", "queues", "--total", "--tenant", "demo")
    support = next(q for q in report if q["queue"] == "support")
    assert support["answered"] >= 1 and float(support["talk"]) >= float(rec["talk_seconds"])
    assert float(support["aht"]) < 600


def test_abandon_while_queued(r: Rig) -> None:
    only_logged_in(r, "1001")
    r.ccd.cli("agent", "pause", "PJSIP/1001", "--reason", "break")
    call = dial_in(r, digits="3")
    wait_for(lambda: any(c["call_id"] == call.call_id and c["state"] == "queued"
                         for c in json.loads(r.ccd.cli("calls", "--json").stdout)),
             20, "the call queued in ccd")
    joined = time.time()
    time.sleep(4.0)
    call.caller.hangup()
    left = time.time()
    rec = r.ccd.ended_call(call.call_id)
    assert (rec["outcome"], rec["hangup_by"], rec["queue"]) == ("abandoned", "caller", "support")
    assert abs(float(rec["queue_wait"]) - (left - joined)) < 1.5
    assert "abandoned" in kinds(r, call.call_id)
    r.ccd.cli("agent", "unpause", "PJSIP/1001")


def test_queue_timeout_overflows_once_to_the_overflow_queue(r: Rig) -> None:
    """Nobody in support: after QUEUE_TIMEOUT the caller goes to overflow (every free agent
    rings), not into support a second time (real-2/T3b)."""
    only_logged_in(r, "1003")  # accounts and overflow only
    r.pbx.cli("dialplan set global QUEUE_TIMEOUT 6")
    try:
        call = dial_in(r, digits="3")
        ring_and_answer(r, call, "1003", after=0.5)
        time.sleep(2.0)
        r.phone("1003").hangup()
        call.caller.wait("CALL_CLOSED")
    finally:
        r.pbx.cli("dialplan set global QUEUE_TIMEOUT 300")
    rec = r.ccd.ended_call(call.call_id)
    assert (rec["outcome"], rec["agent"], rec["hangup_by"]) == ("answered", "PJSIP/1003", "agent")
    k = kinds(r, call.call_id)
    assert "queue_exited" in k and "answered" in k
    exited = r.ccd.row("SELECT data FROM call_events WHERE call_id = %s AND kind = "
                       "'queue_exited'", call.call_id)["data"]
    assert (exited["queue"], exited["reason"]) == ("support", "timeout")
    answered = r.ccd.row("SELECT data FROM call_events WHERE call_id = %s AND kind = "
                         "'answered'", call.call_id)["data"]
    assert answered["queue"] == "overflow"
    files = rec["record"]["recordings"]
    assert len(files) <= 1, f"no second, empty safety-net recording: {files}"


def test_ring_no_answer_then_the_next_agent(r: Rig) -> None:
    only_logged_in(r, "1001", "1002")
    call = dial_in(r, digits="3")
    first = None
    for ext in ("1001", "1002"):
        try:
            r.phone(ext).wait("CALL_INCOMING", timeout=2 if first else 30)
            first = ext
            break
        except AssertionError:
            continue
    assert first is not None
    other = "1002" if first == "1001" else "1001"
    r.phone(first).wait("CALL_CLOSED", timeout=25)  # queues.conf timeout 15 s: not answered
    ring_and_answer(r, call, other, after=0.5)
    time.sleep(1.0)
    call.caller.hangup()
    rec = r.ccd.ended_call(call.call_id)
    assert (rec["outcome"], rec["agent"]) == ("answered", f"PJSIP/{other}")
    rna = r.ccd.rows("SELECT data FROM call_events WHERE call_id = %s AND kind = "
                     "'ring_no_answer'", call.call_id)
    assert [e["data"]["agent"] for e in rna][:1] == [f"PJSIP/{first}"]


def test_zh_cn_path_with_an_account_number(r: Rig) -> None:
    """A caller whose language is not known chooses 中文 (1), then account questions (1),
    types a Luhn-valid account: the accounts queue, the account's customer on the record."""
    only_logged_in(r, "1003")
    r.ccd.rows("UPDATE customers SET language = NULL WHERE name = 'Customer Carol' "
               "RETURNING id")
    try:
        call = dial_in(r, digits="")
        time.sleep(2.0)
        call.caller.dtmf("1")  # 中文
        time.sleep(9.0)  # welcome + main menu in Chinese
        call.caller.dtmf("1")  # account questions
        time.sleep(4.0)
        call.caller.dtmf("79927398713#")
        ring_and_answer(r, call, "1003", after=0.5)
        time.sleep(1.0)
        call.caller.hangup()
    finally:
        r.ccd.rows("UPDATE customers SET language = 'en' WHERE name = 'Customer Carol' "
                   "RETURNING id")
    rec = r.ccd.ended_call(call.call_id)
    assert (rec["queue"], rec["agent"], rec["outcome"]) == ("accounts", "PJSIP/1003", "answered")
    v = rec["record"]["variables"]
    assert v.get("CCD_LANG") == "zh-CN"
    assert "79927398713" not in v.get("CCD_IVR_PATH", ""), "account digits are masked"
    luhn = r.ccd.row("SELECT id FROM customers WHERE account_no = '79927398713'")
    assert rec["customer_id"] == luhn["id"]


def test_survey_after_the_agent_hangs_up(r: Rig) -> None:
    only_logged_in(r, "1003")
    r.ccd.rows("UPDATE queues SET surveys = true WHERE name = 'accounts' RETURNING id")
    try:
        call = dial_in(r, did="5551001", digits="3")  # the accounts line: its own queue
        ring_and_answer(r, call, "1003", after=0.5)
        time.sleep(2.0)
        r.phone("1003").hangup()
        time.sleep(5.0)  # "please rate our service from 1 to 5"
        call.caller.dtmf("4")
        time.sleep(6.0)  # "leave a comment after the tone"
        time.sleep(2.0)
        call.caller.dtmf("#")
        call.caller.wait("CALL_CLOSED", timeout=30)
    finally:
        r.ccd.rows("UPDATE queues SET surveys = false WHERE name = 'accounts' RETURNING id")
    row = wait_for(lambda: r.ccd.row("SELECT * FROM survey_results WHERE call_id = %s",
                                     call.call_id), 20, "the survey result")
    assert (row["rating"], row["status"], row["agent"], row["queue"]) == \
        (4, "completed", "PJSIP/1003", "accounts")
    rec = r.ccd.ended_call(call.call_id)
    assert rec["queue"] == "accounts" and rec["hangup_by"] == "agent"


def test_the_escalation_line_keeps_its_own_queue(r: Rig) -> None:
    """DID 5551004, digit 3 (general support): the line's queue, escalation (real-2/T11a)."""
    only_logged_in(r, "1004")
    call = dial_in(r, did="5551004", digits="3")
    ring_and_answer(r, call, "1004", after=0.5)
    call.caller.hangup()
    rec = r.ccd.ended_call(call.call_id)
    assert (rec["queue"], rec["did"], rec["agent"]) == ("escalation", "5551004", "PJSIP/1004")
