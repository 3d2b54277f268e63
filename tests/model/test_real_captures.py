"""The second and third sets of real Asterisk 22 captures (``real-2/``, ``real-3/``) replayed
through the real parser and live model, checked against their ``expected.json`` ground
truth (the phones' ctrl_tcp events and the driver's clock, never ccd's output)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ccd.cli.replay import replay_file
from ccd.model.domain import CallEnded, CallRecord, DomainEvent
from ccd.model.live import LiveModel, ModelConfig, Snapshot

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():  # a checkout elsewhere: ../shared relative to the repo
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"


def capture(name: str) -> Path:
    (path,) = [p for p in CAPTURES.glob("real-*/**/*.ami") if p.name.startswith(name)]
    return path


def expected(name: str) -> dict[str, Any]:
    path = capture(name)
    return json.loads(path.with_name(path.name[:-4] + ".expected.json").read_text())


def run(name: str, model: LiveModel | None = None) -> tuple[list[DomainEvent], LiveModel]:
    model = model or LiveModel(ModelConfig(outbound_contexts=frozenset({"ccd-outbound"})))
    events, ingest = replay_file(capture(name), model)
    assert ingest.stats.malformed == 0 and ingest.stats.model_errors == 0
    return events, model


def records(events: list[DomainEvent]) -> dict[str, CallRecord]:
    return {e.record.call_id: e.record for e in events if isinstance(e, CallEnded)}


def test_epoch_receive_times_stand_in_for_missing_timestamps(tmp_path: Path) -> None:
    """real-2 files carry ``# t=<epoch>``: without Timestamp fields, those are the times."""
    src = capture("T5c").read_bytes()
    stripped = re.sub(rb"Timestamp: [0-9.]+\r\n", b"", src)
    path = tmp_path / "T5c-no-timestamps.ami"
    path.write_bytes(stripped)
    events, _ = replay_file(path, LiveModel())
    [r] = records(events).values()
    truth = expected("T5c")["calls"][0]["driver_times"]
    # the call starts when the customer dials and ends when the phones close it
    assert truth["t_dial"] - 0.1 < r.start < truth["pbx_answer"] + 0.1
    assert r.end == pytest.approx(truth["agent_closed"], abs=0.1)


# ------------------------------------------------------------------ who hung up


def with_setvar_before(src: bytes, event: bytes, channel: bytes, variable: str,
                       value: str) -> bytes:
    """The capture as Asterisk shows it when a controller ran ``Setvar`` on ``channel``
    just before the first ``event`` frame of that channel: the VarSet frame Asterisk 22.10.1
    emits for an AMI Setvar (checked on the loopback rig: privilege dialplan,all, the
    channel snapshot, Variable/Value), stamped 1 ms before that frame."""
    pos = src.index(b"Event: " + event + b"\r\n")
    while b"Channel: " + channel + b"\r\n" not in src[pos:src.index(b"\r\n\r\n", pos)]:
        pos = src.index(b"Event: " + event + b"\r\n", pos + 1)
    frame = src[pos:src.index(b"\r\n\r\n", pos)]
    ts = float(re.search(rb"Timestamp: ([0-9.]+)", frame).group(1)) - 0.001
    snap = frame[frame.index(b"Channel: "):]
    varset = (b"Event: VarSet\r\nPrivilege: dialplan,all\r\nTimestamp: %.6f\r\n" % ts + snap
              + f"\r\nVariable: {variable}\r\nValue: {value}\r\n\r\n".encode())
    line = src.rindex(b"# t=", 0, pos)
    return src[:line] + b"# t=%.6f \n" % ts + varset + src[line:]


