"""A simulated channel: the state Asterisk keeps per call leg and puts in every event."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ccd.sim.events import Fields

if TYPE_CHECKING:
    from ccd.sim.bridge import Bridge

STATE_DESC = {
    0: "Down",
    1: "Rsrvd",
    2: "OffHook",
    3: "Dialing",
    4: "Ring",
    5: "Ringing",
    6: "Up",
    7: "Busy",
    8: "Dialing Offhook",
    9: "Pre-ring",
}
DOWN, RESERVED, OFFHOOK, DIALING, RING, RINGING, UP, BUSY = 0, 1, 2, 3, 4, 5, 6, 7

#: Q.850 causes used by the simulator and Asterisk's texts for them (Cause-txt)
CAUSE_TXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    3: "No route to destination",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    27: "Destination out of order",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    127: "Interworking, unspecified",
}

NORMAL_CLEARING, USER_BUSY, NO_ANSWER, SUBSCRIBER_ABSENT, CONGESTION = 16, 17, 19, 20, 34

#: why a hangup was asked for; decides which events Asterisk shows for it
REMOTE = "remote"  # the far end sent BYE: HangupRequest (hard)
AMI = "ami"  # AMI Hangup action: no request event at all
DIALPLAN = "dialplan"  # Hangup() or end of dialplan: SoftHangupRequest Cause 16
EXPLICIT = "explicit"  # AGI HANGUP: SoftHangupRequest Cause 32 (AST_SOFTHANGUP_EXPLICIT) now,
#                        Cause 16 when the dialplan gives the channel up
SHUTDOWN = "shutdown"  # core stop/restart: SoftHangupRequest Cause 4
PARTNER = "partner"  # the other half of a Local channel went away: HangupRequest + Cause
INTERNAL = "internal"  # hung up by the application that owns it (losing Dial legs)


@dataclass(eq=False)
class Channel:
    """One channel. ``tech`` is ``PJSIP`` or ``Local``; ``resource`` the endpoint or spec."""

    name: str
    uniqueid: str
    linkedid: str
    tech: str
    resource: str
    created: float
    state: int = DOWN
    caller_num: str = ""
    caller_name: str = ""
    conn_num: str = ""
    conn_name: str = ""
    language: str = "en"
    accountcode: str = ""
    context: str = ""
    exten: str = ""
    priority: int = 1
    appl: str = ""
    data: str = ""
    dnid: str = ""
    variables: dict[str, str] = field(default_factory=dict)  # stored without _/__ prefixes
    inherit: dict[str, int] = field(default_factory=dict)  # name -> 1 (_) or 2 (__)
    bridge: Bridge | None = None
    answered_at: float | None = None
    hangupcause: int = 0
    tech_cause: int = 0  # the SIP response that ended it (486, 480 ...): TechCause
    hangup_origin: str = ""  # REMOTE / AMI / ... once a hangup was requested
    dead: bool = False
    pending_goto: tuple[str, str, int] | None = None
    published_cep: tuple[str, str, int] | None = None  # location the last Newexten showed
    published_appl: str = ""
    partner: Channel | None = None  # the other half of a Local channel
    local_half: int = 0
    endpoint: str = ""
    on_hold: bool = False
    moh: bool = False
    in_pbx: bool = False
    #: application and data before the PBX started (pbx_exec restores them after each
    #: application: an originated channel shows AppDial2 again)
    pbx_base: tuple[str, str] = ("", "")
    driven: bool = False  # a coroutine owns this channel and will hang it up
    owner: Any = None  # whatever drives the channel (phone, originate, queue attempt)
    dtmf: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    hangup_event: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # goto / bridge changes
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    ringing: asyncio.Event = field(default_factory=asyncio.Event)
    recordings: list[Any] = field(default_factory=list)
    queue_entry: Any = None
    spied_by: Channel | None = None
    #: called on a hangup request before the default handling; True = handled
    interceptor: Callable[[Channel, str], bool] | None = None
    #: aborts the attended transfer this channel started (atxferabort / CancelAtxfer)
    atxfer_abort: Callable[[], None] | None = None
    agi_session: Any = None

    # ------------------------------------------------------------------ variables

    def get_var(self, name: str) -> str | None:
        return self.variables.get(name.lstrip("_"))

    def store_var(self, name: str, value: str) -> str:
        """Store a variable as written (``__X`` is inherited by all descendants)."""
        bare = name.lstrip("_")
        level = len(name) - len(bare)
        self.variables[bare] = value
        if level:
            self.inherit[bare] = min(level, 2)
        return bare

    def inheritable(self) -> list[tuple[str, str]]:
        """Variables a channel created by this one inherits, as written (``__X``)."""
        out = []
        for bare, level in self.inherit.items():
            if bare in self.variables:
                out.append(("__" + bare if level == 2 else bare, self.variables[bare]))
        return out

    # ------------------------------------------------------------------ snapshots

    @property
    def state_desc(self) -> str:
        return STATE_DESC.get(self.state, "Unknown")

    @property
    def is_local(self) -> bool:
        return self.tech == "Local"

    @property
    def device(self) -> str:
        """Device name for device state: ``PJSIP/1001``, ``Local/1004@agents``."""
        if self.is_local:
            return "Local/" + self.resource
        return f"{self.tech}/{self.resource}"

    @property
    def hungup(self) -> bool:
        return bool(self.hangup_origin) or self.dead

    def snapshot(self, prefix: str = "") -> Fields:
        """The channel snapshot fields every channel event carries."""
        p = prefix
        return [
            (f"{p}Channel", self.name),
            (f"{p}ChannelState", str(self.state)),
            (f"{p}ChannelStateDesc", self.state_desc),
            (f"{p}CallerIDNum", self.caller_num or "<unknown>"),
            (f"{p}CallerIDName", self.caller_name or "<unknown>"),
            (f"{p}ConnectedLineNum", self.conn_num or "<unknown>"),
            (f"{p}ConnectedLineName", self.conn_name or "<unknown>"),
            (f"{p}Language", self.language),
            (f"{p}AccountCode", self.accountcode),
            (f"{p}Context", self.context),
            (f"{p}Exten", self.exten),
            (f"{p}Priority", str(self.priority)),
            (f"{p}Uniqueid", self.uniqueid),
            (f"{p}Linkedid", self.linkedid),
        ]

    def caller_all(self) -> str:
        """``${CALLERID(all)}``: ``"Name" <num>``."""
        num = self.caller_num
        name = self.caller_name
        if name and num:
            return f'"{name}" <{num}>'
        if num:
            return f"<{num}>"
        return f'"{name}" <>' if name else ""
