"""The dialplan executor: runs a channel through ``extensions.conf`` like Asterisk's PBX thread.

For each priority: Newexten (when the location changed), then the application
(:mod:`ccd.sim.apps`). When an application returns -1 or the channel is hung up, a
SoftHangupRequest (Cause 16) is shown, the ``h`` extension of the current context runs,
and the channel is destroyed. An application that does not exist (its module is not
loaded) is not shown in a Newexten: Asterisk logs ``No application 'AMD' for extension
(...)`` and gives the channel up at once, as the real capture F7 shows (SoftHangupRequest
Cause 16, then Hangup with Cause 0 when nothing set one). An async goto (AMI Redirect,
blind transfer) moves the channel between steps; its Newexten at the new place still names
the previous application, as Asterisk 22 does.
"""

from __future__ import annotations

import logging
import random
import re
import time
from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim.channel import Channel
from ccd.sim.dialplan import expand, split_args

if TYPE_CHECKING:
    from ccd.sim.engine import Engine

log = logging.getLogger(__name__)


def start_pbx(engine: Engine, ch: Channel) -> None:
    """Start running the dialplan on ``ch`` (its context/exten/priority)."""
    if not ch.in_pbx:
        ch.pbx_base = (ch.appl, ch.data)
    ch.in_pbx = True
    ch.driven = True
    engine.spawn(run_pbx(engine, ch), name=f"pbx {ch.name}")


async def run_pbx(engine: Engine, ch: Channel) -> None:
    from ccd.sim.apps import app_exists, no_application, run_app

    plan = engine.config.dialplan
    try:
        while not ch.dead:
            if ch.pending_goto is not None:
                ch.context, ch.exten, ch.priority = ch.pending_goto
                ch.pending_goto = None
            if ch.hungup:
                _leaving(engine, ch)
                break
            step = plan.step(ch.context, ch.exten, ch.priority)
            if step is None:
                if (
                    ch.priority == 1
                    and plan.find(ch.context, ch.exten) is None
                    and plan.exists(ch.context, "i")
                ):
                    engine.set_var(ch, "INVALID_EXTEN", ch.exten)
                    ch.exten, ch.priority = "i", 1
                    continue
                log.info(
                    "auto fallthrough on %s at %s,%s,%d", ch.name, ch.context, ch.exten, ch.priority
                )
                break
            if not app_exists(engine, step.app):
                no_application(ch, step.app)
                _leaving(engine, ch)
                _restored_location(engine, ch)
                break
            data = substitute(engine, ch, step.data)
            engine.newexten(ch, step.app, data)
            where = (ch.context, ch.exten, ch.priority)
            ch.wake.clear()
            res = await run_app(engine, ch, step.app, data)
            if ch.pending_goto is not None and not ch.hungup:
                continue
            if res != 0 or ch.hungup:
                _leaving(engine, ch)
                break
            if (ch.context, ch.exten, ch.priority) == where:
                ch.priority += 1
        if not ch.dead:
            await run_h(engine, ch)
    finally:
        ch.in_pbx = False
        if not ch.dead:
            engine.hangup(ch)


def _leaving(engine: Engine, ch: Channel) -> None:
    """The PBX gives up the channel: SoftHangupRequest (Cause 16) unless Hangup() said it."""
    if ch.hangup_origin != C.DIALPLAN and not ch.dead:
        engine.chan_event("SoftHangupRequest", ch, [("Cause", "16")])
    ch.hangup_origin = ch.hangup_origin or C.DIALPLAN
    ch.hangup_event.set()


def _restored_location(engine: Engine, ch: Channel) -> None:
    """The PBX gave up at a priority it never ran: the channel sits there with the
    application it had before the PBX (pbx_exec restores it after every application).
    chan_pjsip publishes that snapshot as it hangs up, so an originated PJSIP channel shows
    a Newexten ``AppDial2`` at the missing application's priority (the real capture F7);
    Local channels publish nothing more."""
    ch.appl, ch.data = ch.pbx_base
    if not ch.is_local and ch.appl:
        engine.publish_location(ch)


async def run_h(engine: Engine, ch: Channel) -> None:
    """Run the ``h`` extension of the channel's context, if it has one."""
    from ccd.sim.apps import app_exists, no_application, run_app

    plan = engine.config.dialplan
    if ch.dead or not plan.exists(ch.context, "h"):
        return
    ch.exten, ch.priority = "h", 1
    while not ch.dead:
        step = plan.step(ch.context, "h", ch.priority)
        if step is None:
            break
        if not app_exists(engine, step.app):
            no_application(ch, step.app)
            break
        data = substitute(engine, ch, step.data)
        engine.newexten(ch, step.app, data)
        if step.app.lower() in ("hangup", "return"):
            ch.priority += 1
            break
        res = await run_app(engine, ch, step.app, data, in_h=True)
        ch.priority += 1
        if res != 0:
            break