def test_ccd_call_hangup_is_the_operators(tmp_path: Path) -> None:
    """T5c: `ccd call hangup` (AMI Hangup of the caller's channel, so no HangupRequest);
    ccd's CCD_HANGUP_BY came back from Asterisk first, so the record names who asked."""
    truth = expected("T5c")["calls"][0]
    events, _ = run("T5c")
    assert records(events)[truth["call_id"]].hangup_by == "caller"  # no VarSet: a guess
    path = tmp_path / "T5c-with-setvar.ami"
    path.write_bytes(with_setvar_before(capture("T5c").read_bytes(), b"BridgeLeave",
                                        truth["caller_channel"].encode(), "CCD_HANGUP_BY",
                                        "cli:root"))
    events, _ = replay_file(path, LiveModel())
    r = records(events)[truth["call_id"]]
    assert (r.hangup_by, r.hangup_requested_by) == ("operator", "cli:root")
    assert r.talk_seconds == pytest.approx(truth["talk_time_s"], abs=0.02)
    assert "CCD_HANGUP_BY" not in r.variables


def test_a_hard_hangup_request_is_the_far_end_even_after_a_setvar(tmp_path: Path) -> None:
    """If ccd's Hangup never happened and the agent's phone sends BYE, the phone hung up."""
    truth = expected("T5e")["calls"][0]
    path = tmp_path / "T5e-with-setvar.ami"
    path.write_bytes(with_setvar_before(capture("T5e").read_bytes(), b"HangupRequest",
                                        b"PJSIP/1002-00000018", "CCD_HANGUP_BY", "panel:bob"))
    events, _ = replay_file(path, LiveModel())
    r = records(events)[truth["call_id"]]
    assert (r.hangup_by, r.hangup_requested_by) == ("agent", "")


def test_the_ivr_bye_node_hung_up() -> None:
    """F2a: the IVR's bye node (AGI HANGUP: SoftHangupRequest Cause 32 while the AGI runs,
    no HangupRequest); the phone saw the PBX close the call."""
    truth = expected("F2a")["calls"][0]
    events, _ = run("F2a")
    r = records(events)[truth["call_id"]]
    assert r.hangup_by == "ivr"
    assert r.end == pytest.approx(truth["times"]["closed"], abs=0.01)


def test_the_external_party_of_a_transfer_to_a_number_hung_up() -> None:
    """F4b: blind transfer to 15557770009 through the trunk; that party hangs up."""
    truth = expected("F4b")["calls"][0]
    events, _ = run("F4b")
    r = records(events)[truth["call_id"]]
    assert r.hangup_by == "external"
    assert [s.agent for s in r.segments] == [truth["agent"], "PJSIP/trunk"]
    assert r.segments[-1].end == pytest.approx(truth["times"]["hangup"], abs=0.01)


# ------------------------------------------------------------------ click-to-dial, spy legs


def test_click_to_dial_is_the_agents_outbound_call() -> None:
    """T6b: `ccd originate 1001 15557770001`: Alice's phone rings first, then the trunk
    leg to the customer phone, which answers, talks 4.692 s and hangs up."""
    truth = expected("T6b")["calls"][0]
    agent_leg, customer_leg = expected("T6b")["asterisk_channels"]
    events, _ = run("T6b")
    r = records(events)[agent_leg["linkedid"]]
    assert (r.direction, r.agent, r.agent_name) == ("outbound", truth["agent"], "Agent Alice")
    assert r.agent_channel == agent_leg["channel"]
    assert r.customer_channel == customer_leg["channel"]
    assert r.dialed == truth["number"]
    # the caller ID the call presents: the trunk leg's ("Support Line" <5551000>)
    assert (r.caller_num, r.caller_name) == ("5551000", "Support Line")
    assert r.variables["CCD_TENANT"] == "2"
    assert (r.outcome, r.hangup_by) == ("answered", "customer")
    assert r.talk_seconds == pytest.approx(truth["talk_time_s"], abs=0.01)
    started = next(e for e in events if e.kind == "call_started")
    assert (started.direction, started.agent, started.tenant) == ("outbound", "PJSIP/1001", "2")


