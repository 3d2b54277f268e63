"""Typed AMI events: the part of each Asterisk event the live model uses.

:func:`decode` turns a raw frame into one of the dataclasses below, or ``None`` when
the frame is of no interest (RTCP, security events, device states, most ``VarSet``
frames ...). The decision is taken from the event name and, for ``VarSet`` (43% of
all frames), from the peeked variable name, before the frame is parsed.

Field names follow Asterisk 22's AMI documentation; values stay strings unless the
model computes with them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ccd.ami.parser import event_name, parse_frame, peek_field, values


def _f(d: dict[str, str], k: str) -> str:
    v = d.get(k, "")
    return "" if v == "<unknown>" else v


def _i(d: dict[str, str], k: str, default: int = 0) -> int:
    try:
        return int(d.get(k, default))
    except ValueError:
        return default


@dataclass(slots=True)
class AmiEvent:
    """Base of every typed event; ``ts`` is Asterisk's Timestamp (epoch seconds)."""

    name: str
    ts: float


@dataclass(slots=True)
class ChannelEvent(AmiEvent):
    """An event about one channel (the common channel snapshot fields)."""

    channel: str
    uniqueid: str
    linkedid: str
    state: int
    caller_num: str
    caller_name: str
    context: str
    exten: str


@dataclass(slots=True)
class Newchannel(ChannelEvent):
    pass


@dataclass(slots=True)
class Newstate(ChannelEvent):
    pass


@dataclass(slots=True)
class NewCallerid(ChannelEvent):
    pass


@dataclass(slots=True)
class Newexten(ChannelEvent):
    application: str
    appdata: str
    priority: str


@dataclass(slots=True)
class VarSet(ChannelEvent):
    variable: str
    value: str


@dataclass(slots=True)
class HangupRequest(ChannelEvent):
    soft: bool
    cause: int


@dataclass(slots=True)
class Hangup(ChannelEvent):
    cause: int
    cause_txt: str


@dataclass(slots=True)
class Hold(ChannelEvent):
    pass


@dataclass(slots=True)
class Unhold(ChannelEvent):
    pass


@dataclass(slots=True)
class MixMonitor(ChannelEvent):
    """MixMonitorStart / MixMonitorStop / MixMonitorMute (``muted`` only for Mute)."""

    muted: bool


@dataclass(slots=True)
class BridgeEvent(AmiEvent):
    """BridgeCreate / BridgeDestroy (no channel) and BridgeEnter / BridgeLeave."""

    bridge: str
    uniqueid: str
    channel: str
    linkedid: str


@dataclass(slots=True)
class LocalOptimization(AmiEvent):
    """LocalOptimizationBegin / LocalOptimizationEnd."""

    one_uniqueid: str
    two_uniqueid: str


@dataclass(slots=True)
class LocalBridge(AmiEvent):
    one_channel: str
    one_uniqueid: str
    two_channel: str
    two_uniqueid: str
    linkedid: str


@dataclass(slots=True)
class DialBegin(AmiEvent):
    uniqueid: str  # the calling channel; empty for an Originate
    dest_channel: str
    dest_uniqueid: str
    dest_linkedid: str
    dial_string: str


@dataclass(slots=True)
class DialEnd(AmiEvent):
    uniqueid: str
    dest_channel: str
    dest_uniqueid: str
    dial_status: str


@dataclass(slots=True)
class QueueCallerEvent(ChannelEvent):
    """QueueCallerJoin / QueueCallerLeave / QueueCallerAbandon."""

    queue: str
    position: int
    count: int
    hold_time: int  # whole seconds, Abandon only


@dataclass(slots=True)
class AgentEvent(ChannelEvent):
    """AgentCalled / AgentConnect / AgentComplete / AgentRingNoAnswer / AgentDump."""

    queue: str
    interface: str
    member_name: str
    dest_channel: str
    dest_uniqueid: str
    hold_time: int
    talk_time: int
    ring_time: int
    reason: str


