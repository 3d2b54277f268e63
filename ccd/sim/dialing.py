"""Outgoing call legs, shared by Dial(), Queue(), Originate and transfers.

:func:`request` creates the channel (Asterisk's ``ast_request``), :func:`place` sends it to
the phone or starts the Local channel's other half (``ast_call``), :func:`dial_events` emits
DialBegin/DialState/DialEnd with both snapshots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim.channel import Channel
from ccd.sim.events import CALL

if TYPE_CHECKING:
    from ccd.sim.engine import Engine

#: Dial statuses (DIALSTATUS) by hangup cause of the called leg
STATUS_BY_CAUSE = {
    C.USER_BUSY: "BUSY",
    21: "BUSY",
    C.CONGESTION: "CONGESTION",
    C.SUBSCRIBER_ABSENT: "CHANUNAVAIL",
    3: "CHANUNAVAIL",
}


class RequestFailed(Exception):
    """The channel could not be created (unknown or unregistered endpoint)."""

    def __init__(self, cause: int, reason: str) -> None:
        super().__init__(reason)
        self.cause = cause


def request(
    engine: Engine, target: str, *, requestor: Channel | None = None, linkedid: str | None = None
) -> Channel:
    """Create the outgoing channel for ``PJSIP/1001`` or ``Local/exten@context[/n]``."""
    tech, sep, resource = target.partition("/")
    if not sep or not resource:
        raise RequestFailed(3, f"bad dial string {target!r}")
    if tech.upper() == "PJSIP":
        endpoint = resource.split("/", 1)[0]
        if "@" in endpoint:  # PJSIP/<number>@<endpoint>: a number through a trunk
            endpoint = endpoint.split("@", 1)[1]
        ep = engine.config.endpoints.get(endpoint)
        if ep is None:
            raise RequestFailed(3, f"no PJSIP endpoint {endpoint}")
        if not engine.phones.registered(endpoint):
            raise RequestFailed(C.SUBSCRIBER_ABSENT, f"endpoint {endpoint} has no contact")
        return engine.new_channel(
            "PJSIP",
            endpoint,
            context=ep.context,
            exten="s",
            state=C.DOWN,
            caller=(ep.caller_name, ep.caller_num),
            language=ep.language,
            requestor=requestor,
            linkedid=linkedid,
            endpoint=endpoint,
        )
    if tech.lower() == "local":
        exten, _, rest = resource.partition("@")
        context = rest.split("/", 1)[0]
        if not exten or context not in engine.config.dialplan.contexts:
            raise RequestFailed(3, f"no such context for {target}")
        one, _two = engine.new_local_pair(resource, requestor=requestor, linkedid=linkedid)
        return one
    raise RequestFailed(3, f"channel technology {tech} is not simulated")


def place(engine: Engine, ch: Channel) -> None:
    """Send the call: ring the phone, or start the dialplan on the Local ;2 half."""
    from ccd.sim.pbx import start_pbx

    if ch.is_local:
        two = ch.partner
        if two is None:
            return
        optimize = isinstance(ch.owner, dict) and ch.owner.get("optimize", True)
        engine.emit(
            "LocalBridge",
            CALL,
            [
                *ch.snapshot("LocalOne"),
                *two.snapshot("LocalTwo"),
                ("Context", two.context),
                ("Exten", two.exten),
                ("LocalOptimization", "Yes" if optimize else "No"),
            ],
        )
        start_pbx(engine, two)
        return
    phone = engine.phones.get(ch.resource)
    if phone is None:
        ch.hangupcause = 3
        ch.hangup_event.set()
        return
    phone.offer(ch)


def dial_event(
    engine: Engine, name: str, caller: Channel | None, dest: Channel, extra: list[tuple[str, str]]
) -> None:
    """DialBegin / DialState / DialEnd (no caller snapshot for an Originate)."""
    fields = [*(caller.snapshot() if caller is not None else []), *dest.snapshot("Dest"), *extra]
    engine.emit(name, CALL, fields)


def hangup_dial_status(cause: int) -> str:
    """dial.c's ``ast_hangup_cause_to_dial_status``: the DialEnd status of a called channel
    that hung up before answering (Originate and the dial API)."""
    if cause == C.USER_BUSY:
        return "BUSY"
    if cause == C.CONGESTION:
        return "CONGESTION"
    if cause in (3, C.SUBSCRIBER_ABSENT):
        return "CHANUNAVAIL"
    return "NOANSWER"


def status_of(ch: Channel) -> str:
    """DIALSTATUS for a leg that did not answer."""
    if ch.hangupcause in STATUS_BY_CAUSE:
        return STATUS_BY_CAUSE[ch.hangupcause]
    return "NOANSWER"


def rejected(ch: Channel) -> str:
    """'BUSY' / 'CONGESTION' when the called side refused (phone, or Busy() behind Local)."""
    if ch.hangup_origin and ch.hangupcause in (C.USER_BUSY, 21):
        return "BUSY"
    if ch.hangup_origin and ch.hangupcause == C.CONGESTION:
        return "CONGESTION"
    two = ch.partner if ch.is_local else None
    if two is not None:
        if two.state == C.BUSY or (two.hangupcause == C.USER_BUSY and two.appl == "Busy"):
            return "BUSY"
        if two.hangupcause == C.CONGESTION and two.appl == "Congestion":
            return "CONGESTION"
    return ""
