"""Outbound on the real PBX: click-to-dial answered and failed, a progressive campaign
(answered, busy, unanswered), supervisors listening, whispering and barging in."""

from __future__ import annotations

import csv
import datetime as dt
import time

from conftest import SUPERVISOR, Rig
from real_rig import wait_for
from scenarios import dial_in, only_logged_in, ring_and_answer


def test_click_to_dial_answered(r: Rig) -> None:
    only_logged_in(r, "1001")
    r.ccd.cli("originate", "PJSIP/1001", "15557770001")
    alice = r.phone("1001")
    alice.wait("CALL_INCOMING", timeout=20)
    alice.answer()
    r.pstn.wait("CALL_INCOMING", timeout=20)
    _, call_id = r.pbx.call_of("1001")
    r.pstn.answer()
    r.pstn.wait("CALL_ESTABLISHED")
    answered = time.time()
    time.sleep(3.0)
    r.pstn.hangup()  # the customer hangs up
    ended = time.time()
    alice.wait("CALL_CLOSED")
    rec = r.ccd.ended_call(call_id)
    assert rec["direction"] == "outbound" and rec["agent"] == "PJSIP/1001"
    assert rec["hangup_by"] == "customer" and rec["outcome"] == "answered"
    assert "15557770001" in rec["dialed"] or "15557770001" in rec["caller_num"], rec
    assert abs(float(rec["talk_seconds"]) - (ended - answered)) < 1.0
    demo = r.ccd.row("SELECT id FROM tenants WHERE slug = 'demo'")["id"]
    assert rec["tenant_id"] == demo


def test_click_to_dial_that_fails_is_not_answered(r: Rig) -> None:
    only_logged_in(r, "1001")
    r.ccd.cli("originate", "PJSIP/1001", "15557770404")  # the far end answers 404
    alice = r.phone("1001")
    alice.wait("CALL_INCOMING", timeout=20)
    _, call_id = r.pbx.call_of("1001")
    alice.answer()
    alice.wait("CALL_CLOSED", timeout=30)
    rec = r.ccd.ended_call(call_id)
    assert rec["outcome"] != "answered", rec["outcome"]


def _daytime_zone() -> str:
    """An IANA zone where it is now about noon: contacts are only called 08:00-21:00 local."""
    hour = dt.datetime.now(dt.UTC).hour
    offset = 12 - hour
    offset = offset - 24 if offset > 12 else offset + 24 if offset < -12 else offset
    offset = max(-12, min(14, offset))
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}" if offset < 0 else "")


def test_progressive_campaign_answered_busy_unanswered(r: Rig, tmp_path) -> None:
    only_logged_in(r, "1001")
    contacts = tmp_path / "contacts.csv"
    zone = _daytime_zone()
    with contacts.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["phone", "name", "timezone"])
        w.writerows([["+15557770011", "Answers", zone], ["+15557770012", "Busy", zone],
                     ["+15557770013", "Nobody", zone]])
    r.ccd.cli("campaign", "create", "real1", "--tenant", "demo", "--queue", "support",
              "--mode", "progressive", "--caller-id", "5551000",
              "--dial-template", "PJSIP/{digits}@trunk", "--window", "mon-sun 00:00-23:59",
              "--abandon-message", "ccd/campaign-abandon", "--ring-timeout", "15",
              "--max-attempts", "1")
    r.ccd.cli("campaign", "import", "real1", str(contacts))
    r.ccd.cli("campaign", "start", "real1")
    seen = {}
    deadline = time.monotonic() + 120
    while len(seen) < 3 and time.monotonic() < deadline:
        try:
            e = r.pstn.wait("CALL_INCOMING", timeout=5)
        except AssertionError:
            continue
        to = str(e.data.get("accountaor", ""))
        num = next((n for n in ("15557770011", "15557770012", "15557770013") if n in to), "")
        seen[num] = e.t
        if num.endswith("11"):
            r.pstn.answer()
            ring_and_answer_agent(r)
            time.sleep(2.0)
            r.pstn.hangup()
        elif num.endswith("12"):
            time.sleep(0.5)
            r.pstn.hangup()  # baresip answers 486 Busy Here
        # ...13 rings out (ring timeout 15 s)

    def done() -> dict[str, str] | None:
        attempts = r.ccd.json("campaign", "report", "real1", "--attempts")
        out = {a["e164"]: a["outcome"] for a in attempts}
        return out if len(out) == 3 and all(out.values()) else None
    outcomes = wait_for(done, 60, "every attempt to end") or {}
    r.ccd.cli("campaign", "stop", "real1", ok=False)
    assert outcomes.get("+15557770011") == "answered", outcomes
    assert outcomes.get("+15557770012") == "busy", outcomes
    assert outcomes.get("+15557770013") == "no_answer", outcomes


def ring_and_answer_agent(r: Rig) -> None:
    alice = r.phone("1001")
    alice.wait("CALL_INCOMING", timeout=10)
    alice.answer()
    alice.wait("CALL_ESTABLISHED")


def test_supervisor_listen_whisper_barge_from_the_panel(r: Rig) -> None:
    only_logged_in(r, "1001")
    call = dial_in(r, digits="3")
    ring_and_answer(r, call, "1001", after=0.5)
    eve = r.phone(SUPERVISOR)
    panel = r.panel("eve")
    alice_id = r.ccd.row("SELECT id FROM agents WHERE interface = 'PJSIP/1001'")["id"]
    spies = []
    for mode in ("listen", "whisper", "barge"):
        resp = panel.post(f"/api/agents/{alice_id}/spy", {"mode": mode})
        assert resp.status_code == 200, resp.text
        eve.wait("CALL_INCOMING", timeout=15)
        _, spy_id = r.pbx.call_of(SUPERVISOR)
        spies.append(spy_id)
        eve.answer()
        eve.wait("CALL_ESTABLISHED")
        time.sleep(2.0)
        eve.hangup()
        eve.wait("CALL_CLOSED")
    # the dialplan codes from the supervisor's phone: 8 + extension listens
    eve.dial("81001")
    eve.wait("CALL_ESTABLISHED", timeout=10)
    chans = " ".join(c["data"] for c in r.pbx.channels() if c["app"] == "ChanSpy")
    assert "PJSIP/1001-" in chans, chans
    eve.hangup()
    call.caller.hangup()
    rec = r.ccd.ended_call(call.call_id)
    assert rec["outcome"] == "answered" and rec["hangup_by"] == "caller"
    for spy_id in spies:
        if spy_id == call.call_id:
            continue
        spy = r.ccd.ended_call(spy_id)
        assert spy["direction"] != "outbound" or spy["outcome"] != "answered", spy
