"""Shared helpers of the simulator tests: an AMI test client, the captures' IVR script,
and the comparison of an AMI stream with a real capture."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ccd.ami.capture import read_capture
from ccd.ami.parser import FrameSplitter, parse_frame

CAPTURES = Path("/work/shared/asterisk-captures")
CAPTURE_CONFIG = CAPTURES / "config"
#: the simulated wall clock at start (SimOptions.start_time): with the virtual-time loop of
#: these tests (conftest.py) a run is then the same to the microsecond every time
EPOCH = 1_767_268_800.25


# --------------------------------------------------------------------------- AMI client


@dataclass
class Frame:
    fields: dict[str, str]
    raw: bytes
    at: float  # loop time received

    @property
    def event(self) -> str:
        return self.fields.get("Event", "")

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)


@dataclass
class AmiTestClient:
    """A plain asyncio AMI client that keeps every byte and frame it received."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    frames: list[Frame] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    banner: bytes = b""
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _seq: int = 0
    _task: asyncio.Task[None] | None = None
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def connect(cls, host: str, port: int) -> AmiTestClient:
        reader, writer = await asyncio.open_connection(host, port)
        client = cls(reader, writer)
        client._task = asyncio.get_running_loop().create_task(client._read())
        return client

    async def _read(self) -> None:
        splitter = FrameSplitter()
        loop = asyncio.get_running_loop()
        try:
            while True:
                chunk = await self.reader.read(65536)
                if not chunk:
                    break
                self.data += chunk
                for raw in splitter.feed(chunk):
                    if raw.startswith(b"Asterisk Call Manager/"):
                        self.banner = raw
                        self._new.set()
                        continue
                    self.frames.append(Frame(parse_frame(raw), raw, loop.time()))
                    self._new.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            self._new.set()

    async def send(self, action: str, **headers: str | list[str]) -> str:
        """Send an action; returns its ActionID."""
        self._seq += 1
        aid = str(headers.pop("ActionID", f"t-{self._seq}"))
        lines = [f"Action: {action}", f"ActionID: {aid}"]
        for k, v in headers.items():
            for item in v if isinstance(v, list) else [v]:
                lines.append(f"{k}: {item}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()
        return aid

    async def wait_for(
        self, pred: Callable[[Frame], bool], timeout: float = 5.0, start: int = 0
    ) -> Frame:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        idx = start
        while True:
            while idx < len(self.frames):
                f = self.frames[idx]
                idx += 1
                if pred(f):
                    return f
            if self.closed.is_set():
                raise ConnectionError("AMI connection closed while waiting")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError("no matching AMI frame")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), remaining)

    async def action(self, action: str, timeout: float = 5.0, **headers: str | list[str]) -> Frame:
        """Send and wait for the Response with our ActionID."""
        start = len(self.frames)
        aid = await self.send(action, **headers)
        return await self.wait_for(
            lambda f: f.get("ActionID") == aid and "Response" in f.fields, timeout, start
        )

    async def collect(
        self, action: str, complete: str, timeout: float = 5.0, **headers: str
    ) -> tuple[Frame, list[Frame]]:
        """A list action: (response, events up to and including ``complete``)."""
        start = len(self.frames)
        aid = await self.send(action, **headers)
        resp = await self.wait_for(
            lambda f: f.get("ActionID") == aid and "Response" in f.fields, timeout, start
        )
        if resp.get("Response") != "Success":
            return resp, []
        end = await self.wait_for(
            lambda f: f.event == complete and f.get("ActionID") == aid, timeout, start
        )
        items = [
            f
            for f in self.frames[start : self.frames.index(end) + 1]
            if f.get("ActionID") == aid and f.event
        ]
        return resp, items

    async def login(
        self, username: str = "ccd", secret: str = "ccdsecret", events: str = "on"
    ) -> Frame:
        return await self.action("Login", Username=username, Secret=secret, Events=events)

    async def close(self) -> None:
        self.writer.close()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=2.0)

    def events(self, name: str | None = None) -> list[Frame]:
        return [f for f in self.frames if f.event and (name is None or f.event == name)]


# --------------------------------------------------------------------------- IVR script