@dataclass(slots=True)
class QueueMemberEvent(AmiEvent):
    """QueueMember{Added,Removed,Pause,Status,Penalty,Ringinuse} and QueueMember (list)."""

    queue: str
    interface: str
    member_name: str
    state_interface: str
    status: int
    paused: bool
    paused_reason: str
    penalty: int
    in_call: bool
    wrapup: int
    membership: str


@dataclass(slots=True)
class QueueParams(AmiEvent):
    queue: str
    strategy: str
    calls: int


@dataclass(slots=True)
class QueueEntry(AmiEvent):
    queue: str
    position: int
    channel: str
    uniqueid: str
    caller_num: str
    caller_name: str
    wait: int


@dataclass(slots=True)
class BlindTransfer(AmiEvent):
    result: str
    transferer_channel: str
    transferer_uniqueid: str
    transferee_channel: str
    transferee_uniqueid: str
    linkedid: str
    context: str
    extension: str


@dataclass(slots=True)
class AttendedTransfer(AmiEvent):
    result: str
    transferer_uniqueid: str
    second_transferer_uniqueid: str
    transferee_uniqueid: str
    target_channel: str
    target_uniqueid: str
    linkedid: str
    dest_type: str
    dest_app: str


@dataclass(slots=True)
class OriginateResponse(AmiEvent):
    action_id: str
    response: str
    channel: str
    uniqueid: str
    reason: int
    context: str
    exten: str


@dataclass(slots=True)
class ChanSpy(AmiEvent):
    """ChanSpyStart / ChanSpyStop: a supervisor's channel (spyer) listening to another."""

    spyer_channel: str
    spyer_uniqueid: str
    spyee_channel: str
    spyee_uniqueid: str
    spyee_linkedid: str


@dataclass(slots=True)
class CoreShowChannel(ChannelEvent):
    """One channel in a CoreShowChannels answer (Asterisk's current truth)."""

    bridge: str
    application: str
    app_data: str
    duration: int  # seconds


@dataclass(slots=True)
class ChannelStatus(ChannelEvent):
    """One channel in a Status answer: what Asterisk still knows about it (with
    ``AllVariables``: its channel variables, names without the ``__`` inheritance prefix)."""

    dnid: str  # the number dialled to reach it (an inbound call's DID)
    seconds: int
    variables: dict[str, str]


@dataclass(slots=True)
class SystemEvent(AmiEvent):
    """FullyBooted / Shutdown / Reload: ``restart`` is set for Shutdown."""

    restart: bool
    uptime: int


@dataclass(slots=True)
class ListComplete(AmiEvent):
    """End of an action's event list (CoreShowChannelsComplete, QueueStatusComplete ...)."""

    action_id: str


# ---------------------------------------------------------------------------------------


#: 2100-01-01T00:00:00Z: no Asterisk event comes later; a Timestamp beyond it is bogus
MAX_EPOCH = 4102444800.0


def _ts(d: dict[str, str], now: float) -> float:
    """Asterisk's Timestamp, or ``now`` when it is missing, unreadable, not finite, not
    positive or beyond :data:`MAX_EPOCH` (how far it may be from the link's recent time is
    :class:`ccd.ami.timestamps.LinkClock`'s business)."""
    t = d.get("Timestamp")
    if t:
        try:
            v = float(t)
        except ValueError:
            return now
        if 0.0 < v < MAX_EPOCH:  # NaN fails this too
            return v
    return now


def _chan(cls: type, d: dict[str, str], now: float, *extra: object) -> ChannelEvent:
    return cls(
        d.get("Event", ""),
        _ts(d, now),
        d.get("Channel", ""),
        d.get("Uniqueid", ""),
        d.get("Linkedid", "") or d.get("Uniqueid", ""),
        _i(d, "ChannelState"),
        _f(d, "CallerIDNum"),
        _f(d, "CallerIDName"),
        d.get("Context", ""),
        d.get("Exten", ""),
        *extra,
    )


#: the longest age (a channel's Duration, a caller's Wait) ccd takes from Asterisk: the
#: model turns ages into times (``now - age``), which must stay plausible
MAX_AGE = 366 * 86400
#: the longest wrap-up (Wrapuptime, seconds) ccd takes from Asterisk
MAX_WRAPUP = 86400


