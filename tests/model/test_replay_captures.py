"""Replay every real Asterisk 22 capture through the real parser and model.

The expected facts below were written by reading the captures (their README,
TIMELINES.txt and the frames themselves), not by copying the model's output:
event order, who hung up, queue waits from QueueCallerJoin/AgentConnect stamps,
durations from Newchannel/BridgeEnter/Hangup stamps, recording names from
MIXMONITOR_FILENAME.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ccd.cli.replay import replay_file
from ccd.model.domain import CallEnded, CallRecord, DomainEvent
from ccd.model.live import LiveModel, ModelConfig

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():  # a checkout elsewhere: ../shared relative to the repo
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"

MON = "/var/spool/asterisk/monitor/"


def run(name: str, **cfg: object) -> tuple[list[DomainEvent], LiveModel]:
    model = LiveModel(ModelConfig(**cfg))  # type: ignore[arg-type]
    events, ingest = replay_file(next(CAPTURES.glob(name + "*.ami")), model)
    assert ingest.stats.malformed == 0
    assert ingest.stats.model_errors == 0
    return events, model


def call_kinds(events: list[DomainEvent]) -> list[str]:
    return [e.kind for e in events if e.kind not in ("agent_state", "pbx")]


def records(events: list[DomainEvent]) -> list[CallRecord]:
    return [e.record for e in events if isinstance(e, CallEnded)]


def one(events: list[DomainEvent], kind: str) -> dict:
    found = [e.to_dict() for e in events if e.kind == kind]
    assert len(found) == 1, (kind, found)
    return found[0]


INBOUND_ANSWERED = ["call_started", "ivr_entered", "ivr_left", "recording_started", "queued",
                    "agent_ringing", "answered", "recording_stopped", "call_ended"]


def test_scenario01_caller_hangs_up() -> None:
    events, model = run("scenario01")
    assert call_kinds(events) == INBOUND_ANSWERED
    started = one(events, "call_started")
    assert started["direction"] == "inbound"
    assert started["did"] == "5551000"
    assert (started["caller_num"], started["caller_name"]) == ("5557770001", "Customer Carol")
    assert one(events, "ivr_entered")["script"] == "ivr"
    assert one(events, "ivr_left")["status"] == "SUCCESS"
    assert one(events, "queued")["queue"] == "support"
    assert one(events, "agent_ringing")["agent"] == "PJSIP/1001"
    ans = one(events, "answered")
    assert ans["agent"] == "PJSIP/1001" and ans["member_name"] == "Agent Alice"
    # QueueCallerJoin 1795465022.658998 -> AgentConnect 1795465022.661399
    assert ans["wait"] == pytest.approx(0.0024, abs=0.001)
    [r] = records(events)
    assert r.call_id == "1795465016.0"
    assert r.uniqueids == ["1795465016.0", "1795465022.1"]
    assert r.agent == "PJSIP/1001" and r.queue == "support" and r.outcome == "answered"
    assert r.hangup_by == "caller"
    assert (r.hangup_cause, r.hangup_cause_txt) == (16, "Normal Clearing")
    # bridged 22.662471 -> caller leaves 28.673710; Newchannel 16.781283 -> last Hangup 28.675127
    assert r.talk_seconds == pytest.approx(6.011, abs=0.002)
    assert r.total_seconds == pytest.approx(11.894, abs=0.002)
    assert r.recordings == [MON + "20261123-201702-support-1795465016.0.wav"]
    assert r.variables["CUSTOMER_ID"] == "C770001"
    assert not model.calls


def test_scenario02_agent_hangs_up() -> None:
    events, _ = run("scenario02")
    assert call_kinds(events) == INBOUND_ANSWERED
    [r] = records(events)
    assert r.agent == "PJSIP/1002" and r.agent_name == "Agent Bob"
    assert r.hangup_by == "agent"  # HangupRequest on PJSIP/1002-00000003 first
    assert r.talk_seconds == pytest.approx(6.0, abs=0.05)
    assert r.recordings == [MON + "20261123-201720-support-1795465034.2.wav"]


def test_scenario03_abandon_while_agents_paused() -> None:
    events, model = run("scenario03")
    states = [(e.agent, e.state, e.reason) for e in events if e.kind == "agent_state"]
    assert states[:2] == [("PJSIP/1001", "paused", "lunch break"),
                          ("PJSIP/1002", "paused", "lunch break")]
    assert states[-2:] == [("PJSIP/1001", "available", ""), ("PJSIP/1002", "available", "")]
    assert call_kinds(events) == ["call_started", "ivr_entered", "ivr_left",
                                  "recording_started", "queued", "abandoned",
                                  "recording_stopped", "call_ended"]
    ab = one(events, "abandoned")
    assert ab["queue"] == "support" and ab["position"] == 1
    assert ab["wait"] == pytest.approx(12.0, abs=0.05)  # HoldTime: 12
    [r] = records(events)
    assert r.outcome == "abandoned" and r.hangup_by == "caller" and r.agent == ""
    assert r.talk_seconds == 0
    assert r.queue_wait == pytest.approx(12.0, abs=0.05)
    assert all(a.state == "available" for a in model.agents.values())


def test_scenario04_ring_no_answer_then_other_agent() -> None:
    events, _ = run("scenario04")
    assert call_kinds(events) == ["call_started", "ivr_entered", "ivr_left",
                                  "recording_started", "queued", "agent_ringing",
                                  "ring_no_answer", "agent_ringing", "answered",
                                  "recording_stopped", "call_ended"]
    assert one(events, "call_started")["did"] == "5551004"
    rna = one(events, "ring_no_answer")
    assert rna["agent"] == "PJSIP/1003" and rna["ring_seconds"] == 6.0
    ans = one(events, "answered")
    assert ans["agent"] == "PJSIP/1001" and ans["queue"] == "escalation"
    assert ans["wait"] == pytest.approx(8.0, abs=0.05)  # AgentConnect HoldTime: 8
    [r] = records(events)
    assert r.hangup_by == "caller" and r.talk_seconds == pytest.approx(5.0, abs=0.05)
    assert r.recordings == [MON + "20261123-201802-escalation-1795465076.5.wav"]


def test_scenario05a_blind_transfer() -> None:
    events, _ = run("scenario05a")
    kinds = call_kinds(events)
    assert kinds[kinds.index("answered"):] == ["answered", "transferred", "agent_connected",
                                               "recording_stopped", "call_ended"]
    t = one(events, "transferred")
    assert (t["transfer"], t["from_agent"], t["target"]) == ("blind", "PJSIP/1001",
                                                             "1004@agents")
    assert one(events, "agent_connected")["agent"] == "PJSIP/1004"
    [r] = records(events)
    assert r.agent == "PJSIP/1001"  # who answered from the queue
    assert [(s.agent, s.queue) for s in r.segments] == [("PJSIP/1001", "support"),
                                                        ("PJSIP/1004", "")]
    # 3 s with Alice (AgentComplete TalkTime 3), then 4 s with Dana
    assert r.segments[0].seconds == pytest.approx(3.0, abs=0.05)
    assert r.segments[1].seconds == pytest.approx(4.0, abs=0.05)
    assert r.hangup_by == "caller"


def test_scenario05b_attended_transfer() -> None:
    events, _ = run("scenario05b")
    kinds = call_kinds(events)
    assert kinds[kinds.index("answered"):] == ["answered", "held", "agent_connected",
                                               "transferred", "unheld", "recording_stopped",
                                               "call_ended"]
    t = one(events, "transferred")
    assert (t["transfer"], t["from_agent"], t["target"]) == ("attended", "PJSIP/1002",
                                                             "PJSIP/1004")
    [r] = records(events)
    assert [s.agent for s in r.segments] == ["PJSIP/1002", "PJSIP/1004"]
    # Bob hangs up to complete the transfer (HangupRequest), but the caller ends the call
    assert r.hangup_by == "caller"
    assert r.hold_seconds == pytest.approx(3.2, abs=0.05)  # Hold 129.024 .. merge 132.219
    assert r.channels[-1] == "PJSIP/1004-0000000d"


def test_scenario05c_redirect() -> None:
    events, _ = run("scenario05c")
    t = one(events, "transferred")
    assert (t["transfer"], t["from_agent"], t["target"]) == ("redirect", "PJSIP/1001",
                                                             "3000@agents")
    [r] = records(events)
    assert r.talk_seconds == pytest.approx(3.0, abs=0.05)
    # the announcement ends with Hangup() in the dialplan: the PBX hung up, not a person
    assert r.hangup_by == "system"
    assert r.total_seconds == pytest.approx(15.3, abs=0.05)


def test_scenario06_originate_outcomes() -> None:
    events, _ = run("scenario06")
    recs = records(events)
    assert [r.direction for r in recs] == ["outbound"] * 4
    answered, no_answer, busy, sync_playback = recs
    assert answered.outcome == "answered" and answered.hangup_by == "system"
    assert answered.caller_num == "5551000" and answered.caller_name == "Support Line"
    assert no_answer.outcome == "failed"
    assert (no_answer.hangup_cause, no_answer.hangup_cause_txt) == (19,
                                                                    "User alerting, no answer")
    assert busy.outcome == "failed" and busy.hangup_cause == 17
    assert sync_playback.outcome == "answered"
    # the two Originates to unreachable endpoints created no channel: no call at all
    assert len(recs) == 4


def test_scenario07_queue_member_management() -> None:
    events, model = run("scenario07")
    dana = [(e.state, e.reason) for e in events
            if e.kind == "agent_state" and e.agent == "PJSIP/1004"]
    assert dana == [("available", ""), ("paused", "lunch break"), ("available", ""),
                    ("logged_out", "")]
    bob = [(e.state, e.reason) for e in events
           if e.kind == "agent_state" and e.agent == "PJSIP/1002"]
    # paused for "training" while on the call: still shown on the call
    assert ("on_call", "") in bob
    [r] = records(events)
    assert r.agent == "PJSIP/1002" and r.hangup_by == "caller"
    assert model.agents["PJSIP/1004"].state == "logged_out"


def _driver_notes(path: Path) -> dict[str, str]:
    """channel -> who the driver hung up, for the driver's AMI Hangups that succeeded.

    One Hangup got "No such channel": that caller's patience ran out first (README).
    """
    notes: dict[str, str] = {}
    text = path.read_bytes().decode(errors="replace")
    for m in re.finditer(r"driver ends call #\d+ by hanging up the (caller|agent) channel "
                         r"(\S+)\n(?:#.*\n)*?# > ActionID: (\S+)\n", text):
        reply = re.search(r"Response: (\w+)\r\nActionID: " + re.escape(m.group(3)) + r"\r\n",
                          text)
        assert reply is not None
        if reply.group(1) == "Success":
            notes[m.group(2)] = m.group(1)
        else:
            notes[m.group(2)] = "caller"  # the call was already over: the caller had left
    return notes


def test_scenario08_burst() -> None:
    path = next(CAPTURES.glob("scenario08*.ami"))
    events, model = run("scenario08")
    recs = records(events)
    assert len(recs) == 20 and not model.calls
    assert sum(r.outcome == "answered" for r in recs) == 18  # AgentConnect x18
    abandoned = [r for r in recs if r.outcome == "abandoned"]
    assert sorted(r.caller_name for r in abandoned) == ["Burst Caller 17", "Burst Caller 20"]
    assert all(r.hangup_by == "caller" for r in abandoned)
    assert all(r.did == "5551000" and r.direction == "inbound" for r in recs)
    notes = _driver_notes(path)
    assert len(notes) >= 17
    checked = 0
    for r in recs:
        for ch in r.channels:
            if ch in notes:
                assert r.hangup_by == notes[ch], (r.caller_name, ch)
                checked += 1
    assert checked == len(notes)
    # every answered call has a recording named after the caller leg's uniqueid
    for r in recs:
        assert len(r.recordings) == 1 and r.recordings[0].endswith(f"-{r.uniqueids[1]}.wav")
    # queue waits agree with Asterisk's whole-second HoldTime
    holds = {e.call_id: e.wait for e in events if e.kind == "answered"}
    assert len(holds) == 18
    text = path.read_bytes()
    for m in re.finditer(rb"Event: AgentConnect\r\n(?:.*\r\n)*?Linkedid: (\S+)\r\n"
                         rb"(?:.*\r\n)*?HoldTime: (\d+)\r\n", text):
        assert abs(holds[m.group(1).decode()] - int(m.group(2))) < 1.0


@pytest.mark.parametrize("name", ["scenario09-", "scenario09b"])
def test_scenario09_asterisk_shutdown(name: str) -> None:
    events, model = run(name)
    [r] = records(events)
    assert r.hangup_by == "system"  # SoftHangupRequest Cause 4 = shutdown
    assert r.outcome == "answered" and r.agent == "PJSIP/1002"
    assert [e.what for e in events if e.kind == "pbx"][-2:] == ["shutdown", "booted"]
    assert not model.calls


def test_every_capture_replays_cleanly() -> None:
    for path in sorted(CAPTURES.glob("*.ami")):
        model = LiveModel()
        events, ingest = replay_file(path, model)
        assert ingest.stats.malformed == 0 and ingest.stats.model_errors == 0, path.name
        assert not model.calls, f"{path.name}: calls left open {list(model.calls)}"
        for r in records(events):
            assert r.end is not None and r.total_seconds >= r.talk_seconds >= 0
            assert r.hangup_by in ("caller", "agent", "system", "customer")


def test_without_timestamp_fields_the_capture_times_are_used(tmp_path: Path) -> None:
    """manager.conf timestampevents=no: no Timestamp field; receive times stand in."""
    src = next(CAPTURES.glob("scenario01*.ami")).read_bytes()
    stripped = re.sub(rb"Timestamp: [0-9.]+\r\n", b"", src)
    assert b"Timestamp:" not in stripped
    path = tmp_path / "no-timestamps.ami"
    path.write_bytes(stripped)
    events, _ = replay_file(path, LiveModel())
    [r] = records(events)
    # receive times (# t= lines + start_epoch) differ from Asterisk's stamps by < 2 ms
    assert r.talk_seconds == pytest.approx(6.011, abs=0.01)
    assert r.total_seconds == pytest.approx(11.894, abs=0.01)
    assert r.start == pytest.approx(1795465016.78, abs=0.01)


# --------------------------------------------------------------------------- boots


@pytest.mark.parametrize(("name", "expected"), [
    # logged in to an Asterisk up 260 s: not a boot; restarted: one boot
    ("scenario09-", ["shutdown", "booted"]),
    # up 18 s at the first login: it has just booted; stopped and started: another one
    ("scenario09b", ["booted", "shutdown", "booted"]),
    # real-2: up 1090 s, `core restart now`, FullyBooted (Uptime 0) after the relogin
    ("real-2/T7a", ["shutdown", "booted"]),
])
def test_a_boot_is_reported_once_per_boot(name: str, expected: list[str]) -> None:
    events, _ = run(name)
    pbx = [e for e in events if e.kind == "pbx"]
    assert [e.what for e in pbx] == expected


def _fully_booted(uptime: int, stamp: float | None = None) -> bytes:
    """A FullyBooted as Asterisk sends it: with Timestamp when a boot completes, without
    when it answers a login (see the captures)."""
    if stamp is None:
        return (f"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: {uptime}\r\n"
                f"LastReload: {uptime}\r\nStatus: Fully Booted\r\n\r\n").encode()
    return (f"Event: FullyBooted\r\nPrivilege: system,all\r\nTimestamp: {stamp:.6f}\r\n"
            f"Status: Fully Booted\r\nUptime: {uptime}\r\nLastReload: {uptime}\r\n\r\n"
            ).encode()


def test_a_login_again_is_not_a_boot_but_a_restart_is_even_without_shutdown() -> None:
    from ccd.ami.ingest import Ingest

    ingest = Ingest(LiveModel())
    t = 1_796_694_102.478
    booted = []

    def login(at: float, uptime: int, stamp: float | None = None) -> None:
        booted.extend(e.detail for e in ingest.feed(_fully_booted(uptime, stamp), at)
                      if e.kind == "pbx" and e.what == "booted")

    login(t, 1090)                    # ccd starts: Asterisk has been up for a while
    login(t + 30.4, 1120)             # the link dropped and came back: same Asterisk
    login(t + 600.9, 1691)
    login(t + 3600.2, 4687)
    assert booted == []
    # Asterisk was restarted while the link was down (no Shutdown seen) and has been up
    # longer than the last uptime ccd saw by the time ccd logs in again
    login(t + 9000.0, 5000)
    assert booted == ["uptime 5000s"]
    # a boot ccd sees completing (Timestamp), then the login answer of another reconnect
    login(t + 9100.0, 0, t + 9099.9)
    login(t + 9101.3, 1)
    assert booted == ["uptime 5000s", "uptime 0s"]
