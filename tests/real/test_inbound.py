"""Inbound calls on the real PBX: IVR digits, queue, ring, answer, talk, hang-ups, abandon,
ring-no-answer, overflow. What the phones saw is the truth; ccd's records must agree."""

from __future__ import annotations

import time

from conftest import CUSTOMER, Rig


def login(r: Rig, *agents: str) -> None:
    for a in agents:
        r.ccd.cli("agent", "login", f"PJSIP/{a}")


def logout_all(r: Rig) -> None:
    for a in ("1001", "1002", "1003", "1004"):
        r.ccd.cli("agent", "logout", f"PJSIP/{a}", ok=False)


def test_inbound_ivr_digit_queue_answer_caller_hangs_up(r: Rig) -> None:
    logout_all(r)
    login(r, "1001")
    caller, agent = r.phone(CUSTOMER), r.phone("1001")
    t0 = time.time()
    caller.dial("5551000")
    caller.wait("CALL_ESTABLISHED")  # the PBX answers for the IVR
    time.sleep(4.0)  # language menu: the customer's language is known (en), main menu plays
    caller.dtmf("3")
    ring = agent.wait("CALL_INCOMING", timeout=30)
    _, call_id = r.pbx.call_of("1001")
    time.sleep(1.0)
    agent.answer()
    agent.wait("CALL_ESTABLISHED")
    answered = time.time()
    time.sleep(3.0)
    caller.hangup()
    hung = time.time()
    agent.wait("CALL_CLOSED")
    rec = r.ccd.ended_call(call_id)
    assert rec["direction"] == "inbound" and rec["did"] == "5551000"
    assert rec["queue"] == "support" and rec["agent"] == "PJSIP/1001"
    assert rec["outcome"] == "answered" and rec["hangup_by"] == "caller"
    assert abs(float(rec["talk_seconds"]) - (hung - answered)) < 0.5
    assert abs(float(rec["queue_wait"]) - (answered - ring.t)) < 5.0 + 0.5
    assert rec["caller_num"] in ("5557770001", "+15557770001")
    assert t0 < rec["started_at"].timestamp() < ring.t