def _secs(d: dict[str, str], k: str, cap: int) -> int:
    """A number of seconds from Asterisk, within ``[0, cap]``."""
    return min(max(_i(d, k), 0), cap)


def _hms(s: str) -> int:
    try:
        h, m, sec = s.split(":")
        return min(max(int(h) * 3600 + int(m) * 60 + int(sec), 0), MAX_AGE)
    except ValueError:
        return 0


def _simple(cls: type) -> Callable[[dict[str, str], float], AmiEvent]:
    return lambda d, now: _chan(cls, d, now)


def _newexten(d: dict[str, str], now: float) -> AmiEvent:
    return _chan(Newexten, d, now, d.get("Application", ""), d.get("AppData", ""),
                 d.get("Priority", ""))


def _varset(d: dict[str, str], now: float) -> AmiEvent:
    return _chan(VarSet, d, now, d.get("Variable", ""), d.get("Value", ""))


def _hangup_request(d: dict[str, str], now: float) -> AmiEvent:
    return _chan(HangupRequest, d, now, d.get("Event") == "SoftHangupRequest", _i(d, "Cause"))


def _hangup(d: dict[str, str], now: float) -> AmiEvent:
    return _chan(Hangup, d, now, _i(d, "Cause"), d.get("Cause-txt", ""))


def _mixmonitor(d: dict[str, str], now: float) -> AmiEvent:
    return _chan(MixMonitor, d, now, d.get("State", "") == "1")


def _bridge(d: dict[str, str], now: float) -> AmiEvent:
    return BridgeEvent(d.get("Event", ""), _ts(d, now), d.get("BridgeUniqueid", ""),
                       d.get("Uniqueid", ""), d.get("Channel", ""), d.get("Linkedid", ""))


def _local_opt(d: dict[str, str], now: float) -> AmiEvent:
    return LocalOptimization(d.get("Event", ""), _ts(d, now), d.get("LocalOneUniqueid", ""),
                             d.get("LocalTwoUniqueid", ""))


def _local_bridge(d: dict[str, str], now: float) -> AmiEvent:
    return LocalBridge(d.get("Event", ""), _ts(d, now), d.get("LocalOneChannel", ""),
                       d.get("LocalOneUniqueid", ""), d.get("LocalTwoChannel", ""),
                       d.get("LocalTwoUniqueid", ""), d.get("LocalOneLinkedid", ""))


def _dial_begin(d: dict[str, str], now: float) -> AmiEvent:
    return DialBegin(d.get("Event", ""), _ts(d, now), d.get("Uniqueid", ""),
                     d.get("DestChannel", ""), d.get("DestUniqueid", ""),
                     d.get("DestLinkedid", ""), d.get("DialString", ""))


def _dial_end(d: dict[str, str], now: float) -> AmiEvent:
    return DialEnd(d.get("Event", ""), _ts(d, now), d.get("Uniqueid", ""),
                   d.get("DestChannel", ""), d.get("DestUniqueid", ""), d.get("DialStatus", ""))


def _queue_caller(d: dict[str, str], now: float) -> AmiEvent:
    return _chan(QueueCallerEvent, d, now, d.get("Queue", ""), _i(d, "Position"),
                 _i(d, "Count"), _i(d, "HoldTime"))


def _agent(d: dict[str, str], now: float) -> AmiEvent:
    return _chan(AgentEvent, d, now, d.get("Queue", ""), d.get("Interface", ""),
                 d.get("MemberName", ""), d.get("DestChannel", ""), d.get("DestUniqueid", ""),
                 _i(d, "HoldTime"), _i(d, "TalkTime"), _i(d, "RingTime"), d.get("Reason", ""))


def _member(d: dict[str, str], now: float) -> AmiEvent:
    interface = d.get("Interface") or d.get("Location", "")
    return QueueMemberEvent(
        d.get("Event", ""), _ts(d, now), d.get("Queue", ""), interface,
        d.get("MemberName") or d.get("Name", ""), d.get("StateInterface", "") or interface,
        _i(d, "Status"), d.get("Paused", "0") in ("1", "true", "yes"), d.get("PausedReason", ""),
        _i(d, "Penalty"), d.get("InCall", "0") == "1", _secs(d, "Wrapuptime", MAX_WRAPUP),
        d.get("Membership", ""),
    )


