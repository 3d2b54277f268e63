"""Domain events: the facts a call centre cares about, derived from Asterisk's events.

They are what the rest of ccd consumes (store, panel, statistics, CLI). Each has a
``kind`` and a JSON-friendly :meth:`DomainEvent.to_dict`. Times are epoch seconds
taken from Asterisk's event timestamps; durations are seconds (floats, ms precision).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass(slots=True)
class DomainEvent:
    kind: ClassVar[str] = "event"
    ts: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: ``{"kind": ..., "ts": ..., <fields>}``."""
        d = asdict(self)
        return {"kind": self.kind, **d}


# ----------------------------------------------------------------------- calls


@dataclass(slots=True)
class CallStarted(DomainEvent):
    kind: ClassVar[str] = "call_started"
    call_id: str
    direction: str  # inbound | outbound | internal | spy
    did: str
    caller_num: str
    caller_name: str
    channel: str  # the customer's channel ("" while an agent's outbound call dials)
    uniqueid: str
    adopted: bool = False  # found by a resync, not seen starting
    dialed: str = ""  # outbound: the number dialled
    agent: str = ""  # the agent placing an outbound call / spied on by a supervisor
    supervisor: str = ""  # spy legs: the supervisor's interface
    tenant: str = ""  # the CCD_TENANT tag ccd's Originates set, when there is one
    start: float | None = None  # when its first channel appeared (``ts``: when it is known)


@dataclass(slots=True)
class IvrEntered(DomainEvent):
    kind: ClassVar[str] = "ivr_entered"
    call_id: str
    channel: str
    script: str


@dataclass(slots=True)
class IvrLeft(DomainEvent):
    kind: ClassVar[str] = "ivr_left"
    call_id: str
    channel: str
    script: str
    status: str  # AGISTATUS: SUCCESS, FAILURE, NOTFOUND, HANGUP
    seconds: float


@dataclass(slots=True)
class CallQueued(DomainEvent):
    kind: ClassVar[str] = "queued"
    call_id: str
    queue: str
    position: int
    count: int
    caller_num: str
    caller_name: str


@dataclass(slots=True)
class AgentRinging(DomainEvent):
    kind: ClassVar[str] = "agent_ringing"
    call_id: str
    queue: str
    agent: str  # member interface, e.g. PJSIP/1001
    member_name: str
    agent_channel: str
    caller_num: str
    caller_name: str
    wait: float  # seconds in queue so far


@dataclass(slots=True)
class RingNoAnswer(DomainEvent):
    kind: ClassVar[str] = "ring_no_answer"
    call_id: str
    queue: str
    agent: str
    ring_seconds: float


@dataclass(slots=True)
class CallAnswered(DomainEvent):
    kind: ClassVar[str] = "answered"
    call_id: str
    queue: str
    agent: str
    member_name: str
    agent_channel: str
    wait: float


@dataclass(slots=True)
class CallHeld(DomainEvent):
    kind: ClassVar[str] = "held"
    call_id: str
    channel: str
    party: str  # caller | agent


@dataclass(slots=True)
class CallUnheld(DomainEvent):
    kind: ClassVar[str] = "unheld"
    call_id: str
    channel: str
    party: str
    seconds: float


@dataclass(slots=True)
class CallTransferred(DomainEvent):
    kind: ClassVar[str] = "transferred"
    call_id: str
    transfer: str  # blind | attended | redirect
    from_agent: str
    target: str  # exten@context, or the target's interface once known


@dataclass(slots=True)
class AgentConnected(DomainEvent):
    """The caller is now talking to a party that did not come from the queue
    (transfer target, direct dial)."""

    kind: ClassVar[str] = "agent_connected"
    call_id: str
    agent: str
    agent_channel: str


@dataclass(slots=True)
class RecordingStarted(DomainEvent):
    kind: ClassVar[str] = "recording_started"
    call_id: str
    channel: str
    file: str
    adopted: bool = False  # found running by a resync: it started before ``ts``


@dataclass(slots=True)
class RecordingStopped(DomainEvent):
    kind: ClassVar[str] = "recording_stopped"
    call_id: str
    channel: str
    file: str


@dataclass(slots=True)
class RecordingMuted(DomainEvent):
    kind: ClassVar[str] = "recording_muted"
    call_id: str
    channel: str
    muted: bool


@dataclass(slots=True)
class CallAbandoned(DomainEvent):
    kind: ClassVar[str] = "abandoned"
    call_id: str
    queue: str
    wait: float
    position: int
    original_position: int


@dataclass(slots=True)
class QueueExited(DomainEvent):
    """Left the queue without an agent and without hanging up (timeout, empty queue)."""

    kind: ClassVar[str] = "queue_exited"
    call_id: str
    queue: str
    reason: str  # QUEUESTATUS lower-cased: timeout, leaveempty, joinempty, full ...
    wait: float