def test_click_to_dial_that_fails_at_once_is_failed() -> None:
    """T6a: the trunk does not resolve; Dial fails at once and the PBX hangs Alice up."""
    truth = expected("T6a")["calls"][0]
    [leg] = expected("T6a")["asterisk_channels"]
    events, _ = run("T6a")
    r = records(events)[leg["linkedid"]]
    assert (r.direction, r.agent, r.dialed) == ("outbound", truth["agent"], truth["number"])
    assert (r.outcome, r.hangup_by, r.talk_seconds) == ("failed", "system", 0)
    assert r.customer_channel == ""
    assert r.end == pytest.approx(truth["driver_times"]["agent_closed"], abs=0.01)


def _without(src: bytes, pattern: bytes) -> bytes:
    """The capture without the frames matching ``pattern`` (and their ``# t=`` lines)."""
    out = re.sub(rb"# t=[^\n]*\n(?:Event: (?:VarSet|QueueMember\w*)\r\n(?:[^\r\n]+\r\n)*\r\n)",
                 lambda m: b"" if re.search(pattern, m.group(0)) else m.group(0), src)
    assert out != src
    return out


@pytest.mark.parametrize("known", ["queue member", "ccd's agents"])
def test_an_originate_of_a_known_agents_phone_is_that_agents_call(tmp_path: Path,
                                                                 known: str) -> None:
    """T6b without ccd's CCD_AGENT/CCD_TENANT (another AMI client's Originate): the agent is
    still the agent, by its queue membership or by ccd's agent list."""
    src = _without(capture("T6b").read_bytes(), rb"Variable: CCD_")
    config = ModelConfig(outbound_contexts=frozenset({"ccd-outbound"}))
    if known == "ccd's agents":
        src = _without(src, rb"Event: QueueMember")
        config.agent_interfaces = frozenset({"PJSIP/1001"})
    path = tmp_path / "T6b-foreign.ami"
    path.write_bytes(src)
    events, _ = replay_file(path, LiveModel(config))
    [r] = records(events).values()
    assert (r.direction, r.agent, r.customer_channel, r.hangup_by) == (
        "outbound", "PJSIP/1001", "PJSIP/trunk-0000001d", "customer")


def test_supervisor_legs_are_spy_calls_not_customer_calls() -> None:
    """T8: Eve listens, whispers and barges on Alice's call from the panel (ChanSpy by
    Originate to her phone), then dials the spy codes 81001 and 8001."""
    exp = expected("T8")
    events, _ = run("T8")
    recs = records(events)
    customer_call = exp["calls"][0]
    main = recs[customer_call["call_id"]]
    assert (main.direction, main.agent, main.hangup_by) == ("inbound", "PJSIP/1001", "caller")
    for spy in exp["supervisor_spy_via_panel"]:
        [chan] = spy["asterisk_1005_channel"]
        r = recs[chan[-1]]
        assert (r.direction, r.supervisor, r.agent, r.spy_mode) == (
            "spy", "PJSIP/1005", "PJSIP/1001", spy["mode"])
        assert r.spied_call == customer_call["call_id"]
        assert (r.outcome, r.hangup_by) == ("answered", "supervisor")
        assert r.caller_num == "1005" and r.dialed == "" and not r.queue
        # listening from ChanSpyStart (just after the phone answered) to the hang-up
        assert r.talk_seconds == pytest.approx(spy["hangup"] - spy["est"], abs=0.15)
    for code in exp["supervisor_dialplan_codes"]:
        [chan] = code["asterisk_1005_channel"]
        r = recs[chan[-1]]
        # the dialplan's ChanSpy(PJSIP/001,...) found nobody to spy on
        assert (r.direction, r.supervisor, r.outcome, r.hangup_by) == (
            "spy", "PJSIP/1005", "failed", "supervisor")
    assert not any(e.kind in ("queued", "answered") and e.call_id != customer_call["call_id"]
                   for e in events)


# ------------------------------------------------------------------ #5 link down at the end