def _queue_params(d: dict[str, str], now: float) -> AmiEvent:
    return QueueParams(d.get("Event", ""), _ts(d, now), d.get("Queue", ""),
                       d.get("Strategy", ""), _i(d, "Calls"))


def _queue_entry(d: dict[str, str], now: float) -> AmiEvent:
    return QueueEntry(d.get("Event", ""), _ts(d, now), d.get("Queue", ""), _i(d, "Position"),
                      d.get("Channel", ""), d.get("Uniqueid", ""), _f(d, "CallerIDNum"),
                      _f(d, "CallerIDName"), _secs(d, "Wait", MAX_AGE))


def _blind(d: dict[str, str], now: float) -> AmiEvent:
    return BlindTransfer(d.get("Event", ""), _ts(d, now), d.get("Result", ""),
                         d.get("TransfererChannel", ""), d.get("TransfererUniqueid", ""),
                         d.get("TransfereeChannel", ""), d.get("TransfereeUniqueid", ""),
                         d.get("TransfereeLinkedid", "") or d.get("TransfererLinkedid", ""),
                         d.get("Context", ""), d.get("Extension", ""))


def _attended(d: dict[str, str], now: float) -> AmiEvent:
    return AttendedTransfer(
        d.get("Event", ""), _ts(d, now), d.get("Result", ""),
        d.get("OrigTransfererUniqueid", ""), d.get("SecondTransfererUniqueid", ""),
        d.get("TransfereeUniqueid", ""), d.get("TransferTargetChannel", ""),
        d.get("TransferTargetUniqueid", ""),
        d.get("TransfereeLinkedid", "") or d.get("OrigTransfererLinkedid", ""),
        d.get("DestType", ""), d.get("DestApp", ""),
    )


def _originate(d: dict[str, str], now: float) -> AmiEvent:
    return OriginateResponse(d.get("Event", ""), _ts(d, now), d.get("ActionID", ""),
                             d.get("Response", ""), d.get("Channel", ""), d.get("Uniqueid", ""),
                             _i(d, "Reason"), d.get("Context", ""), d.get("Exten", ""))


def _chanspy(d: dict[str, str], now: float) -> AmiEvent:
    return ChanSpy(d.get("Event", ""), _ts(d, now), d.get("SpyerChannel", ""),
                   d.get("SpyerUniqueid", ""), d.get("SpyeeChannel", ""),
                   d.get("SpyeeUniqueid", ""), d.get("SpyeeLinkedid", ""))


def _core_show(d: dict[str, str], now: float) -> AmiEvent:
    return _chan(CoreShowChannel, d, now, d.get("BridgeId", ""), d.get("Application", ""),
                 d.get("ApplicationData", ""), _hms(d.get("Duration", "")))


def _status(d: dict[str, str], now: float) -> AmiEvent:
    variables: dict[str, str] = {}
    for item in values(d, "Variable"):
        name, sep, value = item.partition("=")
        if sep and name and value != "(null)":  # (null): asked for, not set
            variables[name.lstrip("_")] = value
    return _chan(ChannelStatus, d, now, _f(d, "DNID"), _i(d, "Seconds"), variables)


def _system(d: dict[str, str], now: float) -> AmiEvent:
    return SystemEvent(d.get("Event", ""), _ts(d, now), d.get("Restart", "") == "True",
                       _i(d, "Uptime"))


def _complete(d: dict[str, str], now: float) -> AmiEvent:
    return ListComplete(d.get("Event", ""), _ts(d, now), d.get("ActionID", ""))


