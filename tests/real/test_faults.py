"""Faults on the real PBX: Asterisk restarted mid-call, the AMI link cut mid-call and while
a call ends, ccd killed and restarted mid-call. Nothing is made up, nothing stays open."""

from __future__ import annotations

import signal
import time

from conftest import Rig
from real_rig import wait_for
from scenarios import dial_in, only_logged_in, ring_and_answer


def linked(r: Rig) -> bool:
    st = r.ccd.json("status")
    return st["ami"]["state"] == "connected"


def test_asterisk_restarted_mid_call(r: Rig) -> None:
    only_logged_in(r, "1001")
    call = dial_in(r, digits="3")
    ring_and_answer(r, call, "1001", after=0.5)
    time.sleep(2.0)
    r.pbx.restart_now()
    call.caller.wait("CALL_CLOSED", timeout=20)
    wait_for(r.pbx.fully_booted, 60, "Asterisk back")
    rec = r.ccd.ended_call(call.call_id, timeout=60)
    assert rec["hangup_by"] == "system"
    wait_for(lambda: "PJSIP/1001" in r.pbx.cli("queue show support"), 60,
             "ccd to log Alice in again")


def talking_in_ccd(r: Rig, call_id: str) -> None:
    wait_for(lambda: any(c["call_id"] == call_id and c["state"] == "talking"
                         for c in r.ccd.json("calls")), 15, "ccd to see the talk")


def test_ami_link_cut_mid_call_loses_nothing(r: Rig) -> None:
    only_logged_in(r, "1001")
    call = dial_in(r, digits="3")
    ring_and_answer(r, call, "1001", after=0.5)
    talking_in_ccd(r, call.call_id)
    r.proxy.cut()
    time.sleep(3.0)
    r.proxy.restore()
    wait_for(lambda: linked(r), 30, "ccd back on AMI")
    time.sleep(1.0)
    call.caller.hangup()
    hung = time.time()
    rec = r.ccd.ended_call(call.call_id)
    assert rec["hangup_by"] == "caller" and rec["outcome"] == "answered"
    assert abs(float(rec["talk_seconds"]) - (hung - call.answered)) < 1.0, rec["record"]
    assert rec["record"]["recordings"], "recorded (the policy's MixMonitor got through)"


def test_ami_link_down_while_the_call_ends(r: Rig) -> None:
    """The call ends during the outage: no duration made up from the reconnect time
    (real-2/T7c)."""
    only_logged_in(r, "1001")
    call = dial_in(r, digits="3")
    ring_and_answer(r, call, "1001", after=0.5)
    talking_in_ccd(r, call.call_id)
    time.sleep(1.0)
    r.proxy.cut()
    time.sleep(0.5)
    call.caller.hangup()
    hung = time.time()
    time.sleep(5.0)
    r.proxy.restore()
    rec = r.ccd.ended_call(call.call_id, timeout=40)
    talk = rec["talk_seconds"]
    truth = hung - call.answered
    assert talk is None or abs(float(talk) - truth) < 1.0, (talk, truth)
    assert rec["end_reason"], "the record says the end was not seen"


def test_ccd_killed_and_restarted_mid_call(r: Rig) -> None:
    only_logged_in(r, "1001")
    call = dial_in(r, digits="3")
    ring_and_answer(r, call, "1001", after=0.5)
    time.sleep(1.0)
    r.ccd.stop(signal.SIGKILL)
    time.sleep(2.0)
    r.ccd.start()
    time.sleep(2.0)
    call.caller.hangup()
    hung = time.time()
    rec = r.ccd.ended_call(call.call_id)
    assert (rec["direction"], rec["did"], rec["queue"]) == ("inbound", "5551000", "support")
    assert rec["agent"] == "PJSIP/1001" and rec["hangup_by"] == "caller"
    assert abs(float(rec["talk_seconds"]) - (hung - call.answered)) < 1.0
    started = r.ccd.rows("SELECT 1 FROM call_events WHERE call_id = %s AND kind = "
                         "'call_started'", call.call_id)
    assert len(started) == 1
    recs = r.ccd.rows("SELECT * FROM recordings WHERE call_id = %s", call.call_id)
    assert len(recs) == 1
    assert not r.ccd.rows("SELECT call_id FROM calls WHERE open AND started_at < now() - "
                          "interval '10 minutes'")


def test_calls_that_end_while_ccd_is_down_are_closed(r: Rig) -> None:
    only_logged_in(r, "1001")
    call = dial_in(r, digits="3")
    ring_and_answer(r, call, "1001", after=0.5)
    time.sleep(1.0)
    r.ccd.stop(signal.SIGKILL)
    call.caller.hangup()
    time.sleep(1.0)
    r.ccd.start()
    rec = r.ccd.ended_call(call.call_id, timeout=30)
    assert rec["end_reason"]
