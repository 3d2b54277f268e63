"""The call engine in-process: queue strategies and rules, recordings, ccd's dialplan
(asterisk-conf/) with its IVR fallback, feature codes, outbound calls, voicemail.

These tests run on virtual time (conftest.py), so the durations they check (RingTime, queue
timeouts, wrap-up, recording lengths) are exact, whatever else the machine is doing."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from sim_support import CAPTURE_CONFIG, EPOCH

from ccd.sim.events import Event
from ccd.sim.phones import PhoneProfile
from ccd.sim.simulator import SimOptions, Simulator, default_config_dir

SCALE = 50.0


class Recorder:
    """Every event of a simulator, with waiting helpers (in simulated seconds)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.events: list[Event] = []
        self._new = asyncio.Event()
        sim.engine.subscribe(self._on)

    def _on(self, ev: Event) -> None:
        self.events.append(ev)
        self._new.set()

    def of(self, name: str, **fields: str) -> list[Event]:
        return [
            e
            for e in self.events
            if e.name == name and all(e.get(k) == v for k, v in fields.items())
        ]

    async def wait(
        self,
        name: str,
        timeout: float = 60.0,
        start: int = 0,
        pred: Callable[[Event], bool] | None = None,
        **fields: str,
    ) -> Event:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.sim.clock.real(timeout)
        idx = start
        while True:
            while idx < len(self.events):
                e = self.events[idx]
                idx += 1
                if (
                    e.name == name
                    and all(e.get(k) == v for k, v in fields.items())
                    and (pred is None or pred(e))
                ):
                    return e
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no {name} {fields}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)


def _config(tmp_path: Path, base: Path, **files: str) -> Path:
    for f in base.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    for name, text in files.items():
        (tmp_path / name.replace("_", ".")).write_text(text)
    return tmp_path


QUEUES = """
[general]
autofill = yes
[tmpl](!)
timeout = 5
retry = 1
wrapuptime = 0
joinempty = yes
leavewhenempty = no
ringinuse = no
[ring](tmpl)
strategy = ringall
member => PJSIP/1001
member => PJSIP/1002
member => PJSIP/1004
[lin](tmpl)
strategy = linear
member => PJSIP/1003
member => PJSIP/1002
member => PJSIP/1001
[least](tmpl)
strategy = leastrecent
member => PJSIP/1001
member => PJSIP/1002
[wrap](tmpl)
strategy = rrmemory
wrapuptime = 4
member => PJSIP/1001
[short](tmpl)
strategy = ringall
member => PJSIP/1003
[strict](tmpl)
strategy = ringall
joinempty = no
leavewhenempty = yes
member => PJSIP/1001
"""

EXTENSIONS = """
[from-trunk]
exten => 601,1,Goto(q,ring)
exten => 602,1,Goto(q,lin)
exten => 603,1,Goto(q,least)
exten => 604,1,Goto(q,wrap)
exten => 605,1,Set(QTIMEOUT=8)
 same => n,Goto(q,short)
exten => 606,1,Goto(q,strict)
exten => q,1(ring),Set(Q=ring)
 same => n,Goto(go)
 same => n(lin),Set(Q=lin)
 same => n,Goto(go)
 same => n(least),Set(Q=least)
 same => n,Goto(go)
 same => n(wrap),Set(Q=wrap)
 same => n,Goto(go)
 same => n(short),Set(Q=short)
 same => n,Goto(go)
 same => n(strict),Set(Q=strict)
 same => n(go),Answer()
 same => n,MixMonitor(/rec/${UNIQUEID}.wav,b)
 same => n,Queue(${Q},t,,,${IF($["${QTIMEOUT}" != ""]?${QTIMEOUT}:60)})
 same => n,NoOp(after queue ${QUEUESTATUS})
 same => n,Hangup()
[agents]
exten => _X.,1,Hangup()
"""