BUILDERS: dict[bytes, Callable[[dict[str, str], float], AmiEvent]] = {
    b"Newchannel": _simple(Newchannel),
    b"Newstate": _simple(Newstate),
    b"NewCallerid": _simple(NewCallerid),
    b"Newexten": _newexten,
    b"VarSet": _varset,
    b"HangupRequest": _hangup_request,
    b"SoftHangupRequest": _hangup_request,
    b"Hangup": _hangup,
    b"Hold": _simple(Hold),
    b"Unhold": _simple(Unhold),
    b"MixMonitorStart": _mixmonitor,
    b"MixMonitorStop": _mixmonitor,
    b"MixMonitorMute": _mixmonitor,
    b"BridgeCreate": _bridge,
    b"BridgeEnter": _bridge,
    b"BridgeLeave": _bridge,
    b"BridgeDestroy": _bridge,
    b"LocalBridge": _local_bridge,
    b"LocalOptimizationBegin": _local_opt,
    b"LocalOptimizationEnd": _local_opt,
    b"DialBegin": _dial_begin,
    b"DialEnd": _dial_end,
    b"QueueCallerJoin": _queue_caller,
    b"QueueCallerLeave": _queue_caller,
    b"QueueCallerAbandon": _queue_caller,
    b"AgentCalled": _agent,
    b"AgentConnect": _agent,
    b"AgentComplete": _agent,
    b"AgentRingNoAnswer": _agent,
    b"AgentDump": _agent,
    b"QueueMemberAdded": _member,
    b"QueueMemberRemoved": _member,
    b"QueueMemberPause": _member,
    b"QueueMemberStatus": _member,
    b"QueueMemberPenalty": _member,
    b"QueueMemberRinginuse": _member,
    b"QueueMember": _member,
    b"QueueParams": _queue_params,
    b"QueueEntry": _queue_entry,
    b"BlindTransfer": _blind,
    b"AttendedTransfer": _attended,
    b"OriginateResponse": _originate,
    b"ChanSpyStart": _chanspy,
    b"ChanSpyStop": _chanspy,
    b"CoreShowChannel": _core_show,
    b"Status": _status,
    b"FullyBooted": _system,
    b"Shutdown": _system,
    b"CoreShowChannelsComplete": _complete,
    b"QueueStatusComplete": _complete,
}

class Interest:
    """Which of the noisy frames are worth decoding; the model keeps it up to date.

    ``variables`` are VarSet names the model reads (recording file names, IVR results,
    queue status). Names starting with one of ``variable_prefixes`` are kept too.
    """

    __slots__ = ("variable_prefixes", "variables")

    def __init__(self, variables: set[str], prefixes: tuple[str, ...] = ()) -> None:
        self.variables = {v.encode() for v in variables}
        self.variable_prefixes = tuple(p.encode() for p in prefixes)

    def wants_var(self, raw: bytes) -> bool:
        i = raw.find(b"\r\nVariable: ")
        if i < 0:
            return False
        i += 12
        j = raw.find(b"\r\n", i)
        name = raw[i:j if j >= 0 else len(raw)]
        return name in self.variables or (
            bool(self.variable_prefixes) and name.startswith(self.variable_prefixes))


DEFAULT_INTEREST = Interest(
    {"MIXMONITOR_FILENAME", "AGISTATUS", "QUEUESTATUS", "CUSTOMER_ID", "IVR_CHOICE",
     "__CUSTOMER_ID"},
    ("CCD_", "__CCD_"),
)


def decode(raw: bytes, now: float = 0.0, interest: Interest = DEFAULT_INTEREST) -> AmiEvent | None:
    """Typed event for a raw frame, or ``None`` if the model does not need it.

    ``now`` is used when the frame has no Timestamp (``timestampevents=no``).
    Raises :class:`ccd.ami.parser.FrameError` for a frame that cannot be parsed.
    """
    name = event_name(raw)
    if name is None:
        return None
    build = BUILDERS.get(name)
    if build is None:
        return None
    if name == b"VarSet" and not interest.wants_var(raw):
        return None
    return build(parse_frame(raw), now)


def decode_fields(fields: dict[str, str], now: float = 0.0) -> AmiEvent | None:
    """Typed event for an already parsed frame (used by action responses)."""
    build = BUILDERS.get(fields.get("Event", "").encode())
    return None if build is None else build(fields, now)


__all__ = [
    "BUILDERS",
    "AmiEvent",
    "ChannelEvent",
    "decode",
    "decode_fields",
    "peek_field",
    "values",
]