class CaptureIvr:
    """A FastAGI server running the captures' ``ivr`` script over TCP (the simulator
    reaches it through ccd.sim.agi_client, as Asterisk reached the captures' server)."""

    def __init__(self) -> None:
        self.sessions: list[dict[str, str]] = []
        self.transcripts: list[list[tuple[str, str]]] = []
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        env: dict[str, str] = {}
        transcript: list[tuple[str, str]] = []
        self.transcripts.append(transcript)
        try:
            while True:
                line = (await reader.readline()).decode().rstrip("\n")
                if not line:
                    break
                key, _, value = line.partition(": ")
                env[key] = value
            self.sessions.append(env)

            async def cmd(text: str) -> str:
                writer.write(text.encode() + b"\n")
                await writer.drain()
                reply = (await reader.readline()).decode().rstrip("\n")
                transcript.append((text, reply))
                if reply == "HANGUP":
                    raise ConnectionResetError("caller hung up")
                return reply

            caller = env.get("agi_callerid", "")
            await cmd(f'VERBOSE "FastAGI ivr for {caller} on {env.get("agi_channel")}" 1')
            await cmd("CHANNEL STATUS")
            await cmd('STREAM FILE hello-world ""')
            data = await cmd("GET DATA beep 4000 1")
            value = data.split("=", 1)[1] if "=" in data else ""
            choice = value.split(" ")[0] if value and not value.startswith(" ") else ""
            choice = choice or "none"
            await cmd(f'SET VARIABLE IVR_CHOICE "{choice}"')
            await cmd(f'SET VARIABLE CUSTOMER_ID "C{caller[-6:]}"')
            await cmd("GET VARIABLE CUSTOMER_ID")
            await cmd('GET FULL VARIABLE "${CALLERID(all)} in ${CONTEXT}"')
            await cmd(f'VERBOSE "FastAGI done, choice={choice}" 1')
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


# --------------------------------------------------------------------------- comparison

#: events left out on both sides: transport noise, security, exact variable sets
NOISE = frozenset(
    {
        "RTCPSent",
        "RTCPReceived",
        "SuccessfulAuth",
        "ChallengeSent",
        "RequestBadFormat",
        "RequestNotAllowed",
        "InvalidPassword",
        "DeviceStateChange",
        "VarSet",
        "PeerStatus",
        "ContactStatus",
        "FullyBooted",
        "Shutdown",
        "DialState",
        "NewConnectedLine",
        "NewCallerid",
    }
)
#: events whose position Asterisk itself does not keep stable (stasis/device-state threads;
#: OriginateResponse comes from the originate thread: in the real capture F7 one answered
#: call shows it after the queue's MusicOnHoldStart, another before the channel's Newstate)
FLOATING = frozenset({"QueueMemberStatus", "AgentComplete", "OriginateResponse"})
TOLERANT = {"HoldTime": 1, "TalkTime": 1, "RingTime": 1000}