async def _sim(
    tmp_path: Path,
    phones: dict[str, PhoneProfile] | None = None,
    base: Path = CAPTURE_CONFIG,
    **files: str,
) -> Simulator:
    cfg = _config(tmp_path / "conf", base, **files) if files else base
    sim = Simulator(
        SimOptions(
            config_dir=cfg,
            ami_port=0,
            time_scale=SCALE,
            start_time=EPOCH,
            phones=phones or {},
            recording_root=tmp_path / "rec",
            agi="127.0.0.1:1",
        )
    )
    await sim.start()
    return sim


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    return tmp_path


async def test_ringall_rings_everyone_and_cancels_the_rest(conf_dir: Path) -> None:
    manual = {p: PhoneProfile(answer="manual") for p in ("1001", "1002", "1004")}
    sim = await _sim(conf_dir, manual, queues_conf=QUEUES, extensions_conf=EXTENSIONS)
    rec = Recorder(sim)
    call = sim.call("2000", "601")
    for _ in range(3):
        await rec.wait("DialState", pred=lambda e: True)
    called = {e.get("Interface") for e in rec.of("AgentCalled")}
    assert called == {"PJSIP/1001", "PJSIP/1002", "PJSIP/1004"}
    sim.phone("1002").answer()
    connect = await rec.wait("AgentConnect")
    assert connect.get("Interface") == "PJSIP/1002"
    cancels = rec.of("DialEnd", DialStatus="CANCEL")
    assert {e.get("DestChannel").split("-")[0] for e in cancels} == {"PJSIP/1001", "PJSIP/1004"}
    sim.phone("2000").hangup(call)
    await rec.wait("Hangup", Channel=call.name)
    await sim.stop()


async def test_linear_goes_down_the_list(conf_dir: Path) -> None:
    phones = {"1003": PhoneProfile(answer="never"), "1002": PhoneProfile(answer="busy")}
    sim = await _sim(conf_dir, phones, queues_conf=QUEUES, extensions_conf=EXTENSIONS)
    rec = Recorder(sim)
    call = sim.call("2000", "602")
    connect = await rec.wait("AgentConnect")
    order = [e.get("Interface") for e in rec.of("AgentCalled")]
    assert order == ["PJSIP/1003", "PJSIP/1002", "PJSIP/1001"]
    assert connect.get("Interface") == "PJSIP/1001"
    rna = rec.of("AgentRingNoAnswer")
    assert rna[0].get("RingTime") == "5000"  # the queue's timeout = 5, in milliseconds
    called = rec.of("AgentCalled")
    # the next member is rung after the timeout (5 s) + retry (1 s); a busy phone answers
    # 486 at once, so after it only the retry (app_queue: rna(), then the next round)
    assert [round(b.ts - a.ts, 2) for a, b in itertools.pairwise(called)] == [6.0, 1.0]
    assert rec.of("DialEnd", DialStatus="BUSY")
    assert [e.get("Interface") for e in rec.of("AgentRingNoAnswer")] == ["PJSIP/1003", "PJSIP/1002"]
    sim.phone("2000").hangup(call)
    await rec.wait("Hangup", Channel=call.name)
    await sim.stop()


async def test_leastrecent_and_wrapup(conf_dir: Path) -> None:
    sim = await _sim(conf_dir, queues_conf=QUEUES, extensions_conf=EXTENSIONS)
    rec = Recorder(sim)
    agents = []
    for _ in range(3):
        start = len(rec.events)
        call = sim.call("2000", "603")
        connect = await rec.wait("AgentConnect", start=start)
        agents.append(connect.get("Interface"))
        sim.phone("2000").hangup(call)
        await rec.wait("Hangup", start=start, Channel=call.name)
    assert agents[1] != agents[0] and agents[2] == agents[0]
    # wrapuptime 4: the only member of "wrap" is not rung again before 4 s (whole seconds)
    first = sim.call("2000", "604")
    await rec.wait("AgentConnect", Channel=first.name)
    sim.phone("2000").hangup(first)
    done = await rec.wait("AgentComplete", Channel=first.name)
    second = sim.call("2000", "604")
    connect = await rec.wait("AgentConnect", Channel=second.name)
    # app_queue: time(NULL) - wrapuptime < lastcall, in whole seconds; retried every 1 s
    assert int(connect.ts) - int(done.ts) >= 4
    assert 3.0 < connect.ts - done.ts <= 5.0 + 0.1
    sim.phone("2000").hangup(second)
    await rec.wait("Hangup", Channel=second.name)
    await sim.stop()


