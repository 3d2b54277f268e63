"""Moving calls: Redirect (async goto), blind transfer and attended transfer.

These are engine operations; the AMI actions (:mod:`ccd.sim.ami.actions`) validate their
arguments and call them. Event sequences follow the captures (scenario 5a/5b/5c).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim.bridge import Bridge
from ccd.sim.channel import Channel
from ccd.sim.dialing import RequestFailed, dial_event, place, request
from ccd.sim.events import CALL, DTMF
from ccd.sim.pbx import async_goto, start_pbx

log = logging.getLogger("ccd.sim")

if TYPE_CHECKING:
    from ccd.sim.engine import Engine

#: timing of the DTMF Asterisk plays for an AMI Atxfer (from scenario 5b)
FEATURE_DIGIT_GAP = 0.146
HOLD_AFTER = 0.1
EXTEN_DIGIT_GAP = 0.045


def redirect(engine: Engine, ch: Channel, context: str, exten: str, priority: int) -> None:
    """AMI Redirect: the channel continues at ``context,exten,priority``.

    A bridged channel leaves its bridge first; a channel that is not running dialplan
    (an answered outgoing leg) gets a PBX of its own at the target, as Asterisk does.
    """
    bridge = ch.bridge
    if ch.in_pbx:
        async_goto(engine, ch, context, exten, priority)
    else:
        ch.context, ch.exten, ch.priority = context, exten, priority
    if bridge is not None:
        engine.bridge_leave(ch)
        bridge.finish(ch, "goto")
    if not ch.in_pbx:
        start_pbx(engine, ch)


def blind_transfer(engine: Engine, transferer: Channel, exten: str, context: str) -> str:
    """AMI BlindTransfer. Returns '' on success, else Asterisk's error text."""
    bridge = transferer.bridge
    if bridge is None or len(bridge.channels) < 2:
        return "Transfer invalid"
    if not engine.config.dialplan.exists(context, exten):
        return "Transfer invalid"
    transferee = bridge.others(transferer)[0]
    engine.set_var(transferee, "BLINDTRANSFER", transferer.name)
    engine.set_var(transferer, "BLINDTRANSFER", transferee.name)
    engine.chan_event("Unhold", transferer)
    engine.emit(
        "BlindTransfer",
        CALL,
        [
            ("Result", "Success"),
            *transferer.snapshot("Transferer"),
            *transferee.snapshot("Transferee"),
            *bridge.fields(),
            ("IsExternal", "Yes"),
            ("Context", context),
            ("Extension", exten),
        ],
    )
    bridge.transfer_target = (context, exten, 1)
    if bridge.owner is None:
        engine.bridge_leave(transferer)
        async_goto(engine, transferee, context, exten, 1)
        engine.bridge_leave(transferee)
        engine.bridge_destroy(bridge)
        engine.hangup(transferer, C.NORMAL_CLEARING)
    else:
        bridge.finish(transferer, "transfer")
    return ""


async def attended_transfer(engine: Engine, transferer: Channel, exten: str, context: str) -> None:
    """AMI Atxfer: Asterisk plays the feature code and the number as DTMF on the channel,
    puts the caller on hold and calls ``Local/exten@context``; the transfer completes when
    the transferer hangs up (or is aborted if the target does not answer)."""
    feature = engine.config.features.atxfer or "*2"
    for i, digit in enumerate(feature):
        if transferer.dead:
            return
        engine.dtmf(transferer, digit, duration_ms=0 if i == 0 else 100)
        await engine.clock.sleep(FEATURE_DIGIT_GAP if i + 1 < len(feature) else HOLD_AFTER)
    orig = transferer.bridge
    if orig is None or transferer.dead or not _may_transfer(orig, transferer):
        return
    transferee = next(iter(orig.others(transferer)), None)
    if transferee is None:
        return
    transferer.on_hold = True
    engine.chan_event("Hold", transferer)
    engine.moh_start(transferee)
    announce = engine.config.features.transferannouncesound
    if engine.settings.sound_length(announce, transferer.language) is None:
        # Asterisk: "File pbx-transfer does not exist", then "Unable to acquire target
        # extension for attended transfer": the caller is taken off hold at once
        log.warning("%s: attended transfer announcement %s is missing", transferer.name,
                    announce)
        _return_to_caller(engine, transferer, orig, transferee, None)
        return
    for digit in exten:
        await engine.clock.sleep(EXTEN_DIGIT_GAP)
        if transferer.dead:
            return
        engine.dtmf(transferer, digit, duration_ms=100)
    try:
        one = request(engine, f"Local/{exten}@{context}", requestor=transferer)
    except RequestFailed:
        _return_to_caller(engine, transferer, orig, transferee, None)
        return
    two = one.partner
    one.driven = True
    consult = engine.bridge_create(owner="atxfer")
    consult.consultation = True
    if two is not None:
        engine.set_caller(two, transferer.caller_num, transferer.caller_name)
    place(engine, one)
    engine.set_connected(one, transferer.caller_num, transferer.caller_name)
    engine.bridge_enter(consult, one)
    engine.bridge_leave(transferer)
    engine.bridge_enter(consult, transferer)
    engine.set_connected(transferer, "", "")
    state = {"done": False}

    def complete(ch: Channel, origin: str) -> bool:
        if state["done"] or origin not in (C.REMOTE, C.AMI) or orig.dissolved:
            return False
        state["done"] = True
        _complete(engine, transferer, transferee, orig, consult, one)
        return True

    transferer.interceptor = complete

    def abort() -> None:
        if state["done"]:
            return
        state["done"] = True
        transferer.interceptor = transferer.atxfer_abort = None
        _return_to_caller(engine, transferer, orig, transferee, consult)
        if not one.dead:
            engine.hangup(one, C.NORMAL_CLEARING)

    transferer.atxfer_abort = abort
    timeout = engine.config.features.atxfernoanswertimeout
    await _await_ringing(engine, one, timeout)
    if not one.hungup and one.state == C.RINGING:
        dial_event(engine, "DialState", None, one, [("DialStatus", "RINGING")])
    answered = await engine.phones.wait_answered(one, timeout)
    if state["done"]:
        return
    if answered:
        dial_event(engine, "DialEnd", None, one, [("DialStatus", "ANSWER")])
    if not answered or one.hungup:
        transferer.interceptor = transferer.atxfer_abort = None
        _return_to_caller(engine, transferer, orig, transferee, consult)
        if not one.dead:
            engine.hangup(one)
        return
    engine.set_caller(one, *_cid_of_peer(one))


