"""AMI actions: argument checks and responses worded as Asterisk 22 words them.

Each handler gets the session and the message and writes its response (and list events)
to the session; the PBX changes go through the engine. Unknown actions get manager.c's
``Invalid/unknown command`` error and a RequestBadFormat security event.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim import transfer
from ccd.sim.apps import mixmonitor as mixmon
from ccd.sim.dialplan import split_args
from ccd.sim.events import CLASSES, SYSTEM, list_complete, list_item, response
from ccd.sim.originate import OriginateRequest, originate
from ccd.sim.pbx import call_function, lookup
from ccd.sim.pbxconf import is_true, parse_callerid

if TYPE_CHECKING:
    from ccd.sim.ami.server import AmiServer, Message, Session
    from ccd.sim.channel import Channel
    from ccd.sim.engine import Engine
    from ccd.sim.queues import Queue

log = logging.getLogger(__name__)

Handler = Callable[["Dispatcher", "Session", "Message"], Awaitable[bool | None]]

#: lower-case action name -> (write classes that allow it, empty = anyone logged in;
#: handler; the name as Asterisk spells it)
ACTIONS: dict[str, tuple[frozenset[str], Handler, str]] = {}
#: lower-case action name -> the loadable module that registers it; the others are
#: Asterisk's core (manager.c and friends), answered as soon as the AMI port is open
MODULE_OF: dict[str, str] = {
    **dict.fromkeys(("queuestatus", "queuesummary", "queueadd", "queueremove", "queuepause",
                     "queuepenalty", "queuememberringinuse", "queuelog"), "app_queue"),
    **dict.fromkeys(("mixmonitor", "stopmixmonitor", "mixmonitormute"), "app_mixmonitor"),
    "pjsipnotify": "res_pjsip_notify",
}


def action(name: str, *classes: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        ACTIONS[name.lower()] = (frozenset(classes), fn, name)
        return fn

    return register


def available(engine: Engine, low: str) -> bool:
    """Is the action registered now? Module actions only once Asterisk is fully booted."""
    return low in ACTIONS and (engine.fully_booted or low not in MODULE_OF)


def _hms(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{(s % 3600) // 60:02d}:{s % 60:02d}"


class Dispatcher:
    """Routes each received action to its handler."""

    def __init__(self, server: AmiServer) -> None:
        self.server = server

    @property
    def engine(self) -> Engine:
        return self.server.engine

    # ------------------------------------------------------------------ responses

    def ok(
        self,
        s: Session,
        m: Message,
        message: str | None = None,
        extra: list[tuple[str, str]] | None = None,
    ) -> None:
        fields = [] if message is None else [("Message", message)]
        s.send(response("Success", m.action_id, fields + (extra or [])))

    def error(self, s: Session, m: Message, message: str) -> None:
        s.send(response("Error", m.action_id, [("Message", message)]))

    def list_start(self, s: Session, m: Message, message: str) -> None:
        s.send(response("Success", m.action_id, [("EventList", "start"), ("Message", message)]))

    # ------------------------------------------------------------------ dispatch

    async def dispatch(self, s: Session, m: Message) -> bool:
        """Handle one action; False = close the session."""
        name = m.action
        if not name:
            self.server.security_event(
                "RequestBadFormat", s, "Error", [("RequestType", "Action: NONE"), *self._account(s)]
            )
            self.error(s, m, "Missing action in request")
            return True
        low = name.lower()
        if not s.authenticated and low not in ("login", "logoff", "challenge"):
            self.server.security_event(
                "RequestNotAllowed", s, "Error", [("RequestType", f"Action: {name}")]
            )
            self.error(s, m, "Permission denied")
            return True
        entry = ACTIONS.get(low) if available(self.engine, low) else None
        if entry is None:
            self.error(
                s,
                m,
                f"Invalid/unknown command: {name}. Use Action: ListCommands to "
                "show available commands.",
            )
            self.server.security_event(
                "RequestBadFormat",
                s,
                "Error",
                [("RequestType", f"Action: {name}"), *self._account(s)],
            )
            return True
        classes, handler, _ = entry
        if classes and s.authenticated and not (classes & s.write_classes):
            self.error(s, m, "Permission denied")
            return True
        for _k, v in m.headers:
            if "\r" in v or "\n" in v:
                self.error(s, m, "Invalid header")
                return True
        try:
            keep = await handler(self, s, m)
        except Exception:
            log.exception("AMI action %s failed", name)
            self.error(s, m, "Internal error")
            return True
        return keep is not False

    def _account(self, s: Session) -> list[tuple[str, str]]:
        return [("AccountID", s.user.name)] if s.user is not None else []

    def channel(self, name: str) -> Channel | None:
        return self.engine.find_channel(name.strip()) if name.strip() else None


# ====================================================================== session


def _mask(user_read: frozenset[str], spec: str) -> frozenset[str] | None:
    """Events: on/off/<classes>; None = invalid."""
    spec = spec.strip().lower()
    if spec in ("on", "yes", "true", "all", "1"):
        return frozenset(CLASSES)
    if spec in ("off", "no", "false", "none", "0"):
        return frozenset()
    parts = {p.strip() for p in spec.split(",") if p.strip()}
    if not parts or not parts <= set(CLASSES) | {"all"}:
        return None
    return frozenset(CLASSES) if "all" in parts else frozenset(parts)


def _classes(spec: frozenset[str]) -> frozenset[str]:
    return frozenset(CLASSES) if "all" in spec else spec


@action("Login")
async def login(d: Dispatcher, s: Session, m: Message) -> bool:
    server = d.server
    if s.authenticated:
        d.ok(s, m, "Already authenticated")
        return True
    username = m.get("Username")
    user = server.manager.users.get(username)
    good = False
    if user is not None and server.permitted(user, str(s.peer[0])):
        if m.get("AuthType").lower() == "md5" and s.challenge:
            expect = hashlib.md5((s.challenge + user.secret).encode()).hexdigest()
            good = m.get("Key").lower() == expect
        else:
            good = m.get("Secret") == user.secret
    if not good or user is None:
        reason = "InvalidAccountID" if user is None else "InvalidPassword"
        server.security_event(reason, s, "Error", [("AccountID", username)])
        await asyncio.sleep(server.auth_fail_delay)
        d.error(s, m, "Authentication failed")
        return False
    s.user = user
    s.read_classes = _classes(user.read)
    s.write_classes = _classes(user.write)
    if m.has("Events"):
        mask = _mask(s.read_classes, m.get("Events"))
        s.event_classes = mask if mask is not None else frozenset()
    d.ok(s, m, "Authentication accepted")
    s.authenticated = True
    eng = d.engine
    # manager.c sends this one only when fully booted (else FullyBooted comes when it is)
    if SYSTEM in s.event_classes and SYSTEM in s.read_classes and eng.fully_booted:
        up = eng.uptime()
        s.send(
            (
                f"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: {up}\r\n"
                f"LastReload: {int(eng.clock.now() - eng.reload_time)}\r\n"
                "Status: Fully Booted\r\n\r\n"
            ).encode()
        )
    server.security_event(
        "SuccessfulAuth", s, "Informational", [("AccountID", user.name), ("UsingPassword", "0")]
    )
    if server.on_login is not None:
        server.on_login(s)
    return True


@action("Challenge")
async def challenge(d: Dispatcher, s: Session, m: Message) -> None:
    if m.get("AuthType").lower() != "md5":
        d.error(s, m, "Must specify AuthType")
        return
    if not s.challenge:
        s.challenge = str(random.randrange(10**8, 10**9))
    s.send(response("Success", m.action_id, [("Challenge", s.challenge)]))


@action("Logoff")
async def logoff(d: Dispatcher, s: Session, m: Message) -> bool:
    s.send(response("Goodbye", m.action_id, [("Message", "Thanks for all the fish.")]))
    return False


@action("Events")
async def events(d: Dispatcher, s: Session, m: Message) -> None:
    mask = _mask(s.read_classes, m.get("EventMask"))
    if mask is None:
        d.error(s, m, "Invalid event mask")
        return
    s.event_classes = mask
    s.send(response("Success", m.action_id, [("Events", "On" if mask else "Off")]))


@action("Ping")
async def ping(d: Dispatcher, s: Session, m: Message) -> None:
    s.send(
        response(
            "Success", m.action_id, [("Ping", "Pong"), ("Timestamp", f"{d.engine.clock.now():.6f}")]
        )
    )


@action("ListCommands")
async def list_commands(d: Dispatcher, s: Session, m: Message) -> None:
    fields = [
        (name, f"{name}  (Priv: {','.join([*sorted(classes), 'all']) if classes else '<none>'})")
        for low, (classes, _, name) in sorted(ACTIONS.items())
        if available(d.engine, low)
    ]
    s.send(response("Success", m.action_id, fields))


@action("CoreStatus", "system", "reporting")
async def core_status(d: Dispatcher, s: Session, m: Message) -> None:
    eng = d.engine
    boot, reload_ = time.gmtime(eng.boot_time), time.gmtime(eng.reload_time)
    calls = len({c.linkedid for c in eng.channels.values()})
    d.ok(
        s,
        m,
        extra=[
            ("CoreStartupDate", time.strftime("%Y-%m-%d", boot)),
            ("CoreStartupTime", time.strftime("%H:%M:%S", boot)),
            ("CoreReloadDate", time.strftime("%Y-%m-%d", reload_)),
            ("CoreReloadTime", time.strftime("%H:%M:%S", reload_)),
            ("CoreCurrentCalls", str(calls)),
            ("CoreProcessedCalls", str(eng.processed_calls)),
        ],
    )


# ====================================================================== channels


def _sorted_channels(d: Dispatcher) -> list[Channel]:
    return sorted((c for c in d.engine.channels.values() if not c.dead), key=lambda c: c.name)


@action("CoreShowChannels", "system", "reporting")
async def core_show_channels(d: Dispatcher, s: Session, m: Message) -> None:
    d.list_start(s, m, "Channels will follow")
    chans = _sorted_channels(d)
    now = d.engine.clock.now()
    for ch in chans:
        fields = [("ActionID", m.action_id)] if m.action_id is not None else []
        fields += ch.snapshot()
        fields += [
            ("Application", ch.appl),
            ("ApplicationData", ch.data),
            ("Duration", _hms(now - ch.created)),
            ("BridgeId", ch.bridge.uniqueid if ch.bridge else ""),
        ]
        s.send(list_item("CoreShowChannel", fields, None))
    s.send(list_complete("CoreShowChannelsComplete", len(chans), m.action_id))


@action("Status", "system", "call", "reporting")
async def status(d: Dispatcher, s: Session, m: Message) -> None:
    name = m.get("Channel").strip()
    if name:
        ch = d.channel(name)
        if ch is None or ch.dead:
            d.error(s, m, "No such channel")
            return
        chans = [ch]
    else:
        chans = _sorted_channels(d)
    wanted = [v.strip() for v in m.get("Variables").split(",") if v.strip()]
    every = is_true(m.get("AllVariables"))
    d.list_start(s, m, "Channel status will follow")
    now = d.engine.clock.now()
    for ch in chans:
        fields = [
            *ch.snapshot(),
            ("Type", ch.tech),
            ("DNID", ch.dnid),
            ("EffectiveConnectedLineNum", ch.conn_num or "<unknown>"),
            ("EffectiveConnectedLineName", ch.conn_name or "<unknown>"),
            ("TimeToHangup", "0"),
            ("BridgeID", ch.bridge.uniqueid if ch.bridge else ""),
            ("Application", ch.appl),
            ("Data", ch.data),
            ("Nativeformats", "(ulaw)"),
            ("Readformat", "ulaw"),
            ("Readtrans", ""),
            ("Writeformat", "ulaw"),
            ("Writetrans", ""),
            ("Callgroup", "0"),
            ("Pickupgroup", "0"),
            ("Seconds", str(int(now - ch.created))),
        ]
        # Asterisk: a variable asked for and not set reads "(null)"; AllVariables lists
        # every channel variable, names without the inheritance prefix (checked on 22.10.1)
        for var in wanted:
            value = _read_var(d, ch, var)
            fields.append(("Variable", f"{var}={'(null)' if value is None else value}"))
        if every:
            fields.extend(("Variable", f"{k}={v}") for k, v in reversed(ch.variables.items()))
        if m.action_id is not None:
            fields.append(("ActionID", m.action_id))
        s.send(
            (
                "Event: Status\r\nPrivilege: Call\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in fields)
                + "\r\n"
            ).encode()
        )
    s.send(list_complete("StatusComplete", len(chans), m.action_id, [("Items", str(len(chans)))]))


def _read_var(d: Dispatcher, ch: Channel | None, name: str) -> str | None:
    eng = d.engine
    if "(" in name and name.endswith(")"):
        func, _, args = name[:-1].partition("(")
        if ch is None:
            return None
        return call_function(eng, ch, func, args)
    if ch is None:
        return eng.config.dialplan.globals.get(name)
    return lookup(eng, ch, name)


@action("Getvar", "call", "reporting")
async def getvar(d: Dispatcher, s: Session, m: Message) -> None:
    var = m.get("Variable").strip()
    if not var:
        d.error(s, m, "No variable specified")
        return
    ch = None
    if m.get("Channel").strip():
        ch = d.channel(m.get("Channel"))
        if ch is None:
            d.error(s, m, "No such channel")
            return
    value = _read_var(d, ch, var)
    s.send(response("Success", m.action_id, [("Variable", var), ("Value", value or "")]))


@action("Setvar", "call")
async def setvar(d: Dispatcher, s: Session, m: Message) -> None:
    var = m.get("Variable").strip()
    if not var:
        d.error(s, m, "No variable specified")
        return
    value = m.get("Value")
    if m.get("Channel").strip():
        ch = d.channel(m.get("Channel"))
        if ch is None:
            d.error(s, m, "No such channel")
            return
        d.engine.set_var(ch, var, value)
    else:
        d.engine.config.dialplan.globals[var] = value
    d.ok(s, m, "Variable Set")


@action("Hangup", "system", "call")
async def hangup(d: Dispatcher, s: Session, m: Message) -> None:
    name = m.get("Channel").strip()
    if not name:
        d.error(s, m, "No channel specified")
        return
    cause_s = m.get("Cause").strip()
    cause = int(cause_s) if cause_s.isdigit() else C.NORMAL_CLEARING
    if len(name) > 2 and name.startswith("/") and name.endswith("/"):
        try:
            rx = re.compile(name[1:-1])
        except re.error:
            d.error(s, m, "Invalid regex")
            return
        d.list_start(s, m, "Channels hung up will follow")
        hit = [c for c in _sorted_channels(d) if rx.search(c.name)]
        for c in hit:
            _hangup(d, c, cause)
            s.send(list_item("ChannelHungup", [("Channel", c.name)], m.action_id))
        s.send(list_complete("ChannelsHungupListComplete", len(hit), m.action_id))
        return
    ch = d.channel(name)
    if ch is None or ch.dead:
        d.error(s, m, "No such channel")
        return
    d.ok(s, m, "Channel Hungup")
    _hangup(d, ch, cause)


def _hangup(d: Dispatcher, ch: Channel, cause: int) -> None:
    eng = d.engine
    eng.request_hangup(ch, C.AMI, cause)
    if not ch.driven and not ch.dead:
        eng.hangup(ch)


@action("Redirect", "call")
async def redirect(d: Dispatcher, s: Session, m: Message) -> None:
    name = m.get("Channel").strip()
    if not name:
        d.error(s, m, "Channel not specified")
        return
    context, exten, prio_s = (
        m.get("Context").strip(),
        m.get("Exten").strip(),
        m.get("Priority").strip(),
    )
    if not context:
        d.error(s, m, "Context not specified")
        return
    if not exten:
        d.error(s, m, "Exten not specified")
        return
    if not prio_s:
        d.error(s, m, "Priority not specified")
        return
    plan = d.engine.config.dialplan
    prio = plan.resolve_priority(context, exten, prio_s) if not prio_s.isdigit() else int(prio_s)
    if prio is None or prio < 1:
        d.error(s, m, "Priority is invalid")
        return
    ch = d.channel(name)
    if ch is None:
        d.error(s, m, f"Channel does not exist: {name}")
        return
    if ch.hungup:
        d.error(s, m, "Redirect failed, channel not up.")
        return
    extra = None
    if m.get("ExtraChannel").strip():
        extra = d.channel(m.get("ExtraChannel"))
        if extra is None:
            d.error(s, m, f"ExtraChannel does not exist: {m.get('ExtraChannel').strip()}")
            return
    d.ok(s, m, "Dual Redirect successful" if extra is not None else "Redirect successful")
    transfer.redirect(d.engine, ch, context, exten, prio)
    if extra is not None:
        xctx = m.get("ExtraContext").strip() or context
        xext = m.get("ExtraExten").strip() or exten
        xpri_s = m.get("ExtraPriority").strip() or str(prio)
        xpri = int(xpri_s) if xpri_s.isdigit() else plan.resolve_priority(xctx, xext, xpri_s)
        transfer.redirect(d.engine, extra, xctx, xext, xpri or 1)


def _transfer_request(d: Dispatcher, s: Session, m: Message) -> tuple[Channel, str] | None:
    """Channel and Exten of BlindTransfer / Atxfer, or None after answering the error."""
    name = m.get("Channel").strip()
    if not name:
        d.error(s, m, "No channel specified")
        return None
    exten = m.get("Exten").strip()
    if not exten:
        d.error(s, m, "No extension specified")
        return None
    ch = d.channel(name)
    if ch is None:
        d.error(s, m, "Channel specified does not exist")
        return None
    return ch, exten


@action("BlindTransfer", "call")
async def blind_transfer(d: Dispatcher, s: Session, m: Message) -> None:
    req = _transfer_request(d, s, m)
    if req is None:
        return
    ch, exten = req
    context = m.get("Context").strip() or ch.context
    if (
        ch.bridge is None
        or len(ch.bridge.channels) < 2
        or not d.engine.config.dialplan.exists(context, exten)
    ):
        d.error(s, m, "Transfer invalid")
        return
    d.ok(s, m, "Transfer succeeded")
    transfer.blind_transfer(d.engine, ch, exten, context)


@action("Atxfer", "call")
async def atxfer(d: Dispatcher, s: Session, m: Message) -> None:
    req = _transfer_request(d, s, m)
    if req is None:
        return
    ch, exten = req
    if not d.engine.config.features.atxfer:
        d.error(s, m, "No attended transfer feature code found")
        return
    context = m.get("Context").strip() or ch.context
    d.ok(s, m, "Atxfer successfully queued")
    d.engine.spawn(
        transfer.attended_transfer(d.engine, ch, exten, context), name=f"atxfer {ch.name}"
    )


@action("CancelAtxfer", "call")
async def cancel_atxfer(d: Dispatcher, s: Session, m: Message) -> None:
    name = m.get("Channel").strip()
    if not name:
        d.error(s, m, "No channel specified")
        return
    ch = d.engine.channels.get(name)
    if ch is None or ch.dead:
        d.error(s, m, "Channel specified does not exist")
        return
    if not d.engine.config.features.atxfer_abort:
        d.error(s, m, "No disconnect feature code found")
        return
    d.ok(s, m, "CancelAtxfer successfully queued")
    transfer.cancel_attended(d.engine, ch)


@action("PJSIPNotify", "system")
async def pjsip_notify(d: Dispatcher, s: Session, m: Message) -> None:
    endpoint, uri, chan = (
        m.get("Endpoint").strip(),
        m.get("URI").strip(),
        m.get("Channel").strip(),
    )
    if endpoint and uri:
        d.error(
            s,
            m,
            "PJSIPNotify action can not handle a request specifying both 'URI' and "
            "'Endpoint'. You must use only one of the two.",
        )
        return
    if not (endpoint or uri or chan):
        d.error(s, m, "PJSIPNotify requires either an endpoint name, a SIP URI, or a channel.")
        return
    if not m.has("Variable") and not m.has("Option"):
        d.error(s, m, "PJSIPNotify requires either an Option or Variable(s)")
        return
    if chan:
        ch = d.channel(chan)
        if ch is None:
            d.error(s, m, f"Unable to find channel {chan}")
            return
        endpoint = ch.endpoint
    elif uri:
        endpoint = uri.removeprefix("sip:").split("@", 1)[0]
    phone = d.engine.phones.get(endpoint)
    if phone is None:
        d.error(s, m, f"Unable to retrieve endpoint {endpoint}")
        return
    d.ok(s, m, "NOTIFY sent")  # Asterisk answers at once; the phone's 481 is never reported
    if not phone.profile.remote_control:
        return
    for header in m.getall("Variable"):
        for part in split_args(header):
            key, _, value = part.partition("=")
            if key.strip().lower() == "event" and value.strip().lower() in ("hold", "talk"):
                phone.hold(value.strip().lower() == "hold")


@action("PlayDTMF", "call")
async def play_dtmf(d: Dispatcher, s: Session, m: Message) -> None:
    ch = d.channel(m.get("Channel"))
    digit = m.get("Digit").strip()
    if ch is None:
        d.error(s, m, "Channel not found")
        return
    if not digit:
        d.error(s, m, "No digit specified")
        return
    transfer.play_dtmf(d.engine, ch, digit[0])
    d.ok(s, m, "DTMF successfully queued")


@action("Originate", "originate")
async def originate_action(d: Dispatcher, s: Session, m: Message) -> None:
    name = m.get("Channel").strip()
    if not name:
        d.error(s, m, "Channel not specified")
        return
    context, exten, prio_s = (
        m.get("Context").strip(),
        m.get("Exten").strip(),
        m.get("Priority").strip(),
    )
    prio = 1
    if prio_s:
        if prio_s.isdigit():
            prio = int(prio_s)
        else:
            found = d.engine.config.dialplan.resolve_priority(context, exten, prio_s)
            if found is None or found < 1:
                d.error(s, m, "Invalid priority")
                return
            prio = found
    timeout_s = m.get("Timeout").strip()
    if timeout_s and not timeout_s.lstrip("-").isdigit():
        d.error(s, m, "Invalid timeout")
        return
    if "/" not in name:
        d.error(s, m, "Invalid channel")
        return
    app_name = m.get("Application").strip()
    if (
        app_name
        and app_name.lower() in ("system", "exec", "eval", "mixmonitor")
        and "system" not in s.write_classes
    ):
        d.error(
            s,
            m,
            "Originate with certain 'Application' arguments requires the "
            "additional System privilege, which you do not have.",
        )
        return
    variables: list[tuple[str, str]] = []
    for header in m.getall("Variable"):
        for part in split_args(header):
            k, sep, v = part.partition("=")
            if sep and k.strip():
                variables.append((k.strip(), v))
    caller = parse_callerid(m.get("CallerID")) if m.get("CallerID").strip() else None
    timeout = int(timeout_s) / 1000.0 if timeout_s else 30.0
    req = OriginateRequest(
        name,
        context,
        exten or "s",
        prio,
        app_name,
        m.get("Data"),
        timeout,
        caller,
        variables,
        m.action_id,
        m.get("Account"),
    )
    eng = d.engine
    if is_true(m.get("Async")):
        d.ok(s, m, "Originate successfully queued")
        eng.spawn(originate(eng, req), name=f"originate {name}")
        return
    answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def told(ok: bool) -> None:
        if not answered.done():
            answered.set_result(ok)

    task = eng.spawn(
        originate(eng, req, emit_response=False, on_answer=told), name=f"originate {name}"
    )
    waiter = asyncio.ensure_future(answered)
    await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    if answered.done() and answered.result():
        d.ok(s, m, "Originate successfully queued")
    else:
        d.error(s, m, "Originate failed")


# ====================================================================== recording


@action("MixMonitor", "system", "call")
async def mixmonitor(d: Dispatcher, s: Session, m: Message) -> None:
    name = m.get("Channel").strip()
    if not name:
        d.error(s, m, "No channel specified")
        return
    ch = d.channel(name)
    if ch is None or ch.dead:
        d.error(s, m, "No such channel")
        return
    eng = d.engine
    filename = m.get("File").strip() or f"auto-{int(eng.clock.now())}-{ch.uniqueid}.wav"
    rec = mixmon.start(eng, ch, filename, m.get("Options").strip())
    s.send(response("Success", m.action_id, [("MixMonitorID", rec.ident)]))


@action("StopMixMonitor", "system", "call")
async def stop_mixmonitor(d: Dispatcher, s: Session, m: Message) -> None:
    name = m.get("Channel").strip()
    if not name:
        d.error(s, m, "No channel specified")
        return
    ch = d.channel(name)
    if ch is None or ch.dead:
        d.error(s, m, "No such channel")
        return
    if not mixmon.stop(d.engine, ch, m.get("MixMonitorID").strip()):
        d.error(s, m, "Could not stop monitoring channel")
        return
    d.ok(s, m)


@action("MixMonitorMute", "system", "call")
async def mixmonitor_mute(d: Dispatcher, s: Session, m: Message) -> None:
    name = m.get("Channel").strip()
    direction = m.get("Direction").strip().lower()
    if not name:
        d.error(s, m, "No channel specified")
        return
    if not direction:
        d.error(s, m, "No direction specified. Must be read, write or both")
        return
    if direction not in ("read", "write", "both"):
        d.error(s, m, "Invalid direction specified. Must be read, write or both")
        return
    ch = d.channel(name)
    if ch is None or ch.dead:
        d.error(s, m, "No such channel")
        return
    on = is_true(m.get("State"))
    now = d.engine.clock.now()
    for rec in ch.recordings:
        rec.mute(on, now)
    d.engine.chan_event(
        "MixMonitorMute", ch, [("Direction", direction), ("State", "1" if on else "0")]
    )
    d.ok(s, m)


# ====================================================================== queues


def _queue_params(q: Queue) -> list[tuple[str, str]]:
    perf, perf2 = q.sl_perf()
    return [
        ("Queue", q.name),
        ("Max", str(q.config.maxlen)),
        ("Strategy", q.config.strategy),
        ("Calls", str(len(q.callers))),
        ("Holdtime", str(q.holdtime)),
        ("TalkTime", str(q.talktime)),
        ("Completed", str(q.completed)),
        ("Abandoned", str(q.abandoned)),
        ("ServiceLevel", str(q.config.servicelevel)),
        ("ServicelevelPerf", perf),
        ("ServicelevelPerf2", perf2),
        ("Weight", str(q.config.weight)),
    ]


@action("QueueStatus")
async def queue_status(d: Dispatcher, s: Session, m: Message) -> None:
    wanted_q = m.get("Queue").strip()
    wanted_m = m.get("Member").strip()
    d.list_start(s, m, "Queue status will follow")
    count = 0
    now = d.engine.clock.now()
    for q in d.engine.queues.ordered():
        if wanted_q and q.name != wanted_q:
            continue
        s.send(list_item("QueueParams", _queue_params(q), m.action_id))
        count += 1
        for mem in q.ordered():
            if wanted_m and wanted_m not in (mem.name, mem.interface):
                continue
            s.send(list_item("QueueMember", mem.fields(q.name, listing=True), m.action_id))
            count += 1
        for e in q.callers:
            ch = e.channel
            s.send(
                list_item(
                    "QueueEntry",
                    [
                        ("Queue", q.name),
                        ("Position", str(e.pos)),
                        ("Channel", ch.name),
                        ("Uniqueid", ch.uniqueid),
                        ("CallerIDNum", ch.caller_num or "<unknown>"),
                        ("CallerIDName", ch.caller_name or "<unknown>"),
                        ("ConnectedLineNum", ch.conn_num or "<unknown>"),
                        ("ConnectedLineName", ch.conn_name or "<unknown>"),
                        ("Wait", str(int(now - e.start))),
                        ("Priority", "0"),
                    ],
                    m.action_id,
                )
            )
            count += 1
    s.send(list_complete("QueueStatusComplete", count, m.action_id))


@action("QueueSummary")
async def queue_summary(d: Dispatcher, s: Session, m: Message) -> None:
    wanted = m.get("Queue").strip()
    qm = d.engine.queues
    d.list_start(s, m, "Queue summary will follow")
    count = 0
    now = d.engine.clock.now()
    for q in qm.ordered():
        if wanted and q.name != wanted:
            continue
        logged = sum(1 for x in q.members if x.status not in (4, 5))
        avail = sum(1 for x in q.members if qm.available(q, x, now))
        longest = max((int(now - e.start) for e in q.callers), default=0)
        s.send(
            list_item(
                "QueueSummary",
                [
                    ("Queue", q.name),
                    ("LoggedIn", str(logged)),
                    ("Available", str(avail)),
                    ("Callers", str(len(q.callers))),
                    ("HoldTime", str(q.holdtime)),
                    ("TalkTime", str(q.talktime)),
                    ("LongestHoldTime", str(longest)),
                ],
                m.action_id,
            )
        )
        count += 1
    s.send(list_complete("QueueSummaryComplete", count, m.action_id))


@action("QueueAdd", "agent")
async def queue_add(d: Dispatcher, s: Session, m: Message) -> None:
    queue, iface = m.get("Queue").strip(), m.get("Interface").strip()
    if not queue or not iface:
        d.error(s, m, "'Queue' and 'Interface' must be specified.")
        return
    pen_s = m.get("Penalty").strip()
    penalty = int(pen_s) if pen_s.lstrip("-").isdigit() else 0
    err = d.engine.queues.add_member(
        queue,
        iface,
        penalty=penalty,
        name=m.get("MemberName").strip(),
        state_interface=m.get("StateInterface").strip(),
        paused=is_true(m.get("Paused")),
        reason=m.get("Reason").strip(),
    )
    if err is None:
        d.ok(s, m, "Added interface to queue")
    elif err == "exists":
        d.error(s, m, "Unable to add interface: Already there")
    else:
        d.error(s, m, "Unable to add interface to queue: No such queue")


@action("QueueRemove", "agent")
async def queue_remove(d: Dispatcher, s: Session, m: Message) -> None:
    queue, iface = m.get("Queue").strip(), m.get("Interface").strip()
    if not queue or not iface:
        d.error(s, m, "Need 'Queue' and 'Interface' parameters.")
        return
    err = d.engine.queues.remove_member(queue, iface)
    if err is None:
        d.ok(s, m, "Removed interface from queue")
    elif err == "notthere":
        d.error(s, m, "Unable to remove interface: Not there")
    elif err == "notdynamic":
        d.error(s, m, "Member not dynamic")
    else:
        d.error(s, m, "Unable to remove interface from queue: No such queue")


@action("QueuePause", "agent")
async def queue_pause(d: Dispatcher, s: Session, m: Message) -> None:
    iface, paused_s = m.get("Interface").strip(), m.get("Paused").strip()
    if not iface or not paused_s:
        d.error(s, m, "Need 'Interface' and 'Paused' parameters.")
        return
    paused = is_true(paused_s)
    err = d.engine.queues.set_paused(
        iface, paused, m.get("Queue").strip() or None, m.get("Reason").strip()
    )
    if err is not None:
        d.error(s, m, "Interface not found")
        return
    d.ok(s, m, "Interface paused successfully" if paused else "Interface unpaused successfully")


@action("QueuePenalty", "agent")
async def queue_penalty(d: Dispatcher, s: Session, m: Message) -> None:
    iface, pen_s = m.get("Interface").strip(), m.get("Penalty").strip()
    if not iface or not pen_s:
        d.error(s, m, "Need 'Interface' and 'Penalty' parameters.")
        return
    if not pen_s.isdigit() or not d.engine.queues.set_penalty(
        iface, int(pen_s), m.get("Queue").strip() or None
    ):
        d.error(s, m, "Invalid interface, queuename or penalty")
        return
    d.ok(s, m, "Interface penalty set successfully")


@action("QueueMemberRingInUse", "agent")
async def queue_ringinuse(d: Dispatcher, s: Session, m: Message) -> None:
    iface, value = m.get("Interface").strip(), m.get("RingInUse").strip()
    if not iface or not value:
        d.error(s, m, "Need 'Interface' and 'RingInUse' parameters.")
        return
    if value.lower() not in (
        "yes",
        "no",
        "true",
        "false",
        "1",
        "0",
        "on",
        "off",
    ) or not d.engine.queues.set_ringinuse(iface, is_true(value), m.get("Queue").strip() or None):
        d.error(s, m, "Invalid interface, queuename, or ringinuse value")
        return
    d.ok(s, m, "Interface ringinuse set successfully")


@action("QueueLog", "agent")
async def queue_log(d: Dispatcher, s: Session, m: Message) -> None:
    if not m.get("Queue").strip() or not m.get("Event").strip():
        d.error(s, m, "Need 'Event' and 'Queue' parameters.")
        return
    d.ok(s, m, "Event added successfully")


# ====================================================================== modules, dialplan


@action("ModuleCheck", "system")
async def module_check(d: Dispatcher, s: Session, m: Message) -> None:
    """Is a module loaded? (``app_amd`` or ``app_amd.so``; answers like manager.c)."""
    if not d.engine.modules.is_loaded(m.get("Module")):
        d.error(s, m, "Module not loaded")
        return
    s.send(response("Success", m.action_id, [("Version", "")]))


@action("ShowDialPlan", "config", "reporting")
async def show_dialplan(d: Dispatcher, s: Session, m: Message) -> None:
    """The dialplan as ``dialplan show``: one ListDialplan per priority and include."""
    plan = d.engine.config.dialplan
    context, exten = m.get("Context").strip(), m.get("Extension").strip()
    if context and context not in plan.contexts:
        d.error(s, m, f"Did not find context {context}")
        return
    contexts = [plan.contexts[context]] if context else list(plan.contexts.values())
    items: list[list[tuple[str, str]]] = []
    n_ext = n_prio = 0
    for ctx in contexts:
        for ext in ctx.extensions.values():
            if exten and ext.name != exten:
                continue
            n_ext += 1
            labels = {p: label for label, p in ext.labels.items()}
            for prio in sorted(ext.steps):
                step = ext.steps[prio]
                n_prio += 1
                item = [("Context", ctx.name), ("Extension", ext.name)]
                if labels.get(prio):
                    item.append(("ExtensionLabel", labels[prio]))
                item += [("Priority", str(prio)), ("Application", step.app),
                         ("AppData", step.data), ("Registrar", "pbx_config")]
                items.append(item)
        if not exten:
            for inc in ctx.includes:
                items.append([("Context", ctx.name), ("IncludeContext", inc),
                              ("Registrar", "pbx_config")])
    if exten and not n_ext:
        where = f"{exten}@{context}" if context else f"{exten} in any context"
        d.error(s, m, f"Did not find extension {where}")
        return
    d.list_start(s, m, "DialPlan list will follow")
    aid = [("ActionID", m.action_id)] if m.action_id is not None else []
    for item in items:
        s.send(list_item("ListDialplan", aid + item, None))
    s.send(list_complete("ShowDialPlanComplete", len(items), m.action_id, [
        ("ListExtensions", str(n_ext)), ("ListPriorities", str(n_prio)),
        ("ListContexts", str(len(contexts)))]))


# ====================================================================== misc


@action("BridgeList", "reporting")
async def bridge_list(d: Dispatcher, s: Session, m: Message) -> None:
    d.list_start(s, m, "Bridge listing will follow")
    bridges = list(d.engine.bridges.values())
    for b in bridges:
        s.send(list_item("BridgeListItem", b.fields(), m.action_id))
    s.send(list_complete("BridgeListComplete", len(bridges), m.action_id))


@action("UserEvent", "user")
async def user_event(d: Dispatcher, s: Session, m: Message) -> None:
    name = m.get("UserEvent").strip()
    if not name:
        d.error(s, m, "UserEvent not specified")
        return
    fields = [(k, v) for k, v in m.headers if k.lower() not in ("action", "actionid")]
    d.engine.emit("UserEvent", "user", fields)
    d.ok(s, m, "Event Sent")


@action("Command", "command")
async def command(d: Dispatcher, s: Session, m: Message) -> None:
    from ccd.sim.ami.cli import run_command

    cmd = m.get("Command").strip()
    ok, lines = await run_command(d.server, cmd)
    fields = [("Message", "Command output follows")] + [("Output", line) for line in lines]
    s.send(response("Success" if ok else "Error", m.action_id, fields))
