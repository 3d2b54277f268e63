"""Call controls on the real PBX: ccd call hangup, ccd's blind and attended transfers, hold
from the panel and from the phone, recording pause/resume and on-demand recording, transfers
to outside numbers (allowed, refused, failing)."""

from __future__ import annotations

import time
import wave
from pathlib import Path

from conftest import Rig
from real_rig import wait_for
from scenarios import Inbound, dial_in, only_logged_in, ring_and_answer


def answered_call(r: Rig, agent: str = "1001", did: str = "5551000") -> Inbound:
    only_logged_in(r, agent)
    call = dial_in(r, did=did, digits="3")
    ring_and_answer(r, call, agent, after=0.5)
    wait_for(lambda: any(c["call_id"] == call.call_id and c["state"] == "talking"
                         for c in r.ccd.json("calls")), 15, "ccd to see the talk")
    return call


def test_ccd_call_hangup_is_the_operator_s(r: Rig) -> None:
    call = answered_call(r)
    time.sleep(2.0)
    r.ccd.cli("call", "hangup", call.call_id)
    call.caller.wait("CALL_CLOSED")
    r.phone("1001").wait("CALL_CLOSED")
    rec = r.ccd.ended_call(call.call_id)
    assert rec["hangup_by"] not in ("caller", "agent"), rec["hangup_by"]
    assert rec["hangup_by"].startswith(("ccd", "operator")), rec["hangup_by"]


def test_blind_transfer_to_another_agent(r: Rig) -> None:
    only_logged_in(r, "1001", "1002")
    r.ccd.cli("agent", "pause", "PJSIP/1002", "--reason", "break")  # 1001 gets the call
    call = dial_in(r, digits="3")
    ring_and_answer(r, call, "1001", after=0.5)
    time.sleep(1.0)
    r.ccd.cli("agent", "unpause", "PJSIP/1002")
    r.ccd.cli("call", "transfer", call.call_id, "agent:1002")
    r.phone("1001").wait("CALL_CLOSED")
    ring_and_answer(r, call, "1002", after=0.5)
    time.sleep(2.0)
    call.caller.hangup()
    rec = r.ccd.ended_call(call.call_id)
    parties = [s["agent"] for s in rec["record"]["segments"]]
    assert parties[:1] == ["PJSIP/1001"] and "PJSIP/1002" in parties
    assert rec["record"]["transfers"][0]["transfer"] == "blind"
    assert rec["hangup_by"] == "caller"


def test_attended_transfer_to_another_agent(r: Rig) -> None:
    only_logged_in(r, "1001", "1002")
    r.ccd.cli("agent", "pause", "PJSIP/1002", "--reason", "break")
    call = dial_in(r, digits="3")
    ring_and_answer(r, call, "1001", after=0.5)
    time.sleep(1.0)
    r.ccd.cli("call", "transfer", call.call_id, "agent:1002", "--attended")
    bob = r.phone("1002")
    bob.wait("CALL_INCOMING", timeout=20)
    bob.answer()
    bob.wait("CALL_ESTABLISHED")
    time.sleep(1.5)  # Alice announces the caller, then hangs up: the transfer completes
    r.phone("1001").hangup()
    time.sleep(2.0)
    call.caller.hangup()
    bob.wait("CALL_CLOSED")
    rec = r.ccd.ended_call(call.call_id)
    assert any(t["transfer"] == "attended" for t in rec["record"]["transfers"])
    assert "PJSIP/1002" in [s["agent"] for s in rec["record"]["segments"]]
    assert rec["hangup_by"] == "caller"


def test_hold_from_the_panel_works_with_any_phone(r: Rig) -> None:
    """baresip refuses remote-control NOTIFYs (481); ccd's hold does not need them: the
    caller hears music, Asterisk reports Hold, resume brings the agent back (real-2/T10)."""
    call = answered_call(r)
    alice = r.panel("alice")
    resp = alice.post(f"/api/calls/{call.call_id}/hold")
    assert resp.status_code == 200 and resp.json()["result"]["confirmed"], resp.text
    held_at = time.time()
    wait_for(lambda: any(c["call_id"] == call.call_id and c["state"] == "on_hold"
                         for c in r.ccd.json("calls")), 10, "ccd: on hold")
    time.sleep(3.0)
    resp = alice.post(f"/api/calls/{call.call_id}/unhold")
    assert resp.status_code == 200 and resp.json()["result"]["confirmed"], resp.text
    resumed = time.time()
    time.sleep(1.0)
    r.phone("1001").hangup()
    rec = r.ccd.ended_call(call.call_id)
    assert abs(float(rec["hold_seconds"]) - (resumed - held_at)) < 1.0
    assert rec["hangup_by"] == "agent"
    # the agent's talk is one conversation with a hold in it, not two segments
    assert [s["agent"] for s in rec["record"]["segments"]] == ["PJSIP/1001"]