async def test_paused_member_and_queue_timeout(conf_dir: Path) -> None:
    sim = await _sim(conf_dir, queues_conf=QUEUES, extensions_conf=EXTENSIONS)
    rec = Recorder(sim)
    assert sim.engine.queues.set_paused("PJSIP/1003", True, "short", "lunch") is None
    call = sim.call("2000", "605")
    join = await rec.wait("QueueCallerJoin")
    status = await rec.wait("VarSet", Variable="QUEUESTATUS")
    assert status.get("Value") == "TIMEOUT"
    assert not rec.of("AgentCalled")
    abandon = rec.of("QueueCallerAbandon")
    leave = rec.of("QueueCallerLeave")
    assert len(abandon) == len(leave) == 1
    assert status.ts - join.ts == pytest.approx(8.0, abs=0.01)  # Queue(...,8): QTIMEOUT
    after = await rec.wait("Newexten", Channel=call.name, Application="NoOp")
    assert after.get("AppData") == "after queue TIMEOUT"
    await rec.wait("Hangup", Channel=call.name)
    await sim.stop()


async def test_joinempty_and_leavewhenempty(conf_dir: Path) -> None:
    sim = await _sim(conf_dir, queues_conf=QUEUES, extensions_conf=EXTENSIONS)
    rec = Recorder(sim)
    sim.engine.queues.set_paused("PJSIP/1001", True, "strict")
    call = sim.call("2000", "606")
    status = await rec.wait("VarSet", Variable="QUEUESTATUS")
    assert status.get("Value") == "JOINEMPTY"
    assert not rec.of("QueueCallerJoin")
    await rec.wait("Hangup", Channel=call.name)
    sim.engine.queues.set_paused("PJSIP/1001", False, "strict")
    sim.phone("1001").profile.answer = "never"
    start = len(rec.events)
    call = sim.call("2000", "606")
    await rec.wait("AgentCalled", start=start)
    sim.engine.queues.set_paused("PJSIP/1001", True, "strict")
    status = await rec.wait("VarSet", start=start, Variable="QUEUESTATUS")
    assert status.get("Value") == "LEAVEEMPTY"
    await rec.wait("Hangup", Channel=call.name)
    await sim.stop()


async def test_ringinuse_no_skips_busy_agent(conf_dir: Path) -> None:
    sim = await _sim(conf_dir, queues_conf=QUEUES, extensions_conf=EXTENSIONS)
    rec = Recorder(sim)
    first = sim.call("2000", "604")
    await rec.wait("AgentConnect", Channel=first.name)
    second = sim.call("2000", "604")
    await rec.wait("QueueCallerJoin", Channel=second.name)
    await sim.clock.sleep(3)
    assert len(rec.of("AgentCalled", Interface="PJSIP/1001")) == 1
    sim.phone("2000").hangup(second)
    sim.phone("2000").hangup(first)
    await rec.wait("Hangup", Channel=first.name)
    await sim.stop()


async def test_recordings_are_real_wav_files(conf_dir: Path) -> None:
    sim = await _sim(
        conf_dir,
        {"1003": PhoneProfile(answer="never")},
        queues_conf=QUEUES,
        extensions_conf=EXTENSIONS,
    )
    rec = Recorder(sim)
    talked = sim.call("2000", "604")
    await rec.wait("BridgeEnter", Channel=talked.name)
    await sim.clock.sleep(4)
    sim.phone("2000").hangup(talked)
    await rec.wait("Hangup", Channel=talked.name)
    never = sim.call("2000", "605")
    await rec.wait("Hangup", Channel=never.name)
    root = conf_dir / "rec" / "rec"
    with wave.open(str(root / f"{talked.uniqueid}.wav")) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (8000, 2, 1)
        # bridged for the 4 simulated seconds the test waited (MixMonitor b), to the ms
        assert w.getnframes() == pytest.approx(4 * 8000, abs=8)
    assert (root / f"{never.uniqueid}.wav").stat().st_size == 44
    await sim.stop()