def _note_time(name: str, note: str) -> float:
    text = capture(name).read_bytes().decode(errors="replace")
    return float(re.search(r"# t=([0-9.]+) note driver: " + re.escape(note), text).group(1))


def _until_link_cut(name: str, cut: float) -> LiveModel:
    """The model of a ccd whose AMI link was cut at ``cut``: every frame received before."""
    from ccd.ami.capture import timed_chunks
    from ccd.ami.ingest import Ingest

    model = LiveModel(ModelConfig(outbound_contexts=frozenset({"ccd-outbound"})))
    ingest = Ingest(model)
    for now, chunk in timed_chunks(capture(name).read_bytes()):
        if now >= cut:
            break
        ingest.feed(chunk, now)
    model.link_lost(cut)
    return model


def _recording_seconds(path: str) -> float:
    """The WAV's length from real-2/recordings.txt (a directory listing, sox --i -D)."""
    for line in (capture("T7c").parent / "recordings.txt").read_text().splitlines():
        if line.startswith(path + "\t"):
            return float(line.split("\t")[2])
    raise AssertionError(path)


def test_a_call_ending_while_the_link_is_down_ends_when_its_recording_does() -> None:
    """T7c: ccd's link is cut at the proxy, the caller hangs up during the outage, the link
    comes back ~7 s later with no channel left. ccd's recording of the call (3.52 s) says
    when it ended: the talk is the phones' 3.527 s, not the 14.5 s to the reconnect."""
    truth = expected("T7c")["calls"][0]
    times = truth["driver_times"]
    cut = _note_time("T7c", "proxy-cut")
    model = _until_link_cut("T7c", cut)
    call = model.calls[truth["call_id"]]
    [path] = call.record.recordings
    out = model.reconcile(Snapshot(ts=times["proxy_open"] + 0.5,
                                   recording_seconds={path: _recording_seconds(path)}))
    [r] = [e.record for e in out if isinstance(e, CallEnded)]
    assert (r.hangup_by, r.end_reason, r.end_source) == (
        "unknown", "vanished while the AMI link was down", "recording")
    assert r.talk_seconds == pytest.approx(truth["talk_time_s"], abs=0.01)
    assert r.end == pytest.approx(times["caller_hangup"], abs=0.02)
    assert r.end_window[0] < times["proxy_cut"] and r.end_window[1] > times["proxy_open"]
    stopped = [e for e in out if e.kind == "recording_stopped"]
    assert [e.ts for e in stopped] == [r.end]


def test_a_call_ending_unseen_without_evidence_has_an_unknown_end() -> None:
    """T7c again, but no recording length to read: no end, no durations, the window."""
    truth = expected("T7c")["calls"][0]
    times = truth["driver_times"]
    model = _until_link_cut("T7c", _note_time("T7c", "proxy-cut"))
    out = model.reconcile(Snapshot(ts=times["proxy_open"] + 0.5))
    [e] = [e for e in out if isinstance(e, CallEnded)]
    r = e.record
    assert (r.end, r.talk_seconds, r.total_seconds, e.talk_seconds) == (None, None, None, None)
    assert (r.hangup_by, r.end_source, r.outcome) == ("unknown", "unknown", "answered")
    assert r.end_window[0] <= times["caller_hangup"] <= r.end_window[1]
    assert r.end_window[1] == pytest.approx(times["proxy_open"] + 0.5)
    assert not [x for x in out if x.kind == "recording_stopped"]  # its stop is not known


# ------------------------------------------------------------------ #12 adoption


def frames(name: str) -> list[dict[str, str]]:
    from ccd.ami.capture import read_capture
    from ccd.ami.parser import FrameSplitter, parse_frame

    return [parse_frame(raw) for raw in FrameSplitter().feed(read_capture(capture(name)))
            if raw.startswith(b"Event: ")]


