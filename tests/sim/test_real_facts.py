"""The simulator against what real Asterisk 22 shows where ccd's call records depend on it:
the IVR's AGI HANGUP (real-3/F2a: SoftHangupRequest Cause 32, then Cause 16 when the
dialplan gives the channel up), the AMI Status a resync reads (scenario07's answers; the
AllVariables / "(null)" behaviour of Asterisk 22.10.1, checked on the loopback rig)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ccd.ami.capture import read_capture
from ccd.ami.parser import FrameSplitter, parse_frame
from ccd.sim.events import Event
from ccd.sim.simulator import SimOptions, Simulator, default_config_dir

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"

SCALE = 50.0


def real_frames(name: str, channel: str) -> list[dict[str, str]]:
    (path,) = [p for p in CAPTURES.glob("real-*/**/*.ami") if p.name.startswith(name)]
    out = []
    for raw in FrameSplitter().feed(read_capture(path)):
        if not raw.startswith(b"Event: "):
            continue
        fields = parse_frame(raw)
        if fields.get("Channel") == channel:
            out.append(fields)
    return out


def teardown(frames: list[dict[str, str]]) -> list[tuple[str, str]]:
    """From the first hang-up request on: requests with their Cause, AGISTATUS, Hangup."""
    out: list[tuple[str, str]] = []
    for f in frames:
        ev = f["Event"]
        if ev in ("HangupRequest", "SoftHangupRequest"):
            out.append((ev, f.get("Cause", "")))
        elif out and ev == "VarSet" and f.get("Variable") == "AGISTATUS":
            out.append((ev, f["Value"]))
        elif out and ev == "Hangup":
            out.append((ev, ""))
    return out


class ByeIvr:
    """A FastAGI script that ends the call like ccd's IVR ``bye`` node: HANGUP, then it
    still sets its result variables on the dead channel, then closes."""

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass
        for cmd in ("HANGUP", 'SET VARIABLE CCD_IVR_RESULT "callback"'):
            writer.write(cmd.encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
            if line.startswith(b"HANGUP"):
                await reader.readline()
        writer.close()

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def _sim(agi: str, tmp_path: Path) -> tuple[Simulator, list[Event]]:
    sim = Simulator(SimOptions(config_dir=default_config_dir(), ami_port=0, time_scale=SCALE,
                               agi=agi, recording_root=tmp_path))
    await sim.start()
    events: list[Event] = []
    sim.engine.subscribe(events.append)
    return sim, events


async def _until(sim: Simulator, events: list[Event], name: str, channel: str) -> None:
    for _ in range(int(sim.clock.real(60) / 0.02)):
        if any(e.name == name and e.get("Channel") == channel for e in events):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {name} on {channel}")


async def test_agi_hangup_is_an_explicit_soft_hangup_like_asterisk(tmp_path: Path) -> None:
    real = teardown(real_frames("F2a", "PJSIP/2000-00000002"))
    assert real == [("SoftHangupRequest", "32"), ("VarSet", "HANGUP"),
                    ("SoftHangupRequest", "16"), ("Hangup", "")]
    ivr = ByeIvr()
    sim, events = await _sim(await ivr.start(), tmp_path)
    try:
        call = sim.call("2000", "5551000")
        await _until(sim, events, "Hangup", call.name)
        mine = [{"Event": e.name, **dict(e.fields)} for e in events
                if e.get("Channel") == call.name]
        assert teardown(mine) == real
    finally:
        await sim.stop()
        await ivr.stop()


async def test_status_tells_what_asterisk_knows_of_a_channel(tmp_path: Path) -> None:
    """AMI Status as ccd's resync reads it: the DNID of an inbound channel (scenario07), a
    variable asked for and not set reads ``(null)``, ``AllVariables`` lists the channel's
    variables without the ``__`` prefix (Asterisk 22.10.1 on the rig)."""
    from sim_support import AmiTestClient

    from ccd.ami.events import ChannelStatus, decode_fields
    from ccd.ami.parser import values

    sim, events = await _sim("127.0.0.1:1", tmp_path)  # FastAGI down: the fallback queue
    ami = await AmiTestClient.connect("127.0.0.1", sim.ami_port)
    try:
        await ami.login()
        call = sim.call("2000", "5551000")
        await _until(sim, events, "QueueCallerJoin", call.name)
        await ami.action("Setvar", Channel=call.name, Variable="__CCD_HANGUP_BY", Value="api")
        _, items = await ami.collect("Status", "StatusComplete", Channel=call.name,
                                     Variables="CCD_HANGUP_BY,CCD_NOT_SET")
        [st] = [i for i in items if i.event == "Status"]
        assert values(st.fields, "Variable") == ["CCD_HANGUP_BY=api", "CCD_NOT_SET=(null)"]
        assert st.get("DNID") == "5551000"
        _, items = await ami.collect("Status", "StatusComplete", AllVariables="true")
        mine = [decode_fields(i.fields) for i in items if i.get("Channel") == call.name]
        [st2] = mine
        assert isinstance(st2, ChannelStatus) and st2.dnid == "5551000"
        assert st2.variables["CCD_HANGUP_BY"] == "api"
        assert st2.variables["MIXMONITOR_FILENAME"].endswith(".wav")  # the fallback's
        assert "CCD_NOT_SET" not in st2.variables
    finally:
        await ami.close()
        await sim.stop()