# --------------------------------------------------------------------------- asterisk-conf


class FakeIvr:
    """A FastAGI server that sets what ccd's IVR sets (or fails the way it fails)."""

    def __init__(self, variables: dict[str, str]) -> None:
        self.variables = variables
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass
        for k, v in self.variables.items():
            writer.write(f'SET VARIABLE {k} "{v}"\n'.encode())
            await writer.drain()
            await reader.readline()
        writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


#: who is logged in where for these tests (asterisk-conf has no static members: agents log
#: in through ccd, which sends QueueAdd like this)
LOGINS = {
    "support": [("PJSIP/1001", "Agent Alice", 0), ("PJSIP/1002", "Agent Bob", 0)],
    "accounts": [("PJSIP/1003", "Agent Carl", 0), ("PJSIP/1004", "Agent Dana", 0)],
    "escalation": [("PJSIP/1004", "Agent Dana", 0), ("PJSIP/1001", "Agent Alice", 0)],
    "overflow": [(f"PJSIP/100{i}", n, 1) for i, n in
                 enumerate(["Agent Alice", "Agent Bob", "Agent Carl", "Agent Dana"], 1)],
}


async def _ccd_sim(tmp_path: Path, agi: str, **phones: PhoneProfile) -> Simulator:
    sim = Simulator(
        SimOptions(
            config_dir=default_config_dir(),
            ami_port=0,
            time_scale=SCALE,
            start_time=EPOCH,
            agi=agi,
            phones=dict(phones),
            recording_root=tmp_path,
        )
    )
    await sim.start()
    assert not any(q.members for q in sim.engine.queues.queues.values())
    for queue, members in LOGINS.items():
        for iface, name, penalty in members:
            assert sim.engine.queues.add_member(queue, iface, penalty=penalty, name=name) is None
    return sim


@pytest.mark.parametrize(
    ("variables", "queue"),
    [
        ({"CCD_QUEUE": "accounts", "CCD_IVR_RESULT": "queue"}, "accounts"),
        ({"CCD_AGI_ERROR": "RuntimeError: boom", "CCD_FALLBACK_QUEUE": "support"}, "support"),
        (None, "support"),  # ccd down: the line's own queue (CCD_LINE_QUEUE of DID 5551000)
    ],
    ids=["ivr-queue", "handler-failed", "ccd-unreachable"],
)
async def test_ccd_dialplan_routes_and_falls_back(
    tmp_path: Path, variables: dict[str, str] | None, queue: str
) -> None:
    ivr = FakeIvr(variables or {})
    agi = await ivr.start() if variables is not None else "127.0.0.1:1"
    sim = await _ccd_sim(tmp_path, agi)
    rec = Recorder(sim)
    call = sim.call("2000", "5551000")
    join = await rec.wait("QueueCallerJoin", Channel=call.name)
    assert join.get("Queue") == queue
    status = rec.of("VarSet", Channel=call.name, Variable="AGISTATUS")
    assert status[0].get("Value") == ("SUCCESS" if variables is not None else "FAILURE")
    if queue != "accounts":
        assert rec.of("Newexten", Channel=call.name, Context="ccd-fallback")
    else:  # ccd, not the dialplan, records queue calls (on answer, per queue policy)
        assert not rec.of("MixMonitorStart", Channel=call.name)
    await rec.wait("AgentConnect", Channel=call.name)
    sim.phone("2000").hangup(call)
    await rec.wait("Hangup", Channel=call.name)
    await sim.stop()
    await ivr.stop()