def asterisk_at(name: str, t: float) -> Snapshot:
    """What Asterisk answers a controller that connects at ``t`` (CoreShowChannels,
    QueueStatus, Status with AllVariables), from the capture's events before ``t``, with
    the fields and formats real Asterisk 22 uses (scenario07 carries all three answers;
    Status's DNID is the number an inbound channel was called on)."""
    from ccd.ami import events as ev
    chans: dict[str, dict[str, Any]] = {}
    entries: dict[str, dict[str, Any]] = {}
    for f in frames(name):
        ts = float(f.get("Timestamp", 0))
        if ts >= t:
            break
        e, uid = f["Event"], f.get("Uniqueid", "")
        if e == "Newchannel":
            chans[uid] = {"f": dict(f), "created": ts, "app": "", "data": "", "bridge": "",
                          "vars": {}, "dnid": f["Exten"] if f["ChannelState"] == "4" else ""}
        elif uid in chans:
            c = chans[uid]
            c["f"].update({k: f[k] for k in ("ChannelState", "CallerIDNum", "CallerIDName",
                                              "Context", "Exten") if k in f})
            if e == "Newexten":
                c["app"], c["data"] = f["Application"], f.get("AppData", "")
            elif e == "VarSet":
                c["vars"][f["Variable"].lstrip("_")] = f["Value"]
            elif e == "BridgeEnter":
                c["bridge"] = f["BridgeUniqueid"]
            elif e == "BridgeLeave":
                c["bridge"] = ""
            elif e == "Hangup":
                del chans[uid]
            elif e == "QueueCallerJoin":
                entries[uid] = {"queue": f["Queue"], "position": int(f["Position"]),
                                "join": ts, "channel": f["Channel"]}
            elif e == "QueueCallerLeave":
                entries.pop(uid, None)
    snap = Snapshot(ts=t)
    for uid, c in chans.items():
        f = c["f"]
        base = ("", t, f["Channel"], uid, f["Linkedid"], int(f["ChannelState"]),
                f["CallerIDNum"], f["CallerIDName"], f["Context"], f["Exten"])
        snap.channels.append(ev.CoreShowChannel("CoreShowChannel", *base[1:], c["bridge"],
                                                c["app"], c["data"], int(t - c["created"])))
        snap.status[uid] = ev.ChannelStatus("Status", *base[1:], c["dnid"],
                                            int(t - c["created"]), dict(c["vars"]))
    for uid, q in entries.items():
        snap.entries.append(ev.QueueEntry("QueueEntry", t, q["queue"], q["position"],
                                          q["channel"], uid, "", "", int(t - q["join"])))
    snap.complete_queues = False  # QueueStatus's members are not in these captures
    return snap


def replay_from(name: str, t: float, model: LiveModel) -> list[DomainEvent]:
    """ccd connects at ``t``: the resync, then every event Asterisk sends from then on."""
    from ccd.ami.capture import timed_chunks
    from ccd.ami.ingest import Ingest

    out = model.reconcile(asterisk_at(name, t))
    ingest = Ingest(model)
    for now, chunk in timed_chunks(capture(name).read_bytes()):
        if now >= t:
            out += ingest.feed(chunk, now)
    return out