def goto(engine: Engine, ch: Channel, target: str) -> bool:
    """Dialplan Goto(): ``[[context,]exten,]priority`` (labels allowed). False if invalid."""
    parts = [p.strip() for p in split_args(target)]
    if len(parts) == 1:
        ctx, ext, prio = ch.context, ch.exten, parts[0]
    elif len(parts) == 2:
        ctx, ext, prio = ch.context, parts[0], parts[1]
    else:
        ctx, ext, prio = parts[0], parts[1], parts[2]
    number = engine.config.dialplan.resolve_priority(ctx, ext, prio)
    if number is None:
        return False
    ch.context, ch.exten, ch.priority = ctx, ext, number
    return True


def async_goto(engine: Engine, ch: Channel, context: str, exten: str, priority: int) -> None:
    """Move a channel elsewhere from outside (AMI Redirect, blind transfer).

    Asterisk publishes the new location at once, still naming the old application; the step
    itself then runs without a second Newexten.
    """
    ch.context, ch.exten, ch.priority = context, exten, priority
    ch.pending_goto = (context, exten, priority)
    engine.publish_location(ch)
    ch.wake.set()


# --------------------------------------------------------------------------- expressions


def substitute(engine: Engine, ch: Channel, text: str) -> str:
    """Expand ``${...}`` and ``$[...]`` in the context of ``ch``."""
    return expand(
        text,
        lambda name: lookup(engine, ch, name),
        lambda fn, args: call_function(engine, ch, fn, args),
    )


def lookup(engine: Engine, ch: Channel, name: str) -> str | None:
    builtin = {
        "EXTEN": lambda: ch.exten,
        "CONTEXT": lambda: ch.context,
        "PRIORITY": lambda: str(ch.priority),
        "CHANNEL": lambda: ch.name,
        "UNIQUEID": lambda: ch.uniqueid,
        "EPOCH": lambda: str(int(engine.clock.now())),
        "ASTSPOOLDIR": lambda: str(engine.settings.spool_dir),
        "HANGUPCAUSE": lambda: str(ch.hangupcause),
        "CALLERID(num)": lambda: ch.caller_num,
        "LANGUAGE": lambda: ch.language,
    }
    if name in builtin:
        return builtin[name]()
    value = ch.get_var(name)
    if value is not None:
        return value
    return engine.config.dialplan.globals.get(name)


def call_function(engine: Engine, ch: Channel, func: str, args: str) -> str:
    f = func.upper()
    argv = split_args(args)
    if f == "CALLERID":
        what = argv[0].strip().lower()
        if what == "all":
            return ch.caller_all()
        if what in ("num", "number"):
            return ch.caller_num
        if what == "name":
            return ch.caller_name
        return ""
    if f == "CONNECTEDLINE":
        what = argv[0].strip().lower()
        return ch.conn_num if what in ("num", "number") else ch.conn_name
    if f == "STRFTIME":
        epoch = float(argv[0] or engine.clock.now()) if argv and argv[0] else engine.clock.now()
        fmt = argv[2] if len(argv) > 2 else "%c"
        return time.strftime(fmt, time.gmtime(epoch))  # the simulated PBX runs on UTC
    if f == "CHANNELS":
        pattern = args.strip()
        try:
            rx = re.compile(pattern) if pattern else None
        except re.error:
            return ""
        return " ".join(n for n, c in engine.channels.items()
                        if not c.dead and (rx is None or rx.search(n)))
    if f == "IF":
        cond, _, branches = args.partition("?")
        yes, _, no = branches.partition(":")
        return yes if _truthy(cond) else no
    if f == "LEN":
        return str(len(args))
    if f == "RAND":
        lo = int(argv[0]) if argv and argv[0].strip() else 0
        hi = int(argv[1]) if len(argv) > 1 and argv[1].strip() else 2147483647
        return str(random.randint(min(lo, hi), max(lo, hi)))
    if f == "CHANNEL":
        what = argv[0].strip().lower()
        return {
            "name": ch.name,
            "uniqueid": ch.uniqueid,
            "linkedid": ch.linkedid,
            "language": ch.language,
            "state": ch.state_desc,
            "channeltype": ch.tech,
        }.get(what, "")
    if f == "QUEUE_MEMBER":
        return engine.queues.member_function(argv)
    if f in ("CDR", "CDR_PROP"):
        return ""
    if f == "EXISTS":
        return "1" if ch.get_var(args) is not None else "0"
    if f == "ISNULL":
        return "1" if not args else "0"
    return ""


def _truthy(v: str) -> bool:
    v = v.strip()
    if not v:
        return False
    try:
        return float(v) != 0
    except ValueError:
        return True