@dataclass(slots=True)
class CallEnded(DomainEvent):
    kind: ClassVar[str] = "call_ended"
    call_id: str
    #: caller | customer | agent | external | supervisor | ivr | operator | ccd | system |
    #: unknown (see the README's table)
    hangup_by: str
    cause: int
    cause_txt: str
    talk_seconds: float | None  # None: the end is not known
    total_seconds: float | None
    record: CallRecord


# ----------------------------------------------------------------------- agents


@dataclass(slots=True)
class AgentStateChanged(DomainEvent):
    kind: ClassVar[str] = "agent_state"
    agent: str  # interface
    name: str
    state: str  # logged_out available ringing on_call on_hold wrapup paused unavailable
    previous: str
    reason: str  # the pause reason while paused (even while on a call)
    call_id: str
    queues: list[str] = field(default_factory=list)
    paused: bool = False  # paused in a queue, whatever the state shows
    source: str = ""  # "resync" when caused by reconciling with Asterisk after a reconnect
    until: float | None = None  # wrapup: when Asterisk's wrap-up time is up


@dataclass(slots=True)
class PbxEvent(DomainEvent):
    """Asterisk itself: booted, shutting down, link lost, resynchronised."""

    kind: ClassVar[str] = "pbx"
    what: str
    detail: str = ""


# ----------------------------------------------------------------------- records


@dataclass(slots=True)
class Segment:
    """A stretch of the call during which the caller talked to one party."""

    agent: str
    channel: str
    start: float
    end: float | None = None
    queue: str = ""

    @property
    def seconds(self) -> float:
        return 0.0 if self.end is None else round(self.end - self.start, 3)


@dataclass(slots=True)
class CallRecord:
    """What ccd stores once every channel of a call (one Linkedid) is gone."""

    call_id: str
    direction: str = ""
    did: str = ""
    caller_num: str = ""
    caller_name: str = ""
    dialed: str = ""
    start: float = 0.0
    answer: float | None = None
    end: float | None = None
    queue: str = ""
    queue_wait: float | None = None
    queue_position: int | None = None
    outcome: str = ""  # answered abandoned timeout unanswered failed ivr_only lost
    agent: str = ""
    agent_name: str = ""
    agent_channel: str = ""
    segments: list[Segment] = field(default_factory=list)
    talk_seconds: float | None = 0.0  # None when the end is not known (end_window)
    hold_seconds: float = 0.0
    #: every hold: {"agent", "channel", "party", "start", "end", "seconds"}; ``agent`` is
    #: whose handling it is (the held agent, or the agent talking when the caller was held)
    holds: list[dict[str, Any]] = field(default_factory=list)
    total_seconds: float | None = 0.0
    hangup_by: str = ""
    hangup_requested_by: str = ""  # operator/ccd hang-ups: who asked (e.g. "cli:root")
    hangup_cause: int = 0
    hangup_cause_txt: str = ""
    recordings: list[str] = field(default_factory=list)
    transfers: list[dict[str, Any]] = field(default_factory=list)
    ivr: list[dict[str, Any]] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    uniqueids: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    customer_channel: str = ""
    end_reason: str = ""  # empty when Asterisk reported the end; else why ccd closed it
    #: when ccd did not see the end: [last seen alive, seen gone]; ``end`` is then the end
    #: Asterisk still told (``end_source``) or None
    end_window: list[float] | None = None
    end_source: str = ""  # "" events | "recording" (its length) | "unknown"
    supervisor: str = ""  # spy legs: the supervisor's interface ...
    spy_mode: str = ""  # ... listen | whisper | barge ...
    spied_call: str = ""  # ... and the call listened to (its call_id)
    adopted: bool = False  # found by a resync (ccd did not see it start)
    estimated: list[str] = field(default_factory=list)  # fields known to a whole second

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d


_KINDS: dict[str, type[DomainEvent]] = {}


def _register() -> None:
    for cls in list(globals().values()):
        if isinstance(cls, type) and issubclass(cls, DomainEvent) and cls is not DomainEvent:
            _KINDS[cls.kind] = cls


def from_dict(data: dict[str, Any]) -> DomainEvent:
    """Rebuild a domain event from :meth:`DomainEvent.to_dict` output (e.g. from the store).

    Raises ``ValueError`` for an unknown kind.
    """
    if not _KINDS:
        _register()
    cls = _KINDS.get(data.get("kind", ""))
    if cls is None:
        raise ValueError(f"unknown domain event kind {data.get('kind')!r}")
    names = {f.name for f in fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    if cls is CallEnded:
        kwargs["record"] = record_from_dict(data.get("record") or {"call_id": data["call_id"]})
    return cls(**kwargs)


def record_from_dict(data: dict[str, Any]) -> CallRecord:
    """Rebuild a :class:`CallRecord` from its dict form."""
    names = {f.name for f in fields(CallRecord)}
    seg_names = {f.name for f in fields(Segment)}
    kwargs = {k: v for k, v in data.items() if k in names}
    kwargs["segments"] = [Segment(**{k: v for k, v in s.items() if k in seg_names})
                          for s in data.get("segments", [])]
    return CallRecord(**kwargs)