def test_a_call_adopted_after_ccd_starts_keeps_what_asterisk_knows() -> None:
    """T9: ccd is stopped; the caller falls back to Queue(overflow) (ringall); ccd starts
    while the phones ring and adopts the call: inbound on 5551000, the running fallback
    recording, the wait to within Asterisk's whole second; then Alice answers."""
    truth = expected("T9")["calls"][0]
    times = truth["driver_times"]
    t = _note_time("T9", "ccd-start") + 1.0  # connected about a second after it started
    model = LiveModel(ModelConfig(outbound_contexts=frozenset({"ccd-outbound"})))
    out = replay_from("T9", t, model)
    started = [e for e in out if e.kind == "call_started"]
    assert [(e.direction, e.did, e.adopted) for e in started] == [("inbound", "5551000", True)]
    r = records(out)[truth["call_id"]]
    assert (r.direction, r.did, r.caller_num, r.caller_name) == (
        "inbound", truth["called_number"], truth["caller_number"], "Customer Carol")
    assert (r.queue, r.agent, r.outcome, r.hangup_by) == (
        truth["queue"], truth["agent_answered"], "answered", "caller")
    assert r.recordings == [
        "/var/spool/asterisk/monitor/20261208-014717-overflow-1796694435.14.wav"]
    # the phones rang from the queue join until Alice answered
    assert r.queue_wait == pytest.approx(times["agent_established"] - times["first_ring"],
                                         abs=0.5)
    assert "queue_wait" in r.estimated and "start" in r.estimated
    assert r.start == pytest.approx(times["pbx_answer"], abs=1.0)  # Duration: whole seconds
    assert r.talk_seconds == pytest.approx(truth["talk_time_s"], abs=0.01)  # seen live
    assert r.adopted
    assert [e.kind for e in out if e.kind == "recording_started"] == ["recording_started"]


# ------------------------------------------------------------------ #19 ccd restarts


def _events_until(name: str, t: float) -> list[DomainEvent]:
    """A ccd that ran until ``t`` (then was killed): the domain events it stored."""
    from ccd.ami.capture import timed_chunks
    from ccd.ami.ingest import Ingest

    model = LiveModel(ModelConfig(outbound_contexts=frozenset({"ccd-outbound"})))
    ingest, out = Ingest(model), []
    for now, chunk in timed_chunks(capture(name).read_bytes()):
        if now >= t:
            break
        out += ingest.feed(chunk, now)
    return out


def _ua_event(name: str, ua: str, kind: str) -> float:
    """When phone ``ua`` reported ``kind`` (real-2/ua/<name>-ua-events.jsonl)."""
    (path,) = (capture(name).parent / "ua").glob(f"{name}-*-ua-events.jsonl")
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e.get("ua") == ua and e.get("msg", {}).get("type") == kind:
            return float(e["t"])
    raise AssertionError((name, ua, kind))


def known_from(stored: list[DomainEvent]) -> dict[str, Any]:
    """What ccd reads back at start for the calls still open in what it stored (the
    writer's calls row from call_started, the call's events in order)."""
    from ccd.store.known import known_call

    ended = {e.call_id for e in stored if e.kind == "call_ended"}
    last = max(e.ts for e in stored)
    out = {}
    for s in stored:
        if s.kind != "call_started" or s.call_id in ended:
            continue
        row = (s.call_id, s.direction, s.did, s.caller_num, s.caller_name, s.dialed, s.ts,
               "", None, s.agent, "", s.supervisor, {})
        evs = [(e.kind, e.ts, e.to_dict()) for e in stored
               if getattr(e, "call_id", "") == s.call_id]
        out[s.call_id] = known_call(row, evs, last)
    return out


def test_a_call_across_a_ccd_restart_keeps_what_ccd_knew() -> None:
    """T5e with ccd killed 1 s after Bob answered and back 1.5 s later: the same record as
    if ccd had never stopped (the wait, talk and hold of expected.json), one call_started."""
    truth = expected("T5e")["calls"][0]
    killed, back = 1796693812.0, 1796693813.5
    before = _events_until("T5e", killed)
    assert [e.kind for e in before].count("answered") == 1
    snap = asterisk_at("T5e", back)
    snap.known = known_from(before)
    model = LiveModel(ModelConfig(outbound_contexts=frozenset({"ccd-outbound"})))
    after = model.reconcile(snap)
    from ccd.ami.capture import timed_chunks
    from ccd.ami.ingest import Ingest

    ingest = Ingest(model)
    for now, chunk in timed_chunks(capture("T5e").read_bytes()):
        if now >= back:
            after += ingest.feed(chunk, now)
    assert not [e for e in after if e.kind == "call_started"]
    [r] = records(after).values()
    whole = records(run("T5e")[0])[truth["call_id"]]  # ccd never stopped
    assert (r.direction, r.did, r.queue, r.agent, r.hangup_by) == (
        "inbound", "5551000", "support", "PJSIP/1002", "agent")
    assert r.queue_wait == whole.queue_wait and r.start == whole.start
    assert r.talk_seconds == pytest.approx(truth["talk_time_s_incl_hold"], abs=0.01)
    assert r.hold_seconds == pytest.approx(truth["hold_time_s"], abs=0.01)
    assert r.recordings == whole.recordings
    assert not r.estimated


