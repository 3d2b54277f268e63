"""The live model of what Asterisk is doing: channels, calls, bridges, queues, agents.

Pure: no sockets, no SQL, no clock. Typed AMI events go in (:meth:`LiveModel.feed`),
domain events come out. Time only enters with the events (their Timestamp) and with
:meth:`LiveModel.tick`, which the daemon calls so wrap-up can end by itself.

How Asterisk's events become facts (learned from the real captures):

* A call is every channel sharing one ``Linkedid``; its record is complete only
  when the last of them hangs up.
* The *customer channel* is the one that joined a queue, else the first channel
  that ran real dialplan (``AppDial``/``AppQueue`` pseudo-applications are the
  outgoing legs, not dialplan), else the first channel.
* Who the caller talks to is derived from bridges, following ``Local/`` channel
  pairs, so direct dials, blind and attended transfers and local-channel
  optimisation all come out as *segments* (party, start, end).
* Who hung up is the first teardown sign on a party of the conversation: a hard
  ``HangupRequest`` (the far end sent BYE), a ``SoftHangupRequest`` (cause 4 =
  Asterisk shutting down, cause 32 during an AGI = the IVR's HANGUP; after a
  dialplan ``Hangup()`` it is the system), or leaving the bridge for no other
  reason. An AMI Hangup raises no request event: a soft sign on a channel that
  carries ``CCD_HANGUP_BY`` (set by ccd just before its Hangup) is ccd's. A party
  is an agent if ccd knows it as one or it is not a trunk leg (trunk channels start
  in an inbound context); else it is external. ``AgentComplete``'s Reason is not
  trusted: Asterisk reports ``caller`` for agent hang-ups made over AMI.
* A queue wait ends in an answer (``AgentConnect``), an abandon (the caller's own
  channel asked to hang up) or an exit (the caller goes on in the dialplan with a
  ``QUEUESTATUS``). ``QueueCallerAbandon`` alone is not proof: app_queue raises it
  for empty-queue and timeout exits too.
* A ``Newexten`` on a channel that is in a bridge means it was redirected.
* An Originate (a ``DialBegin`` without a calling channel) that rings an agent's
  phone first is that agent's call: the party its leg dials is the customer. A
  ChanSpy leg is a supervisor's ``spy`` call, never a customer call.
* What ccd did not see is never made up: a call that vanished while the link was
  down ends when its recording does (MixMonitor writes until hang-up) or at an
  unknown time within a window; adopted calls keep what Asterisk (Status, QueueStatus)
  and ccd's own store still know, and say which values are whole-second estimates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ccd.ami import events as ev
from ccd.model import domain as d
from ccd.model.pbx import BootTracker

log = logging.getLogger(__name__)

PSEUDO_APPS = frozenset({"AppDial", "AppDial2", "AppQueue", "AppDial(Outgoing Line)"})
AGI_APPS = frozenset({"AGI", "EAGI", "DeadAGI"})
SOFTHANGUP_SHUTDOWN = 4  # SoftHangupRequest Cause: AST_SOFTHANGUP_SHUTDOWN
SOFTHANGUP_APPUNLOAD = 16  # AST_SOFTHANGUP_APPUNLOAD: the PBX thread gives the channel up
SOFTHANGUP_EXPLICIT = 32  # AST_SOFTHANGUP_EXPLICIT: AGI HANGUP, CLI "channel request hangup"
STATE_UP = 6

# QueueMemberStatus Status = Asterisk device state
DEV_NOT_INUSE, DEV_INUSE, DEV_BUSY, DEV_INVALID, DEV_UNAVAILABLE = 1, 2, 3, 4, 5
DEV_RINGING, DEV_RINGINUSE, DEV_ONHOLD = 6, 7, 8


@dataclass(slots=True)
class ModelConfig:
    """What the model needs to know about the site (from ccd's configuration)."""

    inbound_contexts: frozenset[str] = frozenset({"from-trunk"})
    outbound_contexts: frozenset[str] = frozenset()
    agent_interfaces: frozenset[str] = frozenset()  # agents ccd knows (its database)
    dids: frozenset[str] = frozenset()  # the numbers trunk calls arrive on (its database)
    wrapup: dict[str, float] = field(default_factory=dict)  # queue -> seconds
    default_wrapup: float = 0.0
    call_variables: frozenset[str] = frozenset({"CUSTOMER_ID", "IVR_CHOICE"})
    variable_prefix: str = "CCD_"
    #: channel-name prefix of ccd's hold line (``[dialplan] hold_exten@hold_context``): an
    #: agent held there has stepped out of the caller's bridge but is still in the call
    hold_line: str = "Local/70@ccd-hold-"


@dataclass(slots=True)
class Channel:
    uniqueid: str
    name: str
    linkedid: str
    created: float
    state: int
    first_state: int
    caller_num: str
    caller_name: str
    context: str
    exten: str
    home_context: str = ""  # the context it was created in (a trunk's: an inbound context)
    own_num: str = ""  # the caller ID it was created with (its endpoint's own)
    own_name: str = ""
    originated: bool = False  # created by an Originate (a DialBegin without a caller)
    dnid: str = ""  # adopted channels: the number dialled to reach it (AMI Status DNID)
    bridge: str = ""
    partner: str = ""  # the other half of a Local/ channel pair
    hangup_by: str = ""  # CCD_HANGUP_BY: who asked ccd to hang this channel up
    dialplan: bool = False  # ran real dialplan
    dialplan_hangup: bool = False  # executed Hangup()
    left_by_transfer: bool = False
    redirected: bool = False
    held_since: float | None = None
    held_for: str = ""  # the agent whose hold it is
    agi_script: str = ""
    agi_since: float = 0.0
    pending_recording: str = ""
    pending_recording_opts: str = ""  # options of the dialplan's MixMonitor() about to start
    recording: str = ""
    recording_since: float = 0.0
    recording_opts: str = ""
    answered: float | None = None

    @property
    def is_local(self) -> bool:
        return self.name.startswith("Local/")

    @property
    def interface(self) -> str:
        return interface_of(self.name)


@dataclass(slots=True)
class QueueWait:
    queue: str
    joined: float
    position: int
    original_position: int
    caller_hangup: bool = False
    left: float | None = None
    connected: bool = False
    answered_uid: str = ""  # agent leg that answered (DialEnd ANSWER), before AgentConnect
    ringing: dict[str, str] = field(default_factory=dict)  # agent uniqueid -> interface


@dataclass(slots=True)
class Call:
    call_id: str
    record: d.CallRecord
    channels: dict[str, Channel] = field(default_factory=dict)  # alive
    every: dict[str, Channel] = field(default_factory=dict)  # alive and gone, in order
    customer: str = ""  # uniqueid
    customer_from_queue: bool = False
    started: bool = False
    wait: QueueWait | None = None
    pending_exit: QueueWait | None = None
    peers: frozenset[str] = frozenset()  # uniqueids of parties talking to the customer
    open_segments: dict[str, d.Segment] = field(default_factory=dict)
    party_uids: set[str] = field(default_factory=set)  # channels that talked to the caller
    queue_legs: dict[str, str] = field(default_factory=dict)  # agent uid -> queue (AgentConnect)
    end_signal: tuple[str, str] | None = None  # (party, uniqueid)
    local_opt: int = 0
    spy: dict[str, Any] | None = None  # a supervisor's ChanSpy leg: uid, mode, agent ...
    agent_uid: str = ""  # an Originate that rang a known agent first: the agent's channel
    known: KnownCall | None = None  # what ccd had stored before it (re)started
    last_cause: int = 0
    last_cause_txt: str = ""
    shutdown: bool = False


@dataclass(slots=True)
class Membership:
    paused: bool = False
    reason: str = ""
    penalty: int = 0
    wrapup: int = 0


@dataclass(slots=True)
class Agent:
    interface: str
    name: str = ""
    memberships: dict[str, Membership] = field(default_factory=dict)
    device: int = DEV_NOT_INUSE
    ringing: dict[str, str] = field(default_factory=dict)  # agent channel uid -> call id
    calls: dict[str, str] = field(default_factory=dict)  # agent channel uid -> call id
    held: bool = False
    wrapup_until: float | None = None
    last_call: str = ""  # the call whose wrap-up this is
    state: str = "logged_out"
    reason: str = ""
    since: float = 0.0
    call_id: str = ""

    @property
    def paused(self) -> bool:
        return any(m.paused for m in self.memberships.values())

    @property
    def pause_reason(self) -> str:
        for m in self.memberships.values():
            if m.paused and m.reason:
                return m.reason
        return ""


@dataclass(slots=True)
class Queue:
    name: str
    waiting: dict[str, float] = field(default_factory=dict)  # call id -> joined
    strategy: str = ""


@dataclass(slots=True)
class Snapshot:
    """Asterisk's current truth read after a (re)connect."""

    ts: float
    channels: list[ev.CoreShowChannel] = field(default_factory=list)
    members: list[ev.QueueMemberEvent] = field(default_factory=list)
    entries: list[ev.QueueEntry] = field(default_factory=list)
    queues: list[ev.QueueParams] = field(default_factory=list)
    complete_queues: bool = True  # QueueStatus answered for every queue
    #: length in seconds of the recordings still running on calls that vanished (the WAV
    #: files Asterisk wrote: what it still tells about when those calls ended)
    recording_seconds: dict[str, float] = field(default_factory=dict)
    #: AMI Status of each channel (``AllVariables``): DNID and channel variables
    status: dict[str, ev.ChannelStatus] = field(default_factory=dict)
    #: calls ccd had stored as still open when it started (what it knew of them)
    known: dict[str, KnownCall] = field(default_factory=dict)
    why_gone: str = "vanished while the AMI link was down"  # end_reason of vanished calls


@dataclass(slots=True)
class KnownCall:
    """What ccd had stored about a call that was still open when ccd (re)started: kept for
    the call if Asterisk still has it, closed with it if not."""

    record: d.CallRecord  # direction, DID, caller, start, queue, agent, recordings, IVR ...
    last_seen: float  # known alive until then (the last event ccd stored)
    queued_at: float | None = None  # still waiting in ``record.queue`` since then
    talking_since: dict[str, float] = field(default_factory=dict)  # channel -> since
    recordings: dict[str, float] = field(default_factory=dict)  # running: path -> since


def interface_of(channel_name: str) -> str:
    """``PJSIP/1001-0000002a`` -> ``PJSIP/1001``; Local channels keep their base name."""
    base, _, _ = channel_name.partition(";")
    i = base.rfind("-")
    return base[:i] if i > 0 else base


def _local_base(name: str) -> str:
    return name.rpartition(";")[0] if ";" in name else ""


class LiveModel:
    """The call centre as Asterisk reports it. Feed it events; read its facts."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        self.config = config or ModelConfig()
        self.channels: dict[str, Channel] = {}
        self.calls: dict[str, Call] = {}
        self.bridges: dict[str, set[str]] = {}
        self.agents: dict[str, Agent] = {}
        self.queues: dict[str, Queue] = {}
        self.last_ts = 0.0
        self.pbx = BootTracker()  # tells a boot from a reconnect (FullyBooted's Uptime)
        self.last_seen = 0.0  # the last event before the AMI link went down
        self.ignored = 0
        self._source = ""  # tags agent_state events ("resync" while reconciling)
        self._adopting = False  # bridges found by a resync: talk that began unseen
        self._locals: dict[str, str] = {}  # "Local/x@y-0001" -> uniqueid of ;1 or ;2 seen first
        self._handlers = {
            ev.Newchannel: self._newchannel,
            ev.Newstate: self._newstate,
            ev.NewCallerid: self._newcallerid,
            ev.Newexten: self._newexten,
            ev.VarSet: self._varset,
            ev.HangupRequest: self._hangup_request,
            ev.Hangup: self._hangup,
            ev.Hold: self._hold,
            ev.Unhold: self._unhold,
            ev.MixMonitor: self._mixmonitor,
            ev.BridgeEvent: self._bridge,
            ev.LocalBridge: self._local_bridge,
            ev.LocalOptimization: self._local_optimization,
            ev.QueueCallerEvent: self._queue_caller,
            ev.AgentEvent: self._agent_event,
            ev.QueueMemberEvent: self._member,
            ev.BlindTransfer: self._blind_transfer,
            ev.AttendedTransfer: self._attended_transfer,
            ev.SystemEvent: self._system,
            ev.QueueParams: self._queue_params,
            ev.DialEnd: self._dial_end,
            ev.DialBegin: self._dial_begin,
            ev.ChanSpy: self._chanspy,
        }

    # ------------------------------------------------------------------ public

    def feed(self, event: ev.AmiEvent) -> list[d.DomainEvent]:
        """Apply one typed AMI event; return the domain events it produced."""
        handler = self._handlers.get(type(event))
        if handler is None:
            self.ignored += 1
            return []
        if event.ts > self.last_ts:
            self.last_ts = event.ts
        out: list[d.DomainEvent] = []
        handler(event, out)
        return out

    def tick(self, now: float) -> list[d.DomainEvent]:
        """Advance the model's clock: agents whose wrap-up ended become available."""
        out: list[d.DomainEvent] = []
        for agent in self.agents.values():
            if agent.wrapup_until is not None and agent.wrapup_until <= now:
                self._agent_update(agent, now, out)
        return out

    def link_lost(self, ts: float) -> list[d.DomainEvent]:
        """The AMI link dropped: nothing changes until the resync tells the truth (calls are
        known alive up to the last event received)."""
        self.last_seen = self.last_ts or ts
        return [d.PbxEvent(ts, "link_lost")]

    def reconcile(self, snap: Snapshot) -> list[d.DomainEvent]:
        """Align the model with Asterisk's current truth after a (re)connect.

        Calls whose channels vanished while the link was down are closed with
        ``end_reason`` saying so; channels Asterisk has that the model does not
        are adopted as calls; queue memberships and pauses are replaced by
        Asterisk's.
        """
        self._source = "resync"
        try:
            return self._reconcile(snap)
        finally:
            self._source = ""

    def _reconcile(self, snap: Snapshot) -> list[d.DomainEvent]:
        out: list[d.DomainEvent] = []
        now = snap.ts
        present = {c.uniqueid: c for c in snap.channels}
        linked = {c.linkedid for c in snap.channels}
        # 1. channels that vanished: their calls ended while ccd could not see it. The end
        # is what Asterisk still tells (a recording's length) or unknown, never "now".
        last_seen = self.last_seen or now
        ends: dict[str, float | None] = {}
        for call in self.calls.values():
            if call.channels and not any(u in present for u in call.channels):
                ends[call.call_id] = self._end_from_recordings(call, snap, last_seen)

        def customers_first(uid: str) -> int:
            call = self.calls.get(self.channels[uid].linkedid)
            return 0 if call is not None and call.customer == uid else 1

        for uid in sorted((u for u in self.channels if u not in present), key=customers_first):
            if uid not in self.channels:
                continue
            ch = self.channels[uid]
            call = self.calls.get(ch.linkedid)
            end = ends.get(ch.linkedid)
            self._remove_channel(ch, now, out, vanished=True, stop=end)
            if call is not None and not call.channels:
                self._finish(call, now, out, end_reason=snap.why_gone, end=end,
                             window=(last_seen, max(now, last_seen, end or now)))
        # calls ccd had stored as open that Asterisk no longer has: ended while ccd was down
        for call_id, known in snap.known.items():
            if call_id not in linked and call_id not in self.calls:
                self._finish_known(known, snap, out)
        # 2. channels that appeared: adopted with what Asterisk (and ccd's store) still know
        adopted: dict[str, Call] = {}
        for c in snap.channels:
            if c.uniqueid in self.channels:
                self.channels[c.uniqueid].state = c.state
                continue
            call = self._adopt_channel(c, now, snap.status.get(c.uniqueid))
            adopted.setdefault(call.call_id, call)
        for call in adopted.values():
            known = snap.known.get(call.call_id)
            if known is not None and not call.started:
                self._restore(call, known, now)
        # 3. queue entries
        entries = {e.uniqueid: e for e in snap.entries}
        for call in self.calls.values():
            cust = call.channels.get(call.customer)
            if call.wait and not call.wait.connected and cust and cust.uniqueid not in entries \
                    and snap.complete_queues:
                call.pending_exit, call.wait = call.wait, None
                self._queue_remove(call)
        for e in snap.entries:
            ch = self.channels.get(e.uniqueid)
            if ch is None:
                continue
            call = self.calls[ch.linkedid]
            if call.wait is None:
                call.customer, call.customer_from_queue = ch.uniqueid, True
                known = call.known
                if known is not None and known.queued_at is not None \
                        and known.record.queue == e.queue:
                    joined = known.queued_at  # what ccd saw: to the millisecond
                else:  # Asterisk's Wait is whole seconds, truncated: +-0.5 s at worst
                    joined = now - e.wait - 0.5
                    if "queue_wait" not in call.record.estimated:
                        call.record.estimated.append("queue_wait")
                call.wait = QueueWait(e.queue, joined, e.position, e.position)
                call.record.queue = call.record.queue or e.queue
                if call.record.queue_position is None:
                    call.record.queue_position = e.position
                self.queues.setdefault(e.queue, Queue(e.queue)).waiting[call.call_id] = \
                    call.wait.joined
        for call in adopted.values():
            self._start_adopted(call, now, out)
        self._adopting = True
        try:
            for c in snap.channels:
                if c.bridge:
                    ch = self.channels.get(c.uniqueid)
                    if ch is not None and ch.bridge != c.bridge:
                        self._enter_bridge(ch, c.bridge, now, out)
        finally:
            self._adopting = False
        # 4. queue members
        if snap.complete_queues:
            seen: dict[str, set[str]] = {}
            for m in snap.members:
                seen.setdefault(m.interface, set()).add(m.queue)
            for q in snap.queues:
                self.queues.setdefault(q.queue, Queue(q.queue, strategy=q.strategy))
            for agent in list(self.agents.values()):
                gone = [q for q in agent.memberships if q not in seen.get(agent.interface, set())]
                for q in gone:
                    del agent.memberships[q]
                if gone:
                    self._agent_update(agent, now, out)
        for m in snap.members:
            self._member(m, out, now=now)
        out.append(d.PbxEvent(now, "resynced",
                              f"{len(snap.channels)} channels, {len(self.calls)} calls"))
        return out

    def _finish_known(self, known: KnownCall, snap: Snapshot, out: list[d.DomainEvent]) -> None:
        """A call ccd had stored as open and Asterisk no longer has: it ended while ccd was
        not running. Closed with what ccd knew, its end from a recording's length or
        unknown (never the time ccd came back)."""
        now = snap.ts
        rec = d.record_from_dict(known.record.to_dict())
        call = Call(rec.call_id, rec, started=True, known=known)
        for name, since in known.talking_since.items():
            rec.segments.append(d.Segment(interface_of(name), name, since))
        last_seen = known.last_seen
        ends = [since + snap.recording_seconds[path] for path, since in
                known.recordings.items() if path in snap.recording_seconds]
        end = max(ends) if ends else None
        if end is not None and not last_seen - 1.0 <= end <= now + 3600.0:
            end = None
        if end is not None:
            end = max(end, last_seen)
        for seg in rec.segments:
            if seg.end is None:
                seg.end = end
                if end is not None and "talk" not in rec.estimated:
                    rec.estimated.append("talk")
        self._finish(call, now, out, end_reason="ended while ccd was not running", end=end,
                     window=(last_seen, max(now, last_seen, end or now)))

    def _restore(self, call: Call, known: KnownCall, now: float) -> None:
        """An adopted call ccd had stored as open: it keeps what ccd already knew (no second
        call_started; its start, DID, queue, wait, agent and talk as they were seen)."""
        call.known = known
        rec = call.record
        old = known.record
        for f in ("direction", "did", "caller_num", "caller_name", "dialed", "queue",
                  "queue_wait", "queue_position", "outcome", "agent", "agent_name",
                  "agent_channel", "customer_channel", "supervisor", "spy_mode", "spied_call",
                  "answer"):
            value = getattr(old, f)
            if value not in ("", None):
                setattr(rec, f, value)
        rec.start = old.start or rec.start
        rec.ivr = list(old.ivr) + rec.ivr
        rec.segments = [*(sg for sg in old.segments if sg.end is not None), *rec.segments]
        rec.transfers = list(old.transfers)
        rec.holds, rec.hold_seconds = list(old.holds), old.hold_seconds
        rec.recordings = list(dict.fromkeys([*old.recordings, *rec.recordings]))
        pairs = dict(zip(old.uniqueids, old.channels, strict=False))
        pairs.update(zip(rec.uniqueids, rec.channels, strict=False))
        rec.uniqueids, rec.channels = list(pairs), list(pairs.values())
        rec.variables = {**old.variables, **rec.variables}
        rec.adopted = True
        rec.estimated = [e for e in rec.estimated if e != "start" and not (
            e == "queue_wait" and old.queue_wait is not None)]
        for ch in call.channels.values():
            if ch.name == old.customer_channel:
                call.customer = ch.uniqueid
            if ch.name == old.agent_channel and old.direction == "outbound" and \
                    old.customer_channel != ch.name:
                call.agent_uid = ch.uniqueid
            if ch.recording and ch.recording in known.recordings:
                ch.recording_since = known.recordings[ch.recording]
        if old.direction == "spy":
            sup = next((c for c in call.channels.values() if c.name == old.customer_channel),
                       None)
            if sup is not None:
                self._spy(call, sup, mode=old.spy_mode, agent=old.agent)
        call.started = True  # its call_started is stored already

    def _end_from_recordings(self, call: Call, snap: Snapshot, last_seen: float
                             ) -> float | None:
        """When a call that vanished ended, by the recordings still running on it: a
        MixMonitor without the ``b`` option writes until its channel hangs up, so its start
        plus the WAV's length is the end. None when nothing tells (or it contradicts)."""
        found = []
        for ch in call.channels.values():
            secs = snap.recording_seconds.get(ch.recording) if ch.recording else None
            if secs is not None and "b" not in ch.recording_opts:
                found.append(ch.recording_since + secs)
        if not found:
            return None
        end = max(found)
        if end < last_seen - 1.0 or end > snap.ts + 3600.0:
            return None  # shorter than what ccd saw, or absurdly long: not the end
        # (snap.ts is ccd's estimate of Asterisk's clock: the file's length is Asterisk's)
        return max(end, last_seen)

    # ------------------------------------------------------------------ channels

    def _call_for(self, linkedid: str, ts: float) -> Call:
        call = self.calls.get(linkedid)
        if call is None:
            call = Call(linkedid, d.CallRecord(call_id=linkedid, start=ts))
            self.calls[linkedid] = call
        return call

    def _newchannel(self, e: ev.Newchannel, out: list[d.DomainEvent]) -> None:
        if e.uniqueid in self.channels:
            return  # duplicate
        call = self._call_for(e.linkedid, e.ts)
        ch = Channel(e.uniqueid, e.channel, e.linkedid, e.ts, e.state, e.state, e.caller_num,
                     e.caller_name, e.context, e.exten, home_context=e.context,
                     own_num=e.caller_num, own_name=e.caller_name)
        self.channels[e.uniqueid] = ch
        call.channels[e.uniqueid] = ch
        call.every[e.uniqueid] = ch
        call.record.uniqueids.append(e.uniqueid)
        call.record.channels.append(e.channel)
        if e.ts < call.record.start or not call.record.start:
            call.record.start = e.ts
        base = _local_base(e.channel)
        if base:
            other = self._locals.pop(base, None)
            if other and other in self.channels:
                ch.partner = other
                self.channels[other].partner = ch.uniqueid
            else:
                self._locals[base] = e.uniqueid

    def _newstate(self, e: ev.Newstate, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.uniqueid)
        if ch is None:
            return
        ch.state = e.state
        if e.state == STATE_UP and ch.answered is None:
            ch.answered = e.ts

    def _newcallerid(self, e: ev.NewCallerid, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.uniqueid)
        if ch is None:
            return
        ch.caller_num, ch.caller_name = e.caller_num, e.caller_name
        call = self.calls.get(ch.linkedid)
        if call and not call.started and call.customer == ch.uniqueid:
            call.record.caller_num, call.record.caller_name = e.caller_num, e.caller_name

    def _newexten(self, e: ev.Newexten, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.uniqueid)
        if ch is None or e.application in PSEUDO_APPS:
            return
        call = self.calls[ch.linkedid]
        if ch.bridge and not ch.redirected and e.exten != "h":
            self._redirected(call, ch, e, out)
        if ch.agi_script and e.application not in AGI_APPS:
            self._ivr_left(call, ch, e.ts, "", out)
        if e.application == "ChanSpy" and call.spy is None:
            self._spy(call, ch, mode=_spy_mode(e.appdata.partition(",")[2]))
        if not ch.dialplan:
            ch.dialplan = True
            ch.context, ch.exten = e.context, e.exten
            ch.caller_num, ch.caller_name = e.caller_num or ch.caller_num, \
                e.caller_name or ch.caller_name
            if not call.started and ch.originated and not call.agent_uid \
                    and self._known_agent(call, ch):
                call.agent_uid = ch.uniqueid  # known as an agent by now (e.g. a member)
            if not call.started and (ch.uniqueid == call.agent_uid or call.spy is not None):
                self._start_call(call, e.ts, out)
            elif not call.started and not call.customer:
                call.customer = ch.uniqueid
                self._start_call(call, e.ts, out)
        if e.application in AGI_APPS:
            script = e.appdata.split(",", 1)[0]
            if "://" in script:
                script = script.split("://", 1)[1].partition("/")[2] or script
            ch.agi_script, ch.agi_since = script, e.ts
            out.append(d.IvrEntered(e.ts, call.call_id, ch.name, script))
        elif e.application == "Hangup":
            ch.dialplan_hangup = True
        elif e.application == "MixMonitor":  # the dialplan's: its options matter (b)
            ch.pending_recording_opts = e.appdata.split(",")[1] if "," in e.appdata else ""

    def _start_call(self, call: Call, ts: float, out: list[d.DomainEvent],
                    adopted: bool = False) -> None:
        if call.started:
            return
        call.started = True
        rec = call.record
        rec.adopted = adopted
        if call.spy is not None:
            self._start_spy(call, ts, out, adopted)
            return
        if call.agent_uid:
            self._start_agent_call(call, ts, out, adopted)
            return
        cust = call.every.get(call.customer)
        if cust is None and call.every:
            cust = next(iter(call.every.values()))
            call.customer = cust.uniqueid
        first = call.every.get(call.call_id) or cust
        if cust is not None:
            rec.customer_channel = cust.name
            rec.caller_num = rec.caller_num or cust.caller_num
            rec.caller_name = rec.caller_name or cust.caller_name
            if cust.dialplan and cust.context in self.config.inbound_contexts:
                rec.direction, rec.did = "inbound", cust.exten
            elif adopted and cust.dnid and self._is_did(cust):
                rec.direction, rec.did = "inbound", cust.dnid  # it came in on that number
            elif (first is not None and first.first_state == 0 and not adopted) \
                    or cust.context in self.config.outbound_contexts \
                    or "CCD_ATTEMPT" in rec.variables:
                rec.direction = "outbound"
            else:
                rec.direction = "internal"
        out.append(d.CallStarted(ts, call.call_id, rec.direction, rec.did, rec.caller_num,
                                 rec.caller_name, cust.name if cust else "",
                                 cust.uniqueid if cust else "", adopted, rec.dialed,
                                 tenant=rec.variables.get("CCD_TENANT", ""), start=rec.start))

    def _is_did(self, ch: Channel) -> bool:
        """An adopted channel's DNID is a DID: one of ccd's, or (ccd knows none) any number
        dialled to reach a phone that is not an agent's."""
        if self.config.dids:
            return ch.dnid in self.config.dids
        return not ch.is_local and ch.interface not in self.agents \
            and ch.interface not in self.config.agent_interfaces

    def _start_agent_call(self, call: Call, ts: float, out: list[d.DomainEvent],
                          adopted: bool) -> None:
        """A call an agent places (click-to-dial, a preview campaign, an Originate of an
        agent's phone): the agent's leg is the agent, the party it dials the customer."""
        rec = call.record
        ach = call.every[call.agent_uid]
        known = self.agents.get(ach.interface)
        rec.agent, rec.agent_channel = ach.interface, ach.name
        rec.agent_name = rec.agent_name or (known.name if known else "") or ach.own_name
        outbound = ach.context in self.config.outbound_contexts
        rec.direction = "outbound" if outbound else "internal"
        # what was dialled: the number in the outbound context, else what the agent's leg
        # dials next (the Originate's own dial string rang the agent)
        rec.dialed = ach.exten if outbound and ach.exten not in ("", "s") else ""
        cust = call.every.get(call.customer)
        if cust is not None:
            self._customer_leg(call, cust)
        out.append(d.CallStarted(ts, call.call_id, rec.direction, rec.did, rec.caller_num,
                                 rec.caller_name, cust.name if cust else "",
                                 cust.uniqueid if cust else "", adopted, rec.dialed,
                                 agent=rec.agent, tenant=rec.variables.get("CCD_TENANT", ""),
                                 start=rec.start))

    def _customer_leg(self, call: Call, cust: Channel) -> None:
        """The party an agent's call dialled becomes its customer: the caller ID it shows
        is the one presented to that party (e.g. the trunk's)."""
        call.customer = cust.uniqueid
        rec = call.record
        rec.customer_channel = cust.name
        rec.caller_num, rec.caller_name = cust.own_num, cust.own_name

    # ------------------------------------------------------------------ supervisors

    def _spy(self, call: Call, ch: Channel, mode: str = "", agent: str = "") -> None:
        spy = call.spy
        if spy is None:
            spy = call.spy = {"uid": ch.uniqueid, "mode": "", "agent": "", "call": "",
                              "segment": None}
        spy["mode"] = spy["mode"] or mode
        spy["agent"] = spy["agent"] or agent

    def _start_spy(self, call: Call, ts: float, out: list[d.DomainEvent],
                   adopted: bool) -> None:
        """A supervisor's listen / whisper / barge leg: not a customer call."""
        spy = call.spy
        assert spy is not None
        rec = call.record
        sup = call.every[spy["uid"]]
        call.customer = sup.uniqueid
        rec.direction, rec.supervisor = "spy", sup.interface
        rec.customer_channel = sup.name
        rec.caller_num, rec.caller_name = sup.own_num, sup.own_name
        rec.agent = rec.agent or spy["agent"]
        rec.spy_mode = rec.spy_mode or spy["mode"]
        out.append(d.CallStarted(ts, call.call_id, "spy", "", rec.caller_num, rec.caller_name,
                                 sup.name, sup.uniqueid, adopted, agent=rec.agent,
                                 supervisor=sup.interface,
                                 tenant=rec.variables.get("CCD_TENANT", ""), start=rec.start))

    def _chanspy(self, e: ev.ChanSpy, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.spyer_uniqueid)
        if ch is None:
            return
        call = self.calls[ch.linkedid]
        self._spy(call, ch)
        spy = call.spy
        assert spy is not None
        rec = call.record
        if e.name == "ChanSpyStart":
            if spy["segment"] is not None and spy["segment"].end is None:
                return  # a duplicate
            target = interface_of(e.spyee_channel)
            spy["agent"] = spy["agent"] or target
            spy["call"] = e.spyee_linkedid
            rec.spied_call = e.spyee_linkedid
            rec.agent = rec.agent or spy["agent"]
            known = self.agents.get(rec.agent)
            rec.agent_name = rec.agent_name or (known.name if known else "")
            seg = d.Segment(target, e.spyee_channel, e.ts)
            spy["segment"] = seg
            rec.segments.append(seg)
            if rec.answer is None:
                rec.answer = e.ts
            self._start_call(call, e.ts, out)
        elif spy["segment"] is not None and spy["segment"].end is None:
            spy["segment"].end = e.ts

    def _varset(self, e: ev.VarSet, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.uniqueid)
        if ch is None:
            return
        call = self.calls[ch.linkedid]
        var = e.variable.lstrip("_")
        if var == "MIXMONITOR_FILENAME":
            ch.pending_recording = e.value
        elif var == "AGISTATUS":
            if ch.agi_script:
                self._ivr_left(call, ch, e.ts, e.value, out)
        elif var == "QUEUESTATUS":
            pend = call.pending_exit
            if pend is not None and ch.uniqueid == call.customer:
                call.pending_exit = None
                reason = e.value.lower()
                wait = round((pend.left or e.ts) - pend.joined, 3)
                if call.record.outcome in ("", "ivr_only"):
                    call.record.outcome = "timeout" if reason == "timeout" else "exited"
                out.append(d.QueueExited(e.ts, call.call_id, pend.queue, reason, wait))
        elif var == "CCD_HANGUP_BY":
            ch.hangup_by = _clean_who(e.value)
        elif e.value and (var in self.config.call_variables
                          or var.startswith(self.config.variable_prefix)):
            call.record.variables[var] = e.value
            if var == "CCD_SPY_AGENT":  # ccd's Originate of a supervisor's ChanSpy
                self._spy(call, ch, agent=e.value)
            elif var == "CCD_SPY_MODE":
                self._spy(call, ch, mode=e.value)

    def _ivr_left(self, call: Call, ch: Channel, ts: float, status: str,
                  out: list[d.DomainEvent]) -> None:
        script, ch.agi_script = ch.agi_script, ""
        secs = round(ts - ch.agi_since, 3)
        call.record.ivr.append({"script": script, "start": ch.agi_since, "end": ts,
                                "status": status, "seconds": secs})
        out.append(d.IvrLeft(ts, call.call_id, ch.name, script, status, secs))

    # ------------------------------------------------------------------ hangups

    def _party(self, call: Call, uid: str) -> str:
        """Who a channel of the call is: caller / customer, agent, external, supervisor."""
        if call.spy is not None:
            return "supervisor" if uid == call.spy["uid"] else ""
        if uid == call.agent_uid:
            return "agent"
        if uid == call.customer:
            return "customer" if call.record.direction == "outbound" else "caller"
        ch = self.channels.get(uid) or call.every.get(uid)
        if uid in call.open_segments and ch is not None:
            return "agent" if self._is_agent(ch) else "external"
        return ""

    def _is_agent(self, ch: Channel) -> bool:
        """An agent's phone: an interface ccd knows as an agent, or any phone that is not a
        trunk (trunk endpoints put their channels in an inbound context)."""
        if ch.interface in self.agents or ch.interface in self.config.agent_interfaces:
            return True
        return ch.home_context not in self.config.inbound_contexts

    def _signal(self, call: Call, party: str, uid: str, soft: bool = True) -> None:
        """The first teardown sign of a party decides who hung up. A soft sign (leaving the
        bridge, a soft hang-up request) on a channel ccd was asked to hang up (the
        ``CCD_HANGUP_BY`` variable ccd sets just before its AMI Hangup) is ccd's."""
        if not party or call.end_signal is not None:
            return
        ch = self.channels.get(uid)
        if soft and ch is not None and ch.hangup_by:
            call.end_signal = ("ccd" if ch.hangup_by.split(":", 1)[0] == "ccd" else "operator",
                               uid)
            call.record.hangup_requested_by = ch.hangup_by
            return
        call.end_signal = (party, uid)

    def _hangup_request(self, e: ev.HangupRequest, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.uniqueid)
        if ch is None:
            return
        call = self.calls[ch.linkedid]
        party = self._party(call, ch.uniqueid)
        if e.soft and e.cause == SOFTHANGUP_SHUTDOWN:
            call.shutdown = True
            self._signal(call, "system", ch.uniqueid, soft=False)
        elif e.soft and e.cause == SOFTHANGUP_EXPLICIT and ch.agi_script and not ch.hangup_by:
            # AGI HANGUP: the IVR ended the call (an AMI Hangup raises no request event)
            self._signal(call, "ivr", ch.uniqueid, soft=False)
        elif e.soft and party and (ch.dialplan_hangup or call.spy is not None
                                   or e.cause == SOFTHANGUP_APPUNLOAD):
            # the dialplan gave the channel up (Hangup(), its end, an application that
            # failed, ChanSpy's E option) before anyone hung up: the PBX ended it. (An AMI
            # Hangup raises no event of its own; ccd's carry CCD_HANGUP_BY, which wins.)
            self._signal(call, "system", ch.uniqueid)
        elif party:
            self._signal(call, party, ch.uniqueid, soft=e.soft)
        if ch.uniqueid == call.customer and call.wait and not call.wait.connected:
            call.wait.caller_hangup = True

    def _hangup(self, e: ev.Hangup, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.uniqueid)
        if ch is None:
            return
        call = self.calls[ch.linkedid]
        if ch.uniqueid == call.customer or not call.last_cause:
            call.last_cause, call.last_cause_txt = e.cause, e.cause_txt
        party = self._party(call, ch.uniqueid) if call.spy is None else ""
        if party:
            unanswered = ch.state != STATE_UP and ch.uniqueid == call.customer
            self._signal(call, "system" if unanswered and not call.party_uids else party,
                         ch.uniqueid)
        self._remove_channel(ch, e.ts, out)
        if not call.channels:
            self._finish(call, e.ts, out)

    def _remove_channel(self, ch: Channel, ts: float, out: list[d.DomainEvent],
                        vanished: bool = False, stop: float | None = None) -> None:
        """Forget a channel that hung up at ``ts`` (or vanished: then ``stop`` is when it
        ended as far as Asterisk still told, None if not known)."""
        call = self.calls.get(ch.linkedid)
        self.channels.pop(ch.uniqueid, None)
        if call is None:
            return
        if ch.uniqueid == call.customer and call.wait is not None and not call.wait.connected:
            # the caller's channel is gone while waiting: an abandon
            self._queue_leave(call, ch, ts, ch.uniqueid, out, forced_abandon=True)
        if ch.agi_script:
            self._ivr_left(call, ch, ts, "HANGUP", out)
        if ch.recording:
            if not vanished or stop is not None:  # else its stop time is not known
                out.append(d.RecordingStopped(ts if not vanished else stop or ts,
                                              call.call_id, ch.name, ch.recording))
            ch.recording = ""
        if ch.held_since is not None:
            # a hold still on when the channel vanished counts until it was last seen
            self._unhold_channel(call, ch, ts if not vanished else
                                 (stop or max(ch.held_since, self.last_seen)), out)
        self._clear_ringing(ch.uniqueid, ts, out)
        if ch.bridge:
            self.bridges.get(ch.bridge, set()).discard(ch.uniqueid)
            ch.bridge = ""
        call.channels.pop(ch.uniqueid, None)
        if ch.partner and ch.partner in self.channels:
            self.channels[ch.partner].partner = ""
        base = _local_base(ch.name)
        if base and self._locals.get(base) == ch.uniqueid:
            del self._locals[base]
        if vanished:  # the talk it was in ended when the call did: ``stop``, or not known
            ended = set(call.open_segments) if ch.uniqueid == call.customer else \
                {ch.uniqueid} & set(call.open_segments)
            for uid in ended:
                call.open_segments.pop(uid).end = stop
            call.peers = call.peers - ended
        self._recompute(call, ts, out)
        for agent in self.agents.values():
            if ch.uniqueid in agent.calls:
                agent.last_call = agent.calls.pop(ch.uniqueid)
                # app_queue's wrap-up follows a call from the queue only: after a call the
                # agent placed (click-to-dial) or got by a transfer, Asterisk offers the
                # next queue call at once
                if ch.uniqueid in call.queue_legs:
                    self._wrapup_start(agent, ts, call.queue_legs[ch.uniqueid])
                self._agent_update(agent, ts, out)

    def _finish(self, call: Call, ts: float, out: list[d.DomainEvent],
                end_reason: str = "", end: float | None = None,
                window: tuple[float, float] | None = None) -> None:
        """The call is over: its record, published at ``ts``. With ``window`` ccd did not see
        the end: it lies in ``window`` and is ``end`` if Asterisk still told it, else
        unknown (no end, no durations)."""
        self.calls.pop(call.call_id, None)
        for q in self.queues.values():
            q.waiting.pop(call.call_id, None)
        if not call.started:
            self._start_call(call, call.record.start, out)
        rec = call.record
        stop: float | None = ts
        if window is not None:
            stop = end
            rec.end_window = [round(window[0], 6), round(window[1], 6)]
            rec.end_source = "recording" if end is not None else "unknown"
        if window is not None and stop is not None and call.open_segments \
                and "talk" not in rec.estimated:
            rec.estimated.append("talk")  # to the end of the caller's channel: at most that
        for seg in list(call.open_segments.values()):
            seg.end = stop
        call.open_segments.clear()
        if call.spy is not None and call.spy["segment"] is not None \
                and call.spy["segment"].end is None:
            call.spy["segment"].end = stop
        rec.end = stop
        rec.total_seconds = None if stop is None else round(stop - rec.start, 3)
        rec.talk_seconds = None if any(s.end is None for s in rec.segments) else \
            round(sum(s.seconds for s in rec.segments), 3)
        rec.hold_seconds = round(rec.hold_seconds, 3)
        if call.end_signal is not None:
            rec.hangup_by = call.end_signal[0]
        elif end_reason:
            rec.hangup_by = "unknown"
        else:
            rec.hangup_by = "system"
        if call.shutdown:
            rec.hangup_by = "system"
        rec.hangup_cause, rec.hangup_cause_txt = call.last_cause, call.last_cause_txt
        rec.end_reason = end_reason
        if not rec.outcome:
            if rec.segments:
                rec.outcome = "answered"
            elif call.spy is not None or call.agent_uid:
                rec.outcome = "failed"  # no spying / the agent's dial reached nobody
            elif rec.ivr and not rec.queue:
                rec.outcome = "ivr_only"
            elif call.customer and self._customer_answered(call):
                rec.outcome = "answered" if rec.direction == "outbound" else "unanswered"
            else:
                rec.outcome = "unanswered" if rec.direction != "outbound" else "failed"
        if end_reason and rec.outcome in ("", "unanswered"):
            rec.outcome = "lost"
        if call.pending_exit is not None and rec.outcome in ("unanswered", "ivr_only"):
            rec.outcome = "exited"
        out.append(d.CallEnded(ts, call.call_id, rec.hangup_by, rec.hangup_cause,
                               rec.hangup_cause_txt, rec.talk_seconds, rec.total_seconds, rec))

    def _customer_answered(self, call: Call) -> bool:
        cust = call.every.get(call.customer)
        if call.record.answer is None and cust is not None and cust.answered is not None:
            call.record.answer = cust.answered
        return call.record.answer is not None

    # ------------------------------------------------------------------ bridges

    def _bridge(self, e: ev.BridgeEvent, out: list[d.DomainEvent]) -> None:
        if e.name == "BridgeEnter":
            ch = self.channels.get(e.uniqueid)
            if ch is not None:
                self._enter_bridge(ch, e.bridge, e.ts, out)
        elif e.name == "BridgeLeave":
            ch = self.channels.get(e.uniqueid)
            if ch is None or ch.bridge != e.bridge:
                return
            call = self.calls[ch.linkedid]
            in_talk = (ch.uniqueid == call.customer and bool(call.peers)) or \
                ch.uniqueid in call.open_segments
            if in_talk and not ch.redirected and not ch.left_by_transfer and not call.local_opt \
                    and not self._on_hold_line(call, ch):
                self._signal(call, self._party(call, ch.uniqueid), ch.uniqueid)
            self.bridges.get(e.bridge, set()).discard(ch.uniqueid)
            ch.bridge = ""
            self._recompute_bridge(e.bridge, e.ts, out, extra=call)
        elif e.name == "BridgeCreate":
            self.bridges.setdefault(e.bridge, set())
        elif e.name == "BridgeDestroy":
            members = self.bridges.pop(e.bridge, set())
            for uid in members:
                ch = self.channels.get(uid)
                if ch is not None and ch.bridge == e.bridge:
                    ch.bridge = ""

    def _enter_bridge(self, ch: Channel, bridge: str, ts: float,
                      out: list[d.DomainEvent]) -> None:
        if ch.bridge and ch.bridge != bridge:
            self.bridges.get(ch.bridge, set()).discard(ch.uniqueid)
        ch.bridge = bridge
        ch.redirected = False
        ch.left_by_transfer = False
        self.bridges.setdefault(bridge, set()).add(ch.uniqueid)
        self._recompute_bridge(bridge, ts, out)

    def _recompute_bridge(self, bridge: str, ts: float, out: list[d.DomainEvent],
                          extra: Call | None = None) -> None:
        seen: set[str] = set()
        for uid in self.bridges.get(bridge, ()):
            ch = self.channels.get(uid)
            if ch is not None and ch.linkedid not in seen:
                seen.add(ch.linkedid)
                call = self.calls.get(ch.linkedid)
                if call is not None:
                    self._recompute(call, ts, out)
        if extra is not None and extra.call_id not in seen and extra.call_id in self.calls:
            self._recompute(extra, ts, out)

    def _peers_of(self, uid: str, through_own_partner: bool = False) -> set[str]:
        """Non-Local channels the given channel hears, through bridges and Local pairs.

        A customer on a Local channel is not talking to its own other half (that is the
        caller's side), so by default the start channel's partner is not followed.
        """
        found: set[str] = set()
        visited = {uid}
        frontier = [uid]
        while frontier:
            cur = self.channels.get(frontier.pop())
            if cur is None:
                continue
            neighbours: list[str] = []
            if cur.bridge:
                neighbours.extend(self.bridges.get(cur.bridge, ()))
            if cur.is_local and cur.partner and (through_own_partner or cur.uniqueid != uid):
                neighbours.append(cur.partner)
            for n in neighbours:
                if n in visited:
                    continue
                visited.add(n)
                nch = self.channels.get(n)
                if nch is None:
                    continue
                if nch.is_local:
                    frontier.append(n)
                else:
                    found.add(n)
        own = self.channels.get(uid)
        if own is not None and own.partner and not through_own_partner:
            found.discard(own.partner)
        return found

    def _recompute(self, call: Call, ts: float, out: list[d.DomainEvent]) -> None:
        if call.local_opt or not call.customer:
            return
        cust = self.channels.get(call.customer)
        peers = frozenset(self._peers_of(call.customer)) if cust else frozenset()
        # an agent ccd put on hold waits on the hold line, out of the caller's bridge, while
        # Asterisk plays music to the caller: still the same conversation, with a hold in it
        held = {u for u in call.peers - peers
                if (c := self.channels.get(u)) is not None and self._on_hold_line(call, c)}
        peers = peers | held
        if peers == call.peers:
            return
        for uid in call.peers - peers:
            seg = call.open_segments.pop(uid, None)
            if seg is not None:
                seg.end = ts
        for uid in peers - call.peers:
            pch = self.channels[uid]
            since = ts
            if call.known is not None and pch.name in call.known.talking_since:
                since = call.known.talking_since.pop(pch.name)  # talking before ccd restarted
            elif self._adopting and "talk" not in call.record.estimated:
                call.record.estimated.append("talk")  # talking before ccd saw it: from now
            seg = d.Segment(pch.interface, pch.name, since, queue=call.queue_legs.get(uid, ""))
            call.open_segments[uid] = seg
            call.party_uids.add(uid)
            call.record.segments.append(seg)
            if call.record.answer is None:
                call.record.answer = ts
            if not call.record.agent:
                call.record.agent, call.record.agent_channel = pch.interface, pch.name
            if call.end_signal and call.end_signal[1] != call.customer:
                call.end_signal = None  # what ended an earlier leg does not end this talk
            if uid not in call.queue_legs:
                out.append(d.AgentConnected(ts, call.call_id, pch.interface, pch.name))
            agent = self.agents.get(pch.interface)
            if agent is not None:
                agent.calls[uid] = call.call_id
                agent.ringing.pop(uid, None)
                self._agent_update(agent, ts, out)
        call.peers = peers

    def _on_hold_line(self, call: Call, ch: Channel) -> bool:
        """``ch`` is held by ccd: on hold while the call has ccd's hold line (Atxfer)."""
        prefix = self.config.hold_line
        return ch.held_since is not None and bool(prefix) and any(
            c.name.startswith(prefix) for c in call.channels.values())

    def _local_bridge(self, e: ev.LocalBridge, out: list[d.DomainEvent]) -> None:
        one, two = self.channels.get(e.one_uniqueid), self.channels.get(e.two_uniqueid)
        if one is not None and two is not None:
            one.partner, two.partner = two.uniqueid, one.uniqueid

    def _local_optimization(self, e: ev.LocalOptimization, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.one_uniqueid) or self.channels.get(e.two_uniqueid)
        if ch is None:
            return
        call = self.calls[ch.linkedid]
        if e.name == "LocalOptimizationBegin":
            call.local_opt += 1
        elif call.local_opt:
            call.local_opt -= 1
            self._recompute(call, e.ts, out)

    # ------------------------------------------------------------------ hold, recording

    def _hold(self, e: ev.Hold, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.uniqueid)
        if ch is None or ch.held_since is not None:
            return
        call = self.calls[ch.linkedid]
        ch.held_since = e.ts
        party = "caller" if ch.uniqueid == call.customer else "agent"
        if party == "agent":
            ch.held_for = ch.interface
        else:  # the caller is held by the agent talking to it
            ch.held_for = next((s.agent for s in call.open_segments.values()), "")
        out.append(d.CallHeld(e.ts, call.call_id, ch.name, party))
        agent = self.agents.get(ch.interface)
        if agent is not None:
            agent.held = True
            self._agent_update(agent, e.ts, out)

    def _unhold(self, e: ev.Unhold, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.uniqueid)
        if ch is None or ch.held_since is None:
            return
        self._unhold_channel(self.calls[ch.linkedid], ch, e.ts, out)

    def _unhold_channel(self, call: Call, ch: Channel, ts: float,
                        out: list[d.DomainEvent]) -> None:
        since, ch.held_since = ch.held_since or ts, None
        secs = round(ts - since, 3)
        call.record.hold_seconds += secs
        party = "caller" if ch.uniqueid == call.customer else "agent"
        call.record.holds.append({"agent": ch.held_for, "channel": ch.name, "party": party,
                                  "start": since, "end": ts, "seconds": secs})
        out.append(d.CallUnheld(ts, call.call_id, ch.name, party, secs))
        agent = self.agents.get(ch.interface)
        if agent is not None:
            agent.held = False
            self._agent_update(agent, ts, out)

    def _mixmonitor(self, e: ev.MixMonitor, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.uniqueid)
        if ch is None:
            return
        call = self.calls[ch.linkedid]
        if e.name == "MixMonitorStart":
            if ch.recording and ch.recording == ch.pending_recording:
                return  # a duplicate
            ch.recording = ch.pending_recording
            ch.recording_since, ch.recording_opts = e.ts, ch.pending_recording_opts
            ch.pending_recording_opts = ""
            if ch.recording and ch.recording not in call.record.recordings:
                call.record.recordings.append(ch.recording)
            out.append(d.RecordingStarted(e.ts, call.call_id, ch.name, ch.recording))
        elif e.name == "MixMonitorStop":
            out.append(d.RecordingStopped(e.ts, call.call_id, ch.name, ch.recording))
            ch.recording = ""
        else:
            out.append(d.RecordingMuted(e.ts, call.call_id, ch.name, e.muted))

    # ------------------------------------------------------------------ transfers

    def _redirected(self, call: Call, ch: Channel, e: ev.Newexten,
                    out: list[d.DomainEvent]) -> None:
        ch.redirected = True
        from_agent = ""
        if ch.uniqueid == call.customer:
            for seg in call.open_segments.values():
                from_agent = seg.agent
            self._close_segments(call, e.ts)
        elif ch.uniqueid in call.open_segments:
            from_agent = ch.interface
            call.open_segments.pop(ch.uniqueid).end = e.ts
        target = f"{e.exten}@{e.context}"
        call.record.transfers.append({"ts": e.ts, "transfer": "redirect", "from": from_agent,
                                      "to": target, "channel": ch.name})
        out.append(d.CallTransferred(e.ts, call.call_id, "redirect", from_agent, target))

    def _close_segments(self, call: Call, ts: float) -> None:
        for seg in call.open_segments.values():
            seg.end = ts
        call.open_segments.clear()
        call.peers = frozenset()

    def _seen_transfer(self, call: Call, ts: float, kind: str) -> bool:
        return any(t["ts"] == ts and t["transfer"] == kind for t in call.record.transfers)

    def _blind_transfer(self, e: ev.BlindTransfer, out: list[d.DomainEvent]) -> None:
        if e.result != "Success":
            return
        ch = self.channels.get(e.transferer_uniqueid)
        call = self.calls.get(ch.linkedid if ch else e.linkedid)
        if call is None or self._seen_transfer(call, e.ts, "blind"):
            return
        from_agent = ch.interface if ch else ""
        if ch is not None:
            ch.left_by_transfer = True
            seg = call.open_segments.pop(ch.uniqueid, None)
            if seg is not None:
                seg.end = e.ts
                call.peers = call.peers - {ch.uniqueid}
            if call.end_signal and call.end_signal[1] == ch.uniqueid:
                call.end_signal = None
        transferee = self.channels.get(e.transferee_uniqueid)
        if transferee is not None:
            transferee.redirected = True  # its next dialplan step is the transfer, not a redirect
        target = f"{e.extension}@{e.context}" if e.context else e.extension
        call.record.transfers.append({"ts": e.ts, "transfer": "blind", "from": from_agent,
                                      "to": target})
        out.append(d.CallTransferred(e.ts, call.call_id, "blind", from_agent, target))

    def _attended_transfer(self, e: ev.AttendedTransfer, out: list[d.DomainEvent]) -> None:
        if e.result != "Success":
            return
        ch = self.channels.get(e.transferer_uniqueid)
        call = self.calls.get(ch.linkedid if ch else e.linkedid)
        if call is None or self._seen_transfer(call, e.ts, "attended"):
            return
        from_agent = ch.interface if ch else ""
        for uid in (e.transferer_uniqueid, e.second_transferer_uniqueid):
            t = self.channels.get(uid)
            if t is None:
                continue
            t.left_by_transfer = True
            seg = call.open_segments.pop(uid, None)
            if seg is not None:
                seg.end = e.ts
                call.peers = call.peers - {uid}
            if call.end_signal and call.end_signal[1] == uid:
                call.end_signal = None
        target = e.target_channel
        tch = self.channels.get(e.target_uniqueid)
        if tch is not None:
            if tch.is_local:
                real = sorted(self.channels[u].interface
                              for u in self._peers_of(tch.uniqueid, through_own_partner=True)
                              if u != call.customer and u in self.channels)
                target = real[0] if real else _local_target(tch.name)
            else:
                target = tch.interface
        elif e.dest_app:
            target = e.dest_app
        call.record.transfers.append({"ts": e.ts, "transfer": "attended", "from": from_agent,
                                      "to": target})
        out.append(d.CallTransferred(e.ts, call.call_id, "attended", from_agent, target))
        self._recompute(call, e.ts, out)

    # ------------------------------------------------------------------ queues

    def _queue_caller(self, e: ev.QueueCallerEvent, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.uniqueid)
        if ch is None:
            return
        call = self.calls[ch.linkedid]
        if e.name == "QueueCallerJoin":
            if call.wait is not None and call.wait.queue == e.queue and not call.wait.connected:
                return  # duplicate
            if not call.started:
                call.customer = ch.uniqueid
                self._start_call(call, e.ts, out)
            elif call.customer != ch.uniqueid and not call.customer_from_queue:
                call.customer = ch.uniqueid
                call.record.customer_channel = ch.name
            call.customer_from_queue = True
            call.wait = QueueWait(e.queue, e.ts, e.position, e.position)
            call.pending_exit = None
            rec = call.record
            if not rec.queue:
                rec.queue, rec.queue_position = e.queue, e.position
            self.queues.setdefault(e.queue, Queue(e.queue)).waiting[call.call_id] = e.ts
            out.append(d.CallQueued(e.ts, call.call_id, e.queue, e.position, e.count,
                                    rec.caller_num, rec.caller_name))
        elif e.name == "QueueCallerAbandon":
            if call.wait is not None and call.wait.queue == e.queue:
                call.wait.position = e.position or call.wait.position
        else:  # Leave
            self._queue_leave(call, ch, e.ts, e.uniqueid, out)

    def _queue_remove(self, call: Call) -> None:
        for q in self.queues.values():
            q.waiting.pop(call.call_id, None)

    def _queue_leave(self, call: Call, ch: Channel, ts: float, uid: str,
                     out: list[d.DomainEvent], forced_abandon: bool = False) -> None:
        w = call.wait
        if w is None or uid != call.customer:
            return
        call.wait = None
        self._queue_remove(call)
        w.left = ts
        if w.connected:
            return
        if w.answered_uid and not forced_abandon:
            call.wait = w  # AgentConnect follows the Leave; keep the wait for it
            self._queue_remove(call)
            w.connected = True
            return
        for agent_uid, interface in list(w.ringing.items()):
            agent = self.agents.get(interface)
            if agent is not None and agent.ringing.pop(agent_uid, None):
                self._agent_update(agent, ts, out)
        wait = round(ts - w.joined, 3)
        if w.caller_hangup or forced_abandon:
            if call.record.outcome in ("", "ivr_only", "exited", "timeout"):
                call.record.outcome = "abandoned"
            if call.record.queue == w.queue and call.record.queue_wait is None:
                call.record.queue_wait = wait
            out.append(d.CallAbandoned(ts, call.call_id, w.queue, wait, w.position,
                                       w.original_position))
        else:
            call.pending_exit = w
            if call.record.queue_wait is None:
                call.record.queue_wait = wait

    def _agent_event(self, e: ev.AgentEvent, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.uniqueid)
        call = self.calls.get(ch.linkedid) if ch else self.calls.get(e.linkedid)
        agent = self._agent(e.interface, e.member_name)
        if e.name == "AgentCalled":
            if call is None or agent.ringing.get(e.dest_uniqueid) == call.call_id:
                return  # unknown call, or a duplicate
            if call.wait is not None:
                call.wait.ringing[e.dest_uniqueid] = e.interface
            agent.ringing[e.dest_uniqueid] = call.call_id
            wait = round(e.ts - call.wait.joined, 3) if call.wait else 0.0
            out.append(d.AgentRinging(e.ts, call.call_id, e.queue, e.interface, e.member_name,
                                      e.dest_channel, call.record.caller_num,
                                      call.record.caller_name, wait))
            self._agent_update(agent, e.ts, out)
        elif e.name == "AgentRingNoAnswer":
            agent.ringing.pop(e.dest_uniqueid, None)
            if call is not None:
                if call.wait is not None:
                    call.wait.ringing.pop(e.dest_uniqueid, None)
                out.append(d.RingNoAnswer(e.ts, call.call_id, e.queue, e.interface,
                                          round(e.ring_time / 1000.0, 3)))
            self._agent_update(agent, e.ts, out)
        elif e.name == "AgentConnect":
            if call is None or e.dest_uniqueid in call.queue_legs:
                return  # unknown call, or a duplicate
            w = call.wait
            wait = round(e.ts - w.joined, 3) if w is not None else float(e.hold_time)
            if w is not None:
                w.connected = True
                call.wait = None if w.left is not None else w
            call.queue_legs[e.dest_uniqueid] = e.queue
            seg = call.open_segments.get(e.dest_uniqueid)
            if seg is not None:
                seg.queue = e.queue
            agent.ringing.pop(e.dest_uniqueid, None)
            agent.calls[e.dest_uniqueid] = call.call_id
            rec = call.record
            rec.outcome = "answered"
            if not rec.agent or rec.agent_channel == e.dest_channel:
                rec.agent, rec.agent_name, rec.agent_channel = \
                    e.interface, e.member_name, e.dest_channel
            elif not rec.agent_name and rec.agent == e.interface:
                rec.agent_name = e.member_name
            if rec.queue_wait is None or rec.queue == e.queue:
                rec.queue, rec.queue_wait = e.queue, wait
            out.append(d.CallAnswered(e.ts, call.call_id, e.queue, e.interface, e.member_name,
                                      e.dest_channel, wait))
            self._agent_update(agent, e.ts, out)
        elif e.name == "AgentComplete":
            if call is not None:
                agent.last_call = call.call_id
            agent.calls.pop(e.dest_uniqueid, None)
            self._wrapup_start(agent, e.ts, e.queue)
            self._agent_update(agent, e.ts, out)
        elif e.name == "AgentDump":
            agent.ringing.pop(e.dest_uniqueid, None)
            self._agent_update(agent, e.ts, out)

    def _dial_begin(self, e: ev.DialBegin, out: list[d.DomainEvent]) -> None:
        call = self.calls.get(e.dest_linkedid)
        dest = self.channels.get(e.dest_uniqueid)
        if call is None:
            return
        if e.uniqueid == "" and dest is not None:
            # an Originate rings this channel first; an agent's phone makes it the agent's
            # call (whoever sent the Originate), the party it dials is the customer
            dest.originated = True
            if not call.started and not call.agent_uid and self._known_agent(call, dest):
                call.agent_uid = dest.uniqueid
                return
        if call.spy is not None:
            return  # a supervisor's leg dials nobody
        if call.agent_uid and e.uniqueid == call.agent_uid:
            if not call.customer and dest is not None:
                self._customer_leg(call, dest)
            if not call.record.dialed:
                call.record.dialed = e.dial_string.partition("@")[0]
            return
        if call.record.dialed or call.wait is not None:
            return
        if e.uniqueid == "" or e.uniqueid == call.customer:
            call.record.dialed = e.dial_string

    def _known_agent(self, call: Call, ch: Channel) -> bool:
        """An interface ccd knows as an agent's (or the one ccd's Originate names)."""
        iface = ch.interface
        return (iface in self.agents or iface in self.config.agent_interfaces
                or call.record.variables.get("CCD_AGENT") == iface)

    def _dial_end(self, e: ev.DialEnd, out: list[d.DomainEvent]) -> None:
        ch = self.channels.get(e.uniqueid)
        if ch is None:
            return
        call = self.calls[ch.linkedid]
        w = call.wait
        if w is not None and e.dial_status == "ANSWER" and e.dest_uniqueid in w.ringing:
            w.answered_uid = e.dest_uniqueid

    def _clear_ringing(self, uid: str, ts: float, out: list[d.DomainEvent]) -> None:
        for agent in self.agents.values():
            if agent.ringing.pop(uid, None) is not None:
                self._agent_update(agent, ts, out)

    def _queue_params(self, e: ev.QueueParams, out: list[d.DomainEvent]) -> None:
        self.queues.setdefault(e.queue, Queue(e.queue)).strategy = e.strategy

    # ------------------------------------------------------------------ agents

    def _agent(self, interface: str, name: str = "") -> Agent:
        agent = self.agents.get(interface)
        if agent is None:
            agent = self.agents[interface] = Agent(interface, name)
        elif name and not agent.name:
            agent.name = name
        return agent

    def _member(self, e: ev.QueueMemberEvent, out: list[d.DomainEvent],
                now: float | None = None) -> None:
        ts = e.ts if now is None else now
        agent = self._agent(e.interface, e.member_name)
        if e.member_name:
            agent.name = e.member_name
        if e.name == "QueueMemberRemoved":
            agent.memberships.pop(e.queue, None)
        else:
            m = agent.memberships.setdefault(e.queue, Membership())
            if e.name in ("QueueMemberPause", "QueueMember", "QueueMemberAdded") \
                    or e.paused != m.paused:
                m.paused = e.paused
                m.reason = e.paused_reason if e.paused else ""
            m.penalty, m.wrapup = e.penalty, e.wrapup
            agent.device = e.status or agent.device
            self.queues.setdefault(e.queue, Queue(e.queue))
        self._agent_update(agent, ts, out)

    def _wrapup_start(self, agent: Agent, ts: float, queue: str) -> None:
        """Asterisk's wrap-up after a call from ``queue`` (its member's, else ccd's)."""
        if agent.calls:
            return
        m = agent.memberships.get(queue)
        secs = float(m.wrapup) if m and m.wrapup else self.config.wrapup.get(
            queue, self.config.default_wrapup)
        if secs > 0 and (agent.wrapup_until is None or agent.wrapup_until < ts + secs):
            agent.wrapup_until = ts + secs

    def _agent_update(self, agent: Agent, ts: float, out: list[d.DomainEvent]) -> None:
        if agent.wrapup_until is not None and agent.wrapup_until <= ts:
            ended, agent.wrapup_until = agent.wrapup_until, None
            if agent.state == "wrapup" and ended < ts:
                self._agent_update(agent, ended, out)  # wrap-up ended on time, not now
        reason = agent.pause_reason if agent.paused else ""
        call_id = ""
        if not agent.memberships and not agent.calls and not agent.ringing:
            state = "logged_out"
        elif agent.calls:
            state = "on_hold" if agent.held else "on_call"
            call_id = next(iter(agent.calls.values()))
        elif agent.ringing:
            state = "ringing"
            call_id = next(iter(agent.ringing.values()))
        elif not agent.memberships:
            state = "logged_out"
        elif agent.paused:
            state = "paused"
        elif agent.wrapup_until is not None:
            state, call_id = "wrapup", agent.last_call
        elif agent.device in (DEV_INUSE, DEV_BUSY, DEV_ONHOLD, DEV_RINGINUSE):
            state = "on_call"
        elif agent.device == DEV_RINGING:
            state = "ringing"
        elif agent.device in (DEV_INVALID, DEV_UNAVAILABLE):
            state = "unavailable"
        else:
            state = "available"
        if state == agent.state and reason == agent.reason:
            agent.call_id = call_id or agent.call_id
            return
        previous = agent.state
        agent.state, agent.reason, agent.call_id = state, reason, call_id
        agent.since = ts
        out.append(d.AgentStateChanged(ts, agent.interface, agent.name, state, previous, reason,
                                       call_id, sorted(agent.memberships), agent.paused,
                                       self._source,
                                       agent.wrapup_until if state == "wrapup" else None))

    # ------------------------------------------------------------------ system

    def _system(self, e: ev.SystemEvent, out: list[d.DomainEvent]) -> None:
        if e.name == "Shutdown":
            for call in self.calls.values():
                call.shutdown = True
            self.pbx.shutting_down()
            out.append(d.PbxEvent(e.ts, "shutdown", "restart" if e.restart else "stop"))
        elif self.pbx.fully_booted(e.ts, e.uptime):  # else only ccd logged in again
            out.append(d.PbxEvent(e.ts, "booted", f"uptime {e.uptime}s"))

    # ------------------------------------------------------------------ adoption

    def _adopt_channel(self, c: ev.CoreShowChannel, now: float,
                       status: ev.ChannelStatus | None) -> Call:
        """A channel Asterisk has and the model does not: its call, with what Asterisk's
        CoreShowChannels and Status (DNID, variables) say about it."""
        start = now - c.duration  # Duration is whole seconds
        call = self._call_for(c.linkedid, start)
        ch = Channel(c.uniqueid, c.channel, c.linkedid, start, c.state, c.state, c.caller_num,
                     c.caller_name, c.context, c.exten, home_context=c.context,
                     own_num=c.caller_num, own_name=c.caller_name,
                     dialplan=c.application not in PSEUDO_APPS)
        if c.state == STATE_UP:
            ch.answered = start
        self.channels[c.uniqueid] = ch
        call.channels[c.uniqueid] = ch
        call.every[c.uniqueid] = ch
        call.record.uniqueids.append(c.uniqueid)
        call.record.channels.append(c.channel)
        call.record.start = min(call.record.start, start)
        if not call.started and "start" not in call.record.estimated:
            call.record.estimated.append("start")
        base = _local_base(c.channel)
        if base:
            other = self._locals.pop(base, None)
            if other and other in self.channels:
                ch.partner, self.channels[other].partner = other, ch.uniqueid
            else:
                self._locals[base] = c.uniqueid
        if c.application in AGI_APPS:
            ch.agi_script, ch.agi_since = c.app_data.split(",", 1)[0], now
        if c.application == "ChanSpy":
            self._spy(call, ch, mode=_spy_mode(c.app_data.partition(",")[2]))
        if status is not None:
            self._adopt_status(call, ch, status)
        return call

    def _adopt_status(self, call: Call, ch: Channel, st: ev.ChannelStatus) -> None:
        ch.dnid = st.dnid
        rec = call.record
        for name, value in st.variables.items():
            if name == "MIXMONITOR_FILENAME" and value:
                ch.recording = value  # its MixMonitor is still running (or was)
                if value not in rec.recordings:
                    rec.recordings.append(value)
            elif name == "CCD_HANGUP_BY":
                ch.hangup_by = _clean_who(value)
            elif value and (name in self.config.call_variables
                            or name.startswith(self.config.variable_prefix)):
                rec.variables[name] = value
                if name == "CCD_SPY_AGENT":
                    self._spy(call, ch, agent=value)
                elif name == "CCD_SPY_MODE":
                    self._spy(call, ch, mode=value)
        v = st.variables
        if v.get("MEMBERINTERFACE") and v.get("QUEUENAME") and not rec.agent:
            # a queue call answered before ccd saw it: app_queue's variables say by whom
            rec.queue = rec.queue or v["QUEUENAME"]
            rec.agent, rec.agent_name = v["MEMBERINTERFACE"], v.get("MEMBERNAME", "")
            rec.outcome = rec.outcome or "answered"
            if v.get("QEHOLDTIME", "").isdigit() and rec.queue_wait is None:
                rec.queue_wait = float(v["QEHOLDTIME"])  # whole seconds
                rec.estimated.append("queue_wait")

    def _start_adopted(self, call: Call, now: float, out: list[d.DomainEvent]) -> None:
        """Start an adopted call once all its channels and its queue entry are known."""
        for uid, ch in call.channels.items():
            if ch.recording and ch.recording_since == 0.0 and call.known is None:
                out.append(d.RecordingStarted(now, call.call_id, ch.name, ch.recording,
                                              adopted=True))
            if call.record.agent and ch.interface == call.record.agent and \
                    call.record.queue and uid != call.customer:
                call.queue_legs.setdefault(uid, call.record.queue)
        first = call.channels.get(call.call_id)
        if not call.started and call.spy is None and first is not None \
                and not call.agent_uid and first.context in self.config.outbound_contexts \
                and self._known_agent(call, first):
            call.agent_uid = first.uniqueid  # an agent's outbound call (click-to-dial)
        if call.spy is None and not call.agent_uid and not call.customer:
            call.customer = first.uniqueid if first is not None else next(iter(call.channels))
        if call.agent_uid and not call.customer:
            other = next((c for u, c in call.channels.items() if u != call.agent_uid), None)
            if other is not None:
                call.customer = other.uniqueid
        if call.started:  # restored from what ccd had stored
            cust = call.channels.get(call.customer)
            call.record.customer_channel = cust.name if cust else call.record.customer_channel
            return
        self._start_call(call, call.record.start, out, adopted=True)


def _spy_mode(options: str) -> str:
    """ChanSpy's options: ``w`` whisper, ``B`` barge, else listen."""
    if "B" in options:
        return "barge"
    return "whisper" if "w" in options else "listen"


def _clean_who(value: str) -> str:
    """A ``CCD_HANGUP_BY`` value (``<source>:<who>``, set by ccd) as it may be stored."""
    return "".join(c for c in value if c.isprintable())[:80]


def _local_target(name: str) -> str:
    # Local/1004@agents-00000000;1 -> 1004@agents
    base = _local_base(name) or name
    return interface_of(base).removeprefix("Local/")


def replay_events(model: LiveModel, events: Iterable[ev.AmiEvent]) -> list[d.DomainEvent]:
    """Feed a sequence of typed events; return every domain event produced."""
    out: list[d.DomainEvent] = []
    for e in events:
        out.extend(model.feed(e))
    return out
