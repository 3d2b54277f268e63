"""The call engine's core: channels, device states, bridges and the event stream.

Everything that changes a channel goes through :class:`Engine`, which emits the AMI event
Asterisk 22 would emit for that change (Newchannel, Newstate, VarSet, Newexten, HangupRequest,
Hangup, BridgeEnter ...). Applications (:mod:`ccd.sim.apps`), queues (:mod:`ccd.sim.queues`)
and phones (:mod:`ccd.sim.phones`) build call flows from these primitives; the AMI server
(:mod:`ccd.sim.ami`) only subscribes to the stream and calls into the engine.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccd import prompts
from ccd.sim import channel as C
from ccd.sim.apps import load_apps
from ccd.sim.bridge import Bridge
from ccd.sim.channel import Channel
from ccd.sim.clock import SimClock
from ccd.sim.events import CALL, DIALPLAN, DTMF, Event, FieldSeq
from ccd.sim.modules import Modules
from ccd.sim.pbxconf import PbxConfig

if TYPE_CHECKING:
    from ccd.sim.phones import PhoneBook
    from ccd.sim.queues import QueueManager

log = logging.getLogger(__name__)

#: device states (DeviceStateChange State) and their QueueMemberStatus numbers
DEVICE_CODES = {
    "UNKNOWN": 0,
    "NOT_INUSE": 1,
    "INUSE": 2,
    "BUSY": 3,
    "INVALID": 4,
    "UNAVAILABLE": 5,
    "RINGING": 6,
    "RINGINUSE": 7,
    "ONHOLD": 8,
}

#: sound files the simulator knows, with their length in seconds (Asterisk core sounds)
SOUNDS = {
    "hello-world": 1.42,
    "beep": 0.44,
    "demo-thanks": 5.52,
    "vm-goodbye": 0.88,
    "silence/1": 1.0,
    "queue-thankyou": 1.7,
    "pls-hold-while-try": 2.1,
    "vm-intro": 4.0,
    "auth-thankyou": 0.9,
    "agent-loginok": 1.0,
    "agent-loggedoff": 1.2,
    "custom/ivr-welcome": 3.0,
}
DEFAULT_SOUND_SECONDS = 1.0

AgiRunner = Callable[[str, Any], Awaitable[str]]


@dataclass(slots=True)
class EngineSettings:
    """Knobs that are not in the Asterisk configuration (they model the world around it)."""

    version: str = "22.10.1"
    agi_override: str = ""  # "host:port": send every agi:// request there instead
    recording_root: Path | None = None  # recordings are written under it (None: not written)
    #: ${ASTSPOOLDIR}: where the dialplan's own recordings go (<spool>/monitor/...)
    spool_dir: Path = Path("/var/spool/asterisk")
    #: the umask Asterisk runs with: its files are 0666 & ~umask, the directories it creates
    #: 0777 & ~umask (MixMonitor, RECORD FILE, voicemail); None = this process's umask
    umask: int | None = None
    answer_delay: float = 0.003  # SIP phones that auto-answer
    ring_delay: float = 0.002  # 180 Ringing after the INVITE
    local_answer_wait: float = 0.5  # Answer() on a channel without media (Local) waits this
    local_optimize_after: float = 0.45
    sounds: dict[str, float] = field(default_factory=dict)
    #: Asterisk's sounds directory: when set, a sound plays only if its file is there (in the
    #: channel's language, as Asterisk looks for it); when not, the PBX is taken to have
    #: Asterisk's core sounds and every prompt ccd ships
    sounds_dir: Path | None = None

    def sound_length(self, name: str, language: str = "") -> float | None:
        """Seconds ``name`` plays for on a channel of ``language``; None if it is missing."""
        name = name.strip()
        if name in self.sounds:
            return self.sounds[name]
        if self.sounds_dir is not None:
            found = prompts.resolve(self.sounds_dir, name, language)
            if found is None:
                return None
            return prompts.wav_seconds(found) or DEFAULT_SOUND_SECONDS
        if name in SOUNDS:
            return SOUNDS[name]
        shipped = _shipped().get(name)
        if shipped is not None:
            return SHIPPED_SOUND_SECONDS
        if not name or ("/" in name.strip("/") and not name.startswith(("custom/", "silence/"))):
            return None
        return DEFAULT_SOUND_SECONDS


SHIPPED_SOUND_SECONDS = DEFAULT_SOUND_SECONDS


@cache
def _shipped() -> dict[str, set[str]]:
    return prompts.shipped_names()


class Engine:
    """The simulated PBX's state and the single source of its AMI events."""

    def __init__(
        self, config: PbxConfig, clock: SimClock, settings: EngineSettings | None = None
    ) -> None:
        self.config = config
        self.clock = clock
        self.settings = settings or EngineSettings()
        self.listeners: list[Callable[[Event], None]] = []
        self.channels: dict[str, Channel] = {}
        self.by_uid: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.devices: dict[str, str] = {}
        self.boot_time = clock.now()
        self.reload_time = self.boot_time
        self.processed_calls = 0
        self._uid = 0
        self._chan = 0
        self._local = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stopping = False
        #: every module loaded (False while a restart boots: the AMI port is already open,
        #: core actions work, module actions are "Invalid/unknown command")
        self.fully_booted = True
        self.agi_runner: AgiRunner | None = None
        # set by the simulator after construction (they need the engine themselves)
        self.phones: PhoneBook
        self.queues: QueueManager
        self.hangup_hooks: list[Callable[[Channel], None]] = []
        #: loaded modules (modules.conf at boot; CLI module load/unload): which
        #: applications exist
        self.modules = Modules.from_config(config)
        load_apps()
        self.bridge_hooks: list[Callable[[Channel], None]] = []

    # ------------------------------------------------------------------ events

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        self.listeners.append(listener)

    def unsubscribe(self, listener: Callable[[Event], None]) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def emit(self, name: str, privilege: str, fields: FieldSeq, stamp: bool = True) -> Event:
        """Publish an event to every listener (AMI sessions, recorders)."""
        ev = Event(name, list(fields), privilege, self.clock.now(), stamp)
        for listener in list(self.listeners):
            try:
                listener(ev)
            except Exception:
                log.exception("event listener failed on %s", name)
        return ev

    def chan_event(
        self, name: str, ch: Channel, extra: FieldSeq = (), privilege: str = CALL
    ) -> Event:
        return self.emit(name, privilege, [*ch.snapshot(), *extra])

    # ------------------------------------------------------------------ ids

    def next_uniqueid(self) -> str:
        uid = f"{int(self.clock.now())}.{self._uid}"
        self._uid += 1
        return uid

    def _next_suffix(self) -> str:
        s = f"{self._chan:08x}"
        self._chan += 1
        return s

    def _next_local(self) -> str:
        s = f"{self._local:08x}"
        self._local += 1
        return s

    def find_channel(self, name: str) -> Channel | None:
        """By name (case-insensitive as Asterisk) or by uniqueid."""
        ch = self.channels.get(name)
        if ch is not None:
            return ch
        ch = self.by_uid.get(name)
        if ch is not None:
            return ch
        low = name.lower()
        for c in self.channels.values():
            if c.name.lower() == low:
                return c
        return None

    # ------------------------------------------------------------------ channels

    def new_channel(
        self,
        tech: str,
        resource: str,
        *,
        context: str,
        exten: str,
        state: int,
        caller: tuple[str, str] = ("", ""),
        language: str = "en",
        linkedid: str | None = None,
        requestor: Channel | None = None,
        name: str | None = None,
        endpoint: str = "",
        priority: int = 1,
        dnid: str = "",
    ) -> Channel:
        """Allocate a channel and emit Newchannel (plus VarSets of inherited variables)."""
        uid = self.next_uniqueid()
        if name is None:
            name = f"{tech}/{resource}-{self._next_suffix()}"
        if linkedid is None:
            linkedid = requestor.linkedid if requestor is not None else uid
        ch = Channel(
            name=name,
            uniqueid=uid,
            linkedid=linkedid,
            tech=tech,
            resource=resource,
            created=self.clock.now(),
            state=state,
            caller_num=caller[1],
            caller_name=caller[0],
            language=language,
            context=context,
            exten=exten,
            priority=priority,
            endpoint=endpoint,
            dnid=dnid,
        )
        self.channels[name] = ch
        self.by_uid[uid] = ch
        ch.published_cep = (context, exten, priority)
        self.chan_event("Newchannel", ch)
        if requestor is not None:
            for var, value in requestor.inheritable():
                self.set_var(ch, var, value)
        return ch

    def new_local_pair(
        self, spec: str, *, requestor: Channel | None = None, linkedid: str | None = None
    ) -> tuple[Channel, Channel]:
        """``Local/exten@context[/n]``: create ;1 (returned to the caller) and ;2."""
        base, _, opts = spec.partition("/")
        exten, _, context = base.partition("@")
        context = context or "default"
        suffix = self._next_local()
        name = f"Local/{exten}@{context}-{suffix}"
        one = self.new_channel(
            "Local",
            f"{exten}@{context}",
            context=context,
            exten=exten,
            state=C.DOWN,
            name=name + ";1",
            requestor=requestor,
            linkedid=linkedid,
        )
        two = self.new_channel(
            "Local",
            f"{exten}@{context}",
            context=context,
            exten=exten,
            state=C.RING,
            name=name + ";2",
            linkedid=one.linkedid,
        )
        for var, value in one.inheritable():
            two.store_var(var, value)
        one.partner, two.partner = two, one
        one.local_half, two.local_half = 1, 2
        one.owner = two.owner = {"optimize": "n" not in opts}
        return one, two

    def set_state(self, ch: Channel, state: int) -> None:
        if ch.state == state or ch.dead:
            return
        ch.state = state
        self.chan_event("Newstate", ch)
        if state == C.UP:
            ch.answered_at = self.clock.now()
            ch.answered.set()
        elif state == C.RINGING:
            ch.ringing.set()
        self.refresh_device(ch.device)

    def set_var(self, ch: Channel, name: str, value: str) -> None:
        """Set a channel variable; VarSet shows the name as written (``__CUSTOMER_ID``)."""
        ch.store_var(name, value)
        self.chan_event("VarSet", ch, [("Variable", name), ("Value", value)], privilege=DIALPLAN)

    def set_caller(self, ch: Channel, num: str, name: str) -> None:
        if (ch.caller_num, ch.caller_name) == (num, name):
            return
        ch.caller_num, ch.caller_name = num, name
        self.chan_event(
            "NewCallerid", ch, [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")]
        )

    def set_connected(self, ch: Channel, num: str, name: str) -> None:
        if (ch.conn_num, ch.conn_name) == (num, name) or ch.dead:
            return
        ch.conn_num, ch.conn_name = num, name
        self.chan_event("NewConnectedLine", ch)

    def newexten(self, ch: Channel, app: str, data: str) -> None:
        """The channel runs ``app``; Newexten if its location (or first application) changed.

        Asterisk derives Newexten from snapshot changes: a new context/exten/priority, or an
        application set for the first time. A location changed from outside (Redirect) is
        shown at once with the application that was running.
        """
        ch.appl, ch.data = app, data
        self.publish_location(ch)

    def publish_location(self, ch: Channel) -> None:
        cep = (ch.context, ch.exten, ch.priority)
        if ch.dead or not ch.appl:
            return
        if cep == ch.published_cep and ch.published_appl:
            return
        ch.published_cep, ch.published_appl = cep, ch.appl
        self.chan_event(
            "Newexten",
            ch,
            [("Extension", ch.exten), ("Application", ch.appl), ("AppData", ch.data)],
            privilege=DIALPLAN,
        )

    def set_app(self, ch: Channel, app: str, data: str) -> None:
        """Set the running application without a Newexten (outgoing legs, Originate)."""
        ch.appl, ch.data = app, data

    def answer(self, ch: Channel) -> None:
        self.set_state(ch, C.UP)
        if ch.partner is not None and ch.local_half == 2 and ch.partner.state != C.UP:
            self.set_state(ch.partner, C.UP)

    # ------------------------------------------------------------------ hangups

    def request_hangup(self, ch: Channel, origin: str, cause: int | None = None) -> None:
        """Ask a channel to hang up; emits the request event that ``origin`` shows in Asterisk.

        The channel's owner (its dialplan, a queue call, an originate) notices through
        ``ch.hangup_event`` and finishes the call; a bridged channel leaves its bridge now.
        """
        if ch.dead or ch.hangup_origin:
            return
        ch.hangup_origin = origin
        if cause is not None and not ch.hangupcause:
            ch.hangupcause = cause
        if origin == C.REMOTE:
            extra = [("Cause", str(cause))] if cause is not None else []
            if ch.tech_cause:
                extra.append(("TechCause", str(ch.tech_cause)))
            self.chan_event("HangupRequest", ch, extra)
        elif origin == C.PARTNER:
            self.chan_event("HangupRequest", ch, [("Cause", str(cause or 0))])
        elif origin == C.SHUTDOWN:
            self.chan_event("SoftHangupRequest", ch, [("Cause", "4")])
        elif origin == C.DIALPLAN:
            self.chan_event("SoftHangupRequest", ch, [("Cause", "16")])
        elif origin == C.EXPLICIT:
            self.chan_event("SoftHangupRequest", ch, [("Cause", "32")])
        ch.hangup_event.set()
        ch.wake.set()
        if ch.interceptor is not None and ch.interceptor(ch, origin):
            return
        if ch.bridge is not None and origin != C.SHUTDOWN:
            bridge = ch.bridge
            self.bridge_leave(ch)
            bridge.finish(ch, origin)

    def hangup(self, ch: Channel, cause: int | None = None) -> None:
        """Destroy a channel: Hangup event, device state, Local partner teardown."""
        if ch.dead:
            return
        if cause is not None:
            ch.hangupcause = cause
        for hook in list(self.hangup_hooks):
            hook(ch)
        if ch.bridge is not None:
            bridge = ch.bridge
            self.bridge_leave(ch)
            bridge.finish(ch, ch.hangup_origin or C.INTERNAL)
        for rec in ch.recordings:
            rec.stop(self.clock.now())
        ch.dead = True
        ch.hangup_event.set()
        ch.wake.set()
        ch.answered.set()
        ch.ringing.set()
        cause_code = ch.hangupcause
        fields = [("Cause", str(cause_code)), ("Cause-txt", C.CAUSE_TXT.get(cause_code, "Unknown"))]
        if ch.tech_cause:
            fields.append(("TechCause", str(ch.tech_cause)))
        self.chan_event("Hangup", ch, fields)
        self.channels.pop(ch.name, None)
        self.by_uid.pop(ch.uniqueid, None)
        phone = self.phones.get(ch.endpoint) if ch.endpoint else None
        if phone is not None:
            phone.forget(ch)
        self.refresh_device(ch.device)
        partner = ch.partner
        if partner is not None and not partner.dead:
            partner.partner = None
            self.request_hangup(partner, C.PARTNER, cause_code)
            if not partner.driven:
                self.hangup(partner)

    # ------------------------------------------------------------------ devices

    def device_state(self, device: str) -> str:
        """Asterisk's aggregate device state of ``PJSIP/1001`` from its channels."""
        chans = [c for c in self.channels.values() if c.device == device]
        ringing = any(c.state in (C.RINGING, 9) for c in chans)
        inuse = any(c.state not in (C.DOWN, C.RINGING, 9, C.BUSY) for c in chans)
        held = any(c.on_hold for c in chans)
        if ringing and inuse:
            return "RINGINUSE"
        if ringing:
            return "RINGING"
        if held:
            return "ONHOLD"
        if inuse:
            return "INUSE"
        if any(c.state == C.BUSY for c in chans):
            return "BUSY"
        if device.startswith("PJSIP/"):
            endpoint = device[6:]
            if endpoint not in self.config.endpoints:
                return "INVALID"
            if not self.phones.registered(endpoint):
                return "UNAVAILABLE"
        return "NOT_INUSE"

    def refresh_device(self, device: str) -> None:
        """Emit DeviceStateChange (and queue member status) if ``device`` changed state."""
        state = self.device_state(device)
        old = self.devices.get(device)
        if state == old:
            return
        self.devices[device] = state
        if old is not None or state != "NOT_INUSE":
            self.emit("DeviceStateChange", CALL, [("Device", device), ("State", state)])
        self.queues.device_changed(device, state)

    # ------------------------------------------------------------------ bridges

    def bridge_create(self, owner: object = None) -> Bridge:
        b = Bridge(str(uuid.uuid4()), self.clock.now(), owner=owner)
        b.ended = asyncio.get_running_loop().create_future()
        self.bridges[b.uniqueid] = b
        self.emit("BridgeCreate", CALL, b.fields())
        return b

    def bridge_enter(self, bridge: Bridge, ch: Channel) -> None:
        if ch.bridge is bridge:
            return
        if ch.bridge is not None:
            self.bridge_leave(ch)
        bridge.channels.append(ch)
        ch.bridge = bridge
        for rec in ch.recordings:
            rec.bridged(True, self.clock.now())
        self.emit("BridgeEnter", CALL, [*bridge.fields(), *ch.snapshot()])
        if len(bridge.channels) == 2:
            a, b = bridge.channels
            self.set_var(a, "BRIDGEPEER", b.name)
            self.set_var(b, "BRIDGEPEER", a.name)
        ch.wake.set()
        for hook in list(self.bridge_hooks):
            hook(ch)

    def bridge_leave(self, ch: Channel) -> None:
        bridge = ch.bridge
        if bridge is None:
            return
        bridge.channels.remove(ch)
        ch.bridge = None
        for rec in ch.recordings:
            rec.bridged(False, self.clock.now())
        if ch.get_var("BRIDGEPEER"):
            self.set_var(ch, "BRIDGEPEER", "")
        self.emit("BridgeLeave", CALL, [*bridge.fields(), *ch.snapshot()])
        ch.wake.set()

    def bridge_destroy(self, bridge: Bridge) -> None:
        if bridge.dissolved:
            return
        for ch in list(bridge.channels):
            self.bridge_leave(ch)
        bridge.dissolved = True
        self.bridges.pop(bridge.uniqueid, None)
        self.emit("BridgeDestroy", CALL, bridge.fields())
        bridge.finish(None, C.INTERNAL)

    def dtmf(
        self,
        ch: Channel,
        digit: str,
        direction: str = "Received",
        duration_ms: int | None = None,
        begin: bool = False,
    ) -> None:
        extra = [("Digit", digit)]
        if duration_ms is not None:
            extra.append(("DurationMs", str(duration_ms)))
        extra.append(("Direction", direction))
        self.chan_event("DTMFBegin" if begin else "DTMFEnd", ch, extra, privilege=DTMF)

    def moh_start(self, ch: Channel, klass: str = "default") -> None:
        if ch.moh or ch.dead:
            return
        ch.moh = True
        self.chan_event("MusicOnHoldStart", ch, [("Class", klass)])

    def moh_stop(self, ch: Channel) -> None:
        if not ch.moh or ch.dead:
            return
        ch.moh = False
        self.chan_event("MusicOnHoldStop", ch)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "") -> asyncio.Task[Any]:
        """Run a coroutine that belongs to the PBX (cancelled on shutdown)."""
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task %s failed", task.get_name(), exc_info=task.exception())

    def uptime(self) -> int:
        return int(self.clock.now() - self.boot_time)

    async def shutdown(self) -> None:
        """``core stop now``: SoftHangupRequest (cause 4) for every channel, then tear down."""
        self.stopping = True
        chans = list(self.channels.values())
        for ch in chans:
            if not ch.dead and not ch.hangup_origin:
                ch.hangupcause = ch.hangupcause or C.NORMAL_CLEARING
                self.request_hangup(ch, C.SHUTDOWN)
        for bridge in list(self.bridges.values()):
            first = bridge.channels[0] if bridge.channels else None
            for ch in list(bridge.channels):
                self.bridge_leave(ch)
            if first is not None:
                bridge.finish(first, C.SHUTDOWN)
        for _ in range(200):
            if not self.channels:
                break
            await asyncio.sleep(0)
        for ch in list(self.channels.values()):
            self.hangup(ch)
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
