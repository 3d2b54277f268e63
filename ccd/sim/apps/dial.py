"""``Dial(targets,timeout,options)``: ring one or more channels, bridge the first to answer."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim.apps import app
from ccd.sim.channel import Channel
from ccd.sim.dialing import RequestFailed, dial_event, place, rejected, request, status_of
from ccd.sim.dialplan import split_args
from ccd.sim.pbx import async_goto

if TYPE_CHECKING:
    from ccd.sim.engine import Engine

RESET_VARS = (
    "DIALSTATUS",
    "DIALEDPEERNUMBER",
    "DIALEDPEERNAME",
    "ANSWEREDTIME",
    "ANSWEREDTIME_MS",
    "DIALEDTIME",
    "DIALEDTIME_MS",
    "RINGTIME",
    "RINGTIME_MS",
)


@app("Dial")
async def dial(engine: Engine, ch: Channel, data: str) -> int:
    args = [a.strip() for a in split_args(data)] + ["", ""]
    targets = [t.strip() for t in args[0].split("&") if t.strip()]
    timeout = float(args[1]) if args[1].replace(".", "", 1).isdigit() else None
    options = args[2]
    started = engine.clock.now()
    for var in RESET_VARS:
        engine.set_var(ch, var, "")
    legs: list[Channel] = []
    unavailable = False
    for target in targets:
        try:
            leg = request(engine, target, requestor=ch)
        except RequestFailed:
            unavailable = True
            continue
        leg.driven = True
        engine.set_var(leg, "DIALEDPEERNUMBER", target.partition("/")[2])
        leg.exten = ch.exten
        leg.conn_num, leg.conn_name = ch.caller_num, ch.caller_name
        engine.newexten(leg, "AppDial", "(Outgoing Line)")
        engine.chan_event("NewConnectedLine", leg)
        dial_event(engine, "DialBegin", ch, leg, [("DialString", target.partition("/")[2])])
        engine.set_connected(ch, leg.caller_num, leg.caller_name)
        place(engine, leg)
        legs.append(leg)
    if not legs:
        engine.set_var(ch, "DIALSTATUS", "CHANUNAVAIL" if unavailable else "CONGESTION")
        return 0
    winner, status = await _wait(engine, ch, legs, timeout)
    if winner is None:
        engine.set_var(ch, "DIALEDTIME", str(int(engine.clock.now() - started)))
        engine.set_var(ch, "DIALSTATUS", status)
        return -1 if ch.hungup else 0
    return await _bridge(engine, ch, winner, options, started)


async def _wait(
    engine: Engine, ch: Channel, legs: list[Channel], timeout: float | None
) -> tuple[Channel | None, str]:
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + engine.clock.real(timeout)
    reported: set[str] = set()
    pending = list(legs)
    last_status = "NOANSWER"
    while True:
        for leg in list(pending):
            if leg.state == C.RINGING and leg.name not in reported:
                reported.add(leg.name)
                dial_event(engine, "DialState", ch, leg, [("DialStatus", "RINGING")])
                if ch.partner is not None and ch.partner.state not in (C.UP, C.RINGING):
                    engine.set_state(ch.partner, C.RINGING)  # ringing reaches ;1
            if leg.state == C.UP and not leg.hungup:
                pending.remove(leg)
                for other in pending:
                    dial_event(engine, "DialEnd", ch, other, [("DialStatus", "CANCEL")])
                    engine.hangup(other)
                return leg, "ANSWER"
            refused = rejected(leg)
            if leg.hungup or refused:
                pending.remove(leg)
                last_status = refused or status_of(leg)
                dial_event(engine, "DialEnd", ch, leg, [("DialStatus", last_status)])
                if not leg.dead:
                    engine.hangup(leg)
        if not pending:
            return None, last_status
        if ch.hungup or ch.pending_goto is not None:
            for leg in pending:
                dial_event(engine, "DialEnd", ch, leg, [("DialStatus", "CANCEL")])
                engine.hangup(leg)
            return None, "CANCEL"
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            for leg in pending:
                dial_event(engine, "DialEnd", ch, leg, [("DialStatus", "NOANSWER")])
                engine.hangup(leg)
            return None, "NOANSWER"
        waits = [asyncio.ensure_future(ch.wake.wait())]
        for leg in pending:
            waits.append(asyncio.ensure_future(leg.wake.wait()))
            waits.append(asyncio.ensure_future(leg.answered.wait()))
            if leg.name not in reported:
                waits.append(asyncio.ensure_future(leg.ringing.wait()))
        await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        ch.wake.clear()
        for leg in pending:
            leg.wake.clear()


async def _bridge(engine: Engine, ch: Channel, leg: Channel, options: str, started: float) -> int:
    now = engine.clock.now()
    dial_event(engine, "DialEnd", ch, leg, [("DialStatus", "ANSWER")])
    engine.set_var(ch, "RINGTIME", str(int(now - started)))
    engine.set_var(ch, "RINGTIME_MS", str(int((now - started) * 1000)))
    engine.set_var(ch, "DIALSTATUS", "ANSWER")
    engine.set_var(ch, "DIALEDPEERNAME", leg.name)
    engine.set_var(ch, "DIALEDPEERNUMBER", leg.resource)
    if ch.state != C.UP:
        engine.answer(ch)
    bridge = engine.bridge_create(owner=ch)
    bridge.options = options
    leg.exten = ""
    engine.newexten(leg, "AppDial", "(Outgoing Line)")
    engine.bridge_enter(bridge, leg)
    engine.bridge_enter(bridge, ch)
    answered = engine.clock.now()
    assert_ended = bridge.ended
    if assert_ended is None:
        return -1
    first, why = await assert_ended
    talked = engine.clock.now() - answered
    if why == "transfer":
        if leg.bridge is bridge:
            engine.bridge_leave(leg)
        if bridge.transfer_target is not None:
            async_goto(engine, ch, *bridge.transfer_target)
        if ch.bridge is bridge:
            engine.bridge_leave(ch)
        engine.bridge_destroy(bridge)
        _hangup_leg(engine, leg, bridge)
        return 0
    remaining = list(bridge.channels)
    for other in remaining:
        engine.bridge_leave(other)
    engine.bridge_destroy(bridge)
    ch.hangupcause = ch.hangupcause or C.NORMAL_CLEARING
    for other in [leg, *remaining]:
        if other is not ch:
            _hangup_leg(engine, other, bridge)
    engine.set_var(ch, "ANSWEREDTIME", str(int(talked)))
    engine.set_var(ch, "ANSWEREDTIME_MS", str(int(talked * 1000)))
    engine.set_var(ch, "DIALEDTIME", str(int(engine.clock.now() - started)))
    engine.set_var(ch, "DIALSTATUS", "ANSWER")
    if why == "goto" and first is ch:
        return 0
    if first is not ch and "g" in options and not ch.hungup:
        return 0
    return -1


def _hangup_leg(engine: Engine, leg: Channel, bridge: object) -> None:
    if leg.dead or leg.in_pbx:
        return
    if leg.bridge is not None and leg.bridge is not bridge:
        return  # moved into another bridge (a transfer or a Local optimisation)
    leg.hangupcause = leg.hangupcause or C.NORMAL_CLEARING
    engine.hangup(leg)
