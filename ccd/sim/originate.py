"""AMI Originate: call a channel and, once it answers, send it to dialplan or an application.

Reasons in OriginateResponse (Asterisk's ``pbx_dial_reason`` over the dial API): 4 =
answered, 3 = rang without answer (the Originate's timeout), 5 = busy and 8 = congestion
when the called channel *indicated* it (``Busy()`` / ``Congestion()`` behind a Local
channel), and 0 for every other failure - no such endpoint, no contact, and a SIP phone or
trunk that refused the INVITE: chan_pjsip hangs the channel up with the response's cause
(486 Busy Here -> 17) instead of indicating busy, so a busy PJSIP number is Reason 0 with a
DialEnd ``BUSY`` and a Hangup ``Cause: 17`` (the real capture F7, contact 12).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim.apps import run_app
from ccd.sim.channel import Channel
from ccd.sim.dialing import RequestFailed, dial_event, hangup_dial_status, place, rejected, request
from ccd.sim.events import CALL
from ccd.sim.pbx import start_pbx

if TYPE_CHECKING:
    from ccd.sim.engine import Engine

REASON_FAILED, REASON_NOANSWER, REASON_ANSWERED, REASON_BUSY, REASON_CONGESTION = 0, 3, 4, 5, 8


@dataclass(slots=True)
class OriginateRequest:
    channel: str
    context: str = ""
    exten: str = ""
    priority: int = 1
    application: str = ""
    data: str = ""
    timeout: float = 30.0  # seconds
    caller: tuple[str, str] | None = None  # (name, number)
    variables: list[tuple[str, str]] = field(default_factory=list)
    action_id: str | None = None
    account: str = ""


def _response(
    engine: Engine, req: OriginateRequest, ok: bool, reason: int, ch: Channel | None
) -> None:
    fields: list[tuple[str, str]] = []
    if req.action_id is not None:
        fields.append(("ActionID", req.action_id))
    fields += [
        ("Response", "Success" if ok else "Failure"),
        ("Channel", ch.name if ok and ch is not None else req.channel),
    ]
    if req.application:
        fields += [("Application", req.application), ("Data", req.data)]
    else:
        fields += [("Context", req.context), ("Exten", req.exten)]
    # manager.c prints the Originate's own CallerID parts, not the channel's
    cid_name, cid_num = req.caller or ("", "")
    fields += [
        ("Reason", str(reason)),
        ("Uniqueid", ch.uniqueid if ok and ch is not None else "<unknown>"),
        ("CallerIDNum", cid_num or "<unknown>"),
        ("CallerIDName", cid_name or "<unknown>"),
    ]
    engine.emit("OriginateResponse", CALL, fields)


async def originate(
    engine: Engine,
    req: OriginateRequest,
    *,
    emit_response: bool = True,
    on_answer: Callable[[bool], None] | None = None,
) -> int:
    """Place the call; returns the OriginateResponse reason. ``on_answer`` is told the outcome
    as soon as it is known (the synchronous AMI variant answers then)."""
    try:
        ch = request(engine, req.channel)
    except RequestFailed:
        if emit_response:
            _response(engine, req, False, REASON_FAILED, None)
        if on_answer is not None:
            on_answer(False)
        return REASON_FAILED
    ch.driven = True
    one_is_local = ch.is_local
    for name, value in reversed(req.variables):
        engine.set_var(ch, name, value)
        if one_is_local and ch.partner is not None:
            ch.partner.store_var(name, value)
    engine.newexten(ch, "AppDial2", "(Outgoing Line)")
    if req.caller is not None and any(req.caller):
        # ast_set_callerid: only the parts given replace the endpoint's caller ID (a
        # CallerID of "<5551000>" keeps the trunk's name "Support Line", real capture F7)
        name, num = req.caller
        for leg in (ch, ch.partner) if one_is_local and ch.partner is not None else (ch,):
            engine.set_caller(leg, num or leg.caller_num, name or leg.caller_name)
            engine.set_connected(leg, num or leg.conn_num, name or leg.conn_name)
    dial_string = req.channel.partition("/")[2]
    if not one_is_local:
        dial_event(engine, "DialBegin", None, ch, [("DialString", dial_string)])
    place(engine, ch)
    if one_is_local:
        dial_event(engine, "DialBegin", None, ch, [("DialString", dial_string)])
    reason = await _wait(engine, ch, req.timeout)
    if reason == REASON_ANSWERED:
        dial_event(engine, "DialEnd", None, ch, [("DialStatus", "ANSWER")])
        if emit_response:
            _response(engine, req, True, reason, ch)
        if on_answer is not None:
            on_answer(True)
        engine.processed_calls += 1
        if req.application:
            engine.spawn(_run_application(engine, ch, req), name=f"originate {ch.name}")
        else:
            ch.context, ch.exten, ch.priority = req.context, req.exten, req.priority
            start_pbx(engine, ch)
        return reason
    status = {REASON_BUSY: "BUSY", REASON_CONGESTION: "CONGESTION"}.get(reason)
    if reason == REASON_FAILED and not one_is_local and ch.hangup_origin == C.REMOTE:
        # the far end refused: dial.c publishes the dial status of the hangup cause
        status = hangup_dial_status(ch.hangupcause)
    two = ch.partner
    if status is not None:
        dial_event(engine, "DialEnd", None, ch, [("DialStatus", status)])
    if two is not None and not two.dead:
        ch.partner = two.partner = None
        engine.request_hangup(two, C.PARTNER, 0)
        if not two.driven:
            engine.hangup(two)
    if emit_response:
        _response(engine, req, False, reason, ch)
    if on_answer is not None:
        on_answer(False)
    if not ch.dead:
        cause = C.NO_ANSWER if reason == REASON_NOANSWER and not one_is_local else 0
        if reason == REASON_NOANSWER and not one_is_local and not ch.tech_cause:
            ch.tech_cause = 480  # Asterisk CANCELs: "480 Temporarily Unavailable"
        engine.hangup(ch, ch.hangupcause if ch.hangupcause and not one_is_local else cause)
    return reason


async def _wait(engine: Engine, ch: Channel, timeout: float) -> int:
    answered = await engine.phones.wait_answered(ch, timeout)
    if answered:
        return REASON_ANSWERED
    if not ch.is_local and ch.hangup_origin == C.REMOTE:
        return REASON_FAILED  # a SIP refusal is a hangup, not a busy indication
    refused = rejected(ch)
    if refused == "BUSY":
        return REASON_BUSY
    if refused == "CONGESTION":
        return REASON_CONGESTION
    if ch.hungup and ch.state != C.RINGING:
        return REASON_FAILED
    return REASON_NOANSWER


async def _run_application(engine: Engine, ch: Channel, req: OriginateRequest) -> None:
    """An originated call running one application (no dialplan, no Newexten)."""
    engine.set_app(ch, req.application, req.data)
    try:
        await run_app(engine, ch, req.application, req.data)
    finally:
        if not ch.dead:
            engine.hangup(ch)