def test_a_call_that_ended_while_ccd_was_down_is_closed_at_start() -> None:
    """T5e with ccd killed mid-call and back after the call ended: closed at start, its end
    the recording's (ccd started it when Bob answered), not left open for ever."""
    truth = expected("T5e")["calls"][0]
    killed, back = 1796693812.0, 1796693830.0
    before = _events_until("T5e", killed)
    snap = asterisk_at("T5e", back)
    snap.known = known_from(before)
    [path] = next(iter(snap.known.values())).recordings
    snap.recording_seconds = {path: _recording_seconds(path)}
    out = LiveModel().reconcile(snap)
    [e] = [e for e in out if isinstance(e, CallEnded)]
    r = e.record
    assert (r.call_id, r.end_reason, r.hangup_by, r.end_source) == (
        truth["call_id"], "ended while ccd was not running", "unknown", "recording")
    assert (r.direction, r.did, r.queue, r.agent, r.outcome) == (
        "inbound", "5551000", "support", "PJSIP/1002", "answered")
    # the recording ran until the caller's channel closed (after the survey): the phone
    closed = _ua_event("T5e", "2000", "CALL_CLOSED")
    assert r.end == pytest.approx(closed, abs=0.1)
    assert r.talk_seconds >= truth["talk_time_s_incl_hold"] and "talk" in r.estimated
    assert r.end_window[0] == pytest.approx(before[-1].ts)
    # without the recording: unknown, never the start time
    snap.recording_seconds = {}
    [e] = [e for e in LiveModel().reconcile(snap) if isinstance(e, CallEnded)]
    assert (e.record.end, e.talk_seconds, e.record.end_source) == (None, None, "unknown")


def test_no_wrapup_after_a_call_the_agent_placed() -> None:
    """T6b: app_queue's wrap-up follows queue calls only; after her click-to-dial Alice is
    offered the next queue call at once (her phone's device state: not in use)."""
    model = LiveModel(ModelConfig(wrapup={"support": 10.0},
                                  outbound_contexts=frozenset({"ccd-outbound"})))
    events, _ = replay_file(capture("T6b"), model)
    states = [e.state for e in events if e.kind == "agent_state" and e.agent == "PJSIP/1001"]
    assert states == ["ringing", "on_call", "available"]


def test_a_dialplan_that_fails_is_the_pbx_hanging_up() -> None:
    """F7: camp1's contact 15557770011 answers and hangs up; camp2's 15557770014 answers and
    the PBX hangs up 8 ms later (no application AMD: SoftHangupRequest Cause 16 only)."""
    exp = expected("F7")["calls"][0]
    events, _ = run("F7")
    by_number = {}
    for r in records(events).values():
        by_number.setdefault(r.dialed.partition("@")[0], []).append(r)
    [answered] = by_number[exp["camp1"][0]["num"]]
    assert (answered.direction, answered.outcome, answered.hangup_by) == (
        "outbound", "answered", "customer")
    assert answered.end == pytest.approx(exp["camp1"][0]["closed"], abs=0.05)
    [amd] = by_number[exp["camp2"][0]["num"]]
    assert (amd.direction, amd.outcome, amd.hangup_by) == ("outbound", "answered", "system")
    assert amd.end == pytest.approx(exp["camp2"][0]["closed"], abs=0.05)