KEYS = {
    "Newchannel": ("Channel", "ChannelState", "Context", "Exten", "Uniqueid", "Linkedid"),
    "Newstate": ("Channel", "ChannelState"),
    "Newexten": ("Channel", "Context", "Exten", "Priority", "Application", "AppData"),
    "HangupRequest": ("Channel", "Cause"),
    "SoftHangupRequest": ("Channel", "Cause"),
    "Hangup": ("Channel", "Cause", "Cause-txt", "Uniqueid", "Linkedid"),
    "DialBegin": ("Channel", "DestChannel", "DialString", "DestLinkedid"),
    "DialEnd": ("Channel", "DestChannel", "DialStatus"),
    "AGIExecStart": ("Channel", "Command"),
    "AGIExecEnd": ("Channel", "Command", "ResultCode", "Result"),
    "MixMonitorStart": ("Channel",),
    "QueueCallerJoin": ("Channel", "Queue", "Position", "Count"),
    "QueueCallerLeave": ("Channel", "Queue", "Position", "Count"),
    "QueueCallerAbandon": ("Channel", "Queue", "Position", "OriginalPosition", "HoldTime"),
    "AgentCalled": ("Channel", "DestChannel", "Queue", "Interface", "MemberName"),
    "AgentConnect": ("Channel", "DestChannel", "Queue", "Interface", "HoldTime"),
    "AgentComplete": ("Channel", "Queue", "Interface", "Reason", "HoldTime", "TalkTime"),
    "AgentRingNoAnswer": ("Channel", "DestChannel", "Queue", "Interface", "RingTime"),
    "QueueMemberStatus": ("Queue", "Interface", "Status", "Paused"),
    "QueueMemberPause": ("Queue", "Interface", "Paused", "PausedReason", "Membership"),
    "QueueMemberAdded": ("Queue", "Interface", "MemberName", "Membership", "Penalty"),
    "QueueMemberRemoved": ("Queue", "Interface", "Membership"),
    "QueueMemberPenalty": ("Queue", "Interface", "Penalty"),
    "QueueMemberRinginuse": ("Queue", "Interface", "Ringinuse"),
    "MusicOnHoldStart": ("Channel", "Class"),
    "MusicOnHoldStop": ("Channel",),
    "BridgeCreate": ("BridgeUniqueid", "BridgeType"),
    "BridgeEnter": ("BridgeUniqueid", "Channel", "BridgeNumChannels"),
    "BridgeLeave": ("BridgeUniqueid", "Channel", "BridgeNumChannels"),
    "BridgeDestroy": ("BridgeUniqueid",),
    "BridgeMerge": ("ToBridgeUniqueid", "FromBridgeUniqueid"),
    "Hold": ("Channel",),
    "Unhold": ("Channel",),
    "BlindTransfer": (
        "Result",
        "TransfererChannel",
        "TransfereeChannel",
        "Context",
        "Extension",
        "BridgeUniqueid",
    ),
    "AttendedTransfer": (
        "Result",
        "OrigTransfererChannel",
        "SecondTransfererChannel",
        "TransfereeChannel",
        "TransferTargetChannel",
        "DestType",
        "DestBridgeUniqueid",
    ),
    "LocalBridge": ("LocalOneChannel", "LocalTwoChannel", "LocalOptimization"),
    "LocalOptimizationBegin": ("LocalOneChannel", "LocalTwoChannel", "SourceChannel"),
    "LocalOptimizationEnd": ("LocalOneChannel", "LocalTwoChannel"),
    "OriginateResponse": ("Response", "Channel", "Reason", "Context", "Exten", "Application"),
    "DTMFEnd": ("Channel", "Digit", "Direction"),
    "DTMFBegin": ("Channel", "Digit", "Direction"),
}

_CHAN = re.compile(r"((?:PJSIP|Local)/[\w@.\-]+?-[0-9a-f]{8})(;[12])?")
_UID = re.compile(r"\b\d{9,10}\.\d+\b")
_BRIDGE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LONGNUM = re.compile(r"\d{8}-\d{6}")


class Normalizer:
    """Replaces run-specific names (channel suffixes, uniqueids, bridge ids) by the order in
    which they first appear, so two runs of the same flow compare equal."""

    def __init__(self) -> None:
        self.chan: dict[str, str] = {}
        self.counts: Counter[str] = Counter()
        self.uid: dict[str, str] = {}
        self.bridge: dict[str, str] = {}

    def _chan(self, m: re.Match[str]) -> str:
        base = m.group(1)
        if base not in self.chan:
            prefix = base.rsplit("-", 1)[0]
            self.counts[prefix] += 1
            self.chan[base] = f"{prefix}#{self.counts[prefix]}"
        return self.chan[base] + (m.group(2) or "")

    def _uid(self, m: re.Match[str]) -> str:
        return self.uid.setdefault(m.group(0), f"U{len(self.uid) + 1}")

    def _bridge(self, m: re.Match[str]) -> str:
        return self.bridge.setdefault(m.group(0), f"B{len(self.bridge) + 1}")

    def text(self, value: str) -> str:
        value = _CHAN.sub(self._chan, value)
        value = _BRIDGE.sub(self._bridge, value)
        value = _UID.sub(self._uid, value)
        return _LONGNUM.sub("<date>", value)