def test_hold_from_the_phone(r: Rig) -> None:
    call = answered_call(r)
    time.sleep(1.0)
    agent = r.phone("1001")
    agent.hold()
    held = time.time()
    wait_for(lambda: any(c["call_id"] == call.call_id and c["state"] == "on_hold"
                         for c in r.ccd.json("calls")), 10, "ccd: on hold")
    time.sleep(3.0)
    agent.resume()
    resumed = time.time()
    time.sleep(1.0)
    agent.hangup()
    rec = r.ccd.ended_call(call.call_id)
    assert abs(float(rec["hold_seconds"]) - (resumed - held)) < 1.0


def test_recording_pause_and_resume(r: Rig) -> None:
    call = answered_call(r)
    time.sleep(1.5)
    r.ccd.cli("call", "record-pause", call.call_id)
    time.sleep(2.0)
    r.ccd.cli("call", "record-resume", call.call_id)
    time.sleep(1.5)
    call.caller.hangup()
    rec = r.ccd.ended_call(call.call_id)
    pauses = r.ccd.rows("SELECT * FROM recording_pauses WHERE call_id = %s", call.call_id)
    assert len(pauses) == 1
    p = pauses[0]
    assert 1.5 < (p["resumed_at"] - p["paused_at"]).total_seconds() < 3.0
    [path] = rec["record"]["recordings"]
    with wave.open(str(Path(path))) as w:
        assert w.getnframes() / w.getframerate() > 3.0


def test_on_demand_recording(r: Rig) -> None:
    """The escalation queue records on demand (set up with --recording on_demand)."""
    call = answered_call(r, agent="1004", did="5551004")
    time.sleep(1.0)
    rec_live = next(c for c in r.ccd.json("calls") if c["call_id"] == call.call_id)
    assert not rec_live["recording"], "on demand: nothing recorded before it is asked for"
    r.ccd.cli("call", "record-start", call.call_id)
    time.sleep(2.0)
    r.ccd.cli("call", "record-stop", call.call_id)
    time.sleep(1.0)
    call.caller.hangup()
    rec = r.ccd.ended_call(call.call_id)
    [path] = rec["record"]["recordings"]
    with wave.open(str(Path(path))) as w:
        assert 1.0 < w.getnframes() / w.getframerate() < 4.0


def test_transfer_to_a_number_allowed(r: Rig) -> None:
    call = answered_call(r)
    out = r.ccd.cli("call", "transfer", call.call_id, "number:15557770009")
    assert out.returncode == 0
    r.pstn.wait("CALL_INCOMING", timeout=20)
    r.pstn.answer()
    r.pstn.wait("CALL_ESTABLISHED")
    time.sleep(2.0)
    r.pstn.hangup()  # the outside party ends it
    call.caller.wait("CALL_CLOSED")
    rec = r.ccd.ended_call(call.call_id)
    assert rec["hangup_by"] not in ("agent", "caller"), rec["hangup_by"]


def test_transfer_to_a_number_refused_by_the_dial_patterns(r: Rig) -> None:
    call = answered_call(r)
    refused = r.ccd.cli("call", "transfer", call.call_id, "number:+882123456789", ok=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert any(c["call_id"] == call.call_id and c["state"] == "talking"
               for c in r.ccd.json("calls")), "the call goes on untouched"
    call.caller.hangup()


def test_transfer_to_a_number_that_fails_brings_the_caller_back(r: Rig) -> None:
    """The far end answers 404: the caller is told and queued again, never dropped, and the
    CLI says the transfer failed (real-3/F4)."""
    call = answered_call(r)
    failed = r.ccd.cli("call", "transfer", call.call_id, "number:15557770404", ok=False)
    assert failed.returncode == 1 and "failed" in failed.stderr, failed.stderr
    r.phone("1001").wait("CALL_CLOSED")
    ring_and_answer(r, call, "1001", after=0.5)  # back in support: Alice again
    call.caller.hangup()
    rec = r.ccd.ended_call(call.call_id)
    assert rec["hangup_by"] == "caller" and rec["outcome"] == "answered"
