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
from ccd.model.live import LiveModel, ModelConfig

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