@dataclass(frozen=True)
class Token:
    name: str
    fields: tuple[tuple[str, str], ...]
    ts: float
    channel: str

    def value(self, key: str) -> str:
        for k, v in self.fields:
            if k == key:
                return v
        return ""

    def __str__(self) -> str:
        return self.name + " " + " ".join(f"{k}={v}" for k, v in self.fields)


def tokens(frames: list[dict[str, str]], noise: frozenset[str] = NOISE) -> list[Token]:
    """Events of a stream as comparable tokens, in order."""
    norm = Normalizer()
    out: list[Token] = []
    for f in frames:
        name = f.get("Event", "")
        if not name or name in noise or ("ActionID" in f and name != "OriginateResponse"):
            continue
        mapped = {k: norm.text(v) for k, v in f.items()}
        keys = KEYS.get(name, ("Channel",))
        fields = tuple((k, mapped.get(k, "")) for k in keys)
        try:
            ts = float(f.get("Timestamp", "0") or 0)
        except ValueError:
            ts = 0.0
        out.append(Token(name, fields, ts, mapped.get("Channel", "")))
    return out


def capture_frames(name: str) -> list[dict[str, str]]:
    path = next(CAPTURES.glob(f"{name}*.ami"))
    splitter = FrameSplitter()
    out = []
    for raw in splitter.feed(read_capture(path)):
        if raw.startswith(b"Asterisk Call Manager/"):
            continue
        out.append(parse_frame(raw))
    return out


def bursts(toks: list[Token], gap: float = 0.25) -> list[list[Token]]:
    """Runs of events with less than ``gap`` seconds between neighbours."""
    groups: list[list[Token]] = []
    last = None
    for t in toks:
        if last is None or t.ts - last > gap or not groups:
            groups.append([])
        groups[-1].append(t)
        last = t.ts
    return groups


def _same(a: Token, b: Token) -> bool:
    if a.name != b.name:
        return False
    for (ka, va), (_kb, vb) in zip(a.fields, b.fields, strict=True):
        if va == vb:
            continue
        tol = TOLERANT.get(ka)
        if (
            tol is not None
            and va.lstrip("-").isdigit()
            and vb.lstrip("-").isdigit()
            and abs(int(va) - int(vb)) <= tol
        ):
            continue
        return False
    return True


def compare(sim: list[Token], cap: list[Token], gap: float = 0.25) -> list[str]:
    """Differences between a simulated and a captured stream (empty = they match).

    The capture is cut into phases at time gaps (``gap`` seconds); the simulated stream,
    in its own order, must fill the same phases: phase by phase the same events (as a
    multiset; HoldTime/TalkTime within a second, RingTime within one), and inside a phase
    the events of each channel in the same order (except FLOATING ones). Only the order of
    events that Asterisk itself emits from different threads within one phase is free.
    """
    problems: list[str] = []
    if len(sim) != len(cap):
        problems.append(f"{len(sim)} events simulated, {len(cap)} captured")
    pos = 0
    for i, c in enumerate(bursts(cap, gap)):
        s = sim[pos : pos + len(c)]
        pos += len(c)
        remaining = list(c)
        extra: list[Token] = []
        for t in s:
            for j, u in enumerate(remaining):
                if _same(t, u):
                    del remaining[j]
                    break
            else:
                extra.append(t)
        if extra or remaining:
            for t in extra:
                problems.append(f"phase {i}: only simulated: {t}")
            for t in remaining:
                problems.append(f"phase {i}: only captured: {t}")
            return problems
        for chan in sorted({t.channel for t in s if t.channel}):
            sseq = [t for t in s if t.channel == chan and t.name not in FLOATING]
            cseq = [t for t in c if t.channel == chan and t.name not in FLOATING]
            if not all(_same(a, b) for a, b in zip(sseq, cseq, strict=True)):
                problems.append(
                    f"phase {i}: order on {chan} differs:\n  sim: "
                    + " / ".join(t.name for t in sseq)
                    + "\n  cap: "
                    + " / ".join(t.name for t in cseq)
                )
    for t in sim[pos:]:
        problems.append(f"after the last phase, only simulated: {t}")
    return problems