async def _await_ringing(engine: Engine, one: Channel, timeout: float) -> None:
    ring = asyncio.ensure_future(one.ringing.wait())
    up = asyncio.ensure_future(one.answered.wait())
    gone = asyncio.ensure_future(one.hangup_event.wait())
    await asyncio.wait(
        {ring, up, gone}, timeout=engine.clock.real(timeout), return_when=asyncio.FIRST_COMPLETED
    )
    for w in (ring, up, gone):
        w.cancel()


def _cid_of_peer(one: Channel) -> tuple[str, str]:
    two = one.partner
    if two is not None and two.bridge is not None:
        for c in two.bridge.others(two):
            return c.caller_num, c.caller_name
    return one.caller_num, one.caller_name


def _may_transfer(bridge: Bridge, ch: Channel) -> bool:
    if bridge.owner is None:
        return True
    opts = bridge.options
    return ("T" in opts) if ch.in_pbx else ("t" in opts)


def _return_to_caller(
    engine: Engine, transferer: Channel, orig: Bridge, transferee: Channel, consult: Bridge | None
) -> None:
    if consult is not None and transferer.bridge is consult:
        engine.bridge_leave(transferer)
        engine.bridge_destroy(consult)
    if not transferer.dead and not orig.dissolved:
        engine.bridge_enter(orig, transferer)
    engine.moh_stop(transferee)
    transferer.on_hold = False
    if not transferer.dead:
        engine.chan_event("Unhold", transferer)


def _complete(
    engine: Engine,
    transferer: Channel,
    transferee: Channel,
    orig: Bridge,
    consult: Bridge,
    one: Channel,
) -> None:
    """The transferer hung up during the consultation: the target joins the caller."""
    engine.emit("BridgeMerge", CALL, [*orig.fields("To"), *consult.fields("From")])
    engine.bridge_leave(one)
    engine.moh_stop(transferee)
    engine.bridge_enter(orig, one)
    engine.set_connected(one, transferee.caller_num, transferee.caller_name)
    engine.set_connected(transferee, one.caller_num, one.caller_name)
    engine.emit(
        "AttendedTransfer",
        CALL,
        [
            ("Result", "Success"),
            *transferer.snapshot("OrigTransferer"),
            *orig.fields("Orig"),
            *transferer.snapshot("SecondTransferer"),
            *consult.fields("Second"),
            *transferee.snapshot("Transferee"),
            *one.snapshot("TransferTarget"),
            ("IsExternal", "No"),
            ("DestType", "Bridge"),
            ("DestBridgeUniqueid", orig.uniqueid),
        ],
    )
    owner = orig.owner
    transferred = getattr(owner, "transferred", None)
    if callable(transferred):
        transferred(transferer)
    transferer.interceptor = transferer.atxfer_abort = None
    engine.bridge_leave(transferer)
    engine.bridge_destroy(consult)
    transferer.on_hold = False
    engine.hangup(transferer, C.NORMAL_CLEARING)
    two = one.partner
    if two is not None:
        engine.set_caller(two, transferee.caller_num, transferee.caller_name)


def cancel_attended(engine: Engine, ch: Channel) -> None:
    """AMI CancelAtxfer: Asterisk queues the atxferabort code on the channel as if its phone
    pressed it; a consultation in progress ends and the transferer is back with the caller."""
    code = engine.config.features.atxfer_abort or "*1"
    for digit in code:
        engine.dtmf(ch, digit, duration_ms=100)
    if ch.atxfer_abort is not None:
        ch.atxfer_abort()


def play_dtmf(engine: Engine, ch: Channel, digits: str) -> None:
    """DTMF sent to a channel from outside (PlayDTMF): DTMFEnd, digits reach the channel."""
    for d in digits:
        engine.emit(
            "DTMFEnd",
            DTMF,
            [*ch.snapshot(), ("Digit", d), ("DurationMs", "100"), ("Direction", "Received")],
        )
        ch.dtmf.put_nowait(d)