async def test_ccd_dialplan_survey_after_agent_hangup(tmp_path: Path) -> None:
    ivr = FakeIvr({"CCD_QUEUE": "support", "CCD_SURVEY": "1", "CCD_IVR_RESULT": "queue"})
    sim = await _ccd_sim(tmp_path, await ivr.start())
    rec = Recorder(sim)
    call = sim.call("2000", "5551000")
    connect = await rec.wait("AgentConnect", Channel=call.name)
    agent = sim.engine.find_channel(connect.get("DestChannel"))
    assert agent is not None
    await sim.clock.sleep(2)
    sim.phone(agent.endpoint).hangup(agent)
    complete = await rec.wait("AgentComplete", Channel=call.name)
    assert complete.get("Reason") == "agent"
    await rec.wait("Newexten", Channel=call.name, Context="survey")
    await rec.wait("Hangup", Channel=call.name)
    await sim.stop()
    await ivr.stop()


async def test_ccd_feature_codes_pause_and_login(tmp_path: Path) -> None:
    sim = await _ccd_sim(tmp_path, "127.0.0.1:1")
    rec = Recorder(sim)
    sim.call("1001", "*21")
    pauses = [
        await rec.wait("QueueMemberPause", Queue=q, Interface="PJSIP/1001")
        for q in ("support", "escalation", "overflow")
    ]
    assert {(e.get("Paused"), e.get("PausedReason")) for e in pauses} == {("1", "break")}
    sim.call("1001", "*22")
    await rec.wait("QueueMemberPause", Paused="0", Interface="PJSIP/1001")
    sim.call("1003", "*23")
    added = await rec.wait("QueueMemberAdded", Interface="PJSIP/1003")
    assert (added.get("Queue"), added.get("Membership")) == ("support", "dynamic")
    sim.call("1003", "*24")
    await rec.wait("QueueMemberRemoved", Interface="PJSIP/1003")
    await sim.stop()


async def test_ccd_outbound_call_through_the_trunk(tmp_path: Path) -> None:
    from ccd.sim.originate import OriginateRequest, originate

    sim = await _ccd_sim(tmp_path, "127.0.0.1:1")
    rec = Recorder(sim)
    reason = await originate(
        sim.engine,
        OriginateRequest(
            "PJSIP/1001",
            "ccd-outbound",
            "5559876543",
            1,
            caller=("5559876543", "5559876543"),
            variables=[("CCD_AGENT", "PJSIP/1001")],
        ),
    )
    assert reason == 4
    dial = await rec.wait("DialBegin", pred=lambda e: e.get("Channel").startswith("PJSIP/1001"))
    assert dial.get("DestChannel").startswith("PJSIP/trunk-")
    assert dial.get("DialString") == "5559876543@trunk"
    await rec.wait("BridgeEnter", pred=lambda e: e.get("Channel").startswith("PJSIP/trunk-"))
    await rec.wait("MixMonitorStart")
    sim.phone("trunk").hangup()
    await rec.wait("Hangup", pred=lambda e: e.get("Channel").startswith("PJSIP/1001"))
    await sim.stop()


async def test_ccd_operator_transfer_ends_in_voicemail(tmp_path: Path) -> None:
    ivr = FakeIvr({"CCD_TRANSFER": "3000", "CCD_IVR_RESULT": "transfer"})
    sim = await _ccd_sim(tmp_path, await ivr.start(), **{"1005": PhoneProfile(answer="never")})
    rec = Recorder(sim)
    call = sim.call("2000", "5551000")
    await rec.wait("DialBegin", Channel=call.name)
    await rec.wait("Newexten", Channel=call.name, Application="VoiceMail", timeout=40)
    await sim.clock.sleep(6)
    sim.phone("2000").hangup(call)
    waiting = await rec.wait("MessageWaiting")
    assert waiting.get("Mailbox") == "3000@default"
    inbox = tmp_path / "var/spool/asterisk/voicemail/default/3000/INBOX"
    assert [p.name for p in inbox.iterdir()] == ["msg0000.wav"]
    await sim.stop()
    await ivr.stop()
