"""The SIP user agents around the PBX: agent phones, the customer phone, the trunk.

A :class:`Phone` decides what happens to a call offered to its endpoint (rings, answers at
once, answers later, never answers, busy) and can hang up or place calls, as the baresip
UAs of the captures did. Registration state drives device state (UNAVAILABLE) and
PeerStatus/ContactStatus events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim.channel import Channel
from ccd.sim.events import SYSTEM

if TYPE_CHECKING:
    from ccd.sim.engine import Engine
    from ccd.sim.pbxconf import Endpoint

ANSWER_MODES = frozenset({"auto", "manual", "never", "busy", "reject", "congestion"})
#: the hangup cause a refusing phone's answer stands for (486 Busy Here, 603 Decline, 503)
REFUSALS = {"busy": C.USER_BUSY, "reject": 21, "congestion": C.CONGESTION}
#: the SIP response behind each refusal (Asterisk's TechCause)
SIP_CODES = {C.USER_BUSY: 486, 21: 603, C.CONGESTION: 503}
#: what a UA answers when its user declines a ringing call: baresip's default 486 Busy Here
#: (the real capture F7: HangupRequest and Hangup with Cause 17, TechCause 486)
DECLINE = C.USER_BUSY


@dataclass(slots=True)
class PhoneProfile:
    """How one UA behaves. ``answer``: auto | manual | never | busy | reject | congestion;
    ``machine``: an answering machine picks up (for AMD)."""

    registered: bool = True
    answer: str = "auto"
    answer_delay: float | None = None  # None: the engine's default
    machine: bool = False  # an answering machine answers (AMD says MACHINE)
    #: obeys remote-control NOTIFYs (Event: hold / talk) as Polycom or Yealink phones do;
    #: most softphones (baresip among them) answer 481 and do nothing
    remote_control: bool = False

    def __post_init__(self) -> None:
        if self.answer not in ANSWER_MODES:
            raise ValueError(f"answer mode must be one of {sorted(ANSWER_MODES)}")


class Phone:
    """One endpoint's user agent."""

    def __init__(self, engine: Engine, endpoint: Endpoint, profile: PhoneProfile) -> None:
        self.engine = engine
        self.endpoint = endpoint
        self.profile = profile
        self.calls: list[Channel] = []
        #: called for every call offered (the traffic model's agents listen here)
        self.on_incoming: Callable[[Channel], None] | None = None

    @property
    def name(self) -> str:
        return self.endpoint.name

    def offer(self, ch: Channel) -> None:
        """The PBX sends an INVITE for ``ch`` to this phone."""
        self.calls.append(ch)
        ch.endpoint = self.name
        self.engine.spawn(self._ring(ch), name=f"ring {ch.name}")

    async def _ring(self, ch: Channel) -> None:
        eng = self.engine
        await eng.clock.sleep(eng.settings.ring_delay)
        if ch.hungup:
            return
        mode = self.profile.answer
        if mode in REFUSALS:
            self.refuse(ch, REFUSALS[mode])
            return
        eng.set_state(ch, C.RINGING)
        if self.on_incoming is not None:
            self.on_incoming(ch)
        if mode == "auto":
            delay = self.profile.answer_delay
            await eng.clock.sleep(eng.settings.answer_delay if delay is None else delay)
            self.answer(ch)

    def answer(self, ch: Channel | None = None) -> bool:
        """Pick up a ringing call (the oldest one if ``ch`` is None)."""
        target = ch or next((c for c in self.calls if c.state == C.RINGING and not c.hungup), None)
        if target is None or target.hungup or target.state == C.UP:
            return False
        self.engine.answer(target)
        return True

    def refuse(self, ch: Channel, cause: int) -> None:
        """Answer the INVITE with a final error (486, 603, 503): chan_pjsip hangs the channel
        up with that cause (HangupRequest with Cause and TechCause)."""
        ch.hangupcause = cause
        ch.tech_cause = SIP_CODES.get(cause, 0)
        self.engine.request_hangup(ch, C.REMOTE, cause)

    def hangup(self, ch: Channel | None = None) -> bool:
        """Send BYE (or CANCEL) for a call of this phone; the newest live one if ``ch`` is None.
        A call ringing at this phone is declined (486 Busy Here, as baresip does)."""
        live = [c for c in self.calls if not c.dead]
        target = ch or (live[-1] if live else None)
        if target is None or target.dead:
            return False
        if target.state == C.RINGING and not target.in_pbx:
            self.refuse(target, DECLINE)
            return True
        cause = C.NORMAL_CLEARING if target.appl.lower() == "dial" else None
        self.engine.request_hangup(target, C.REMOTE, cause)
        return True

    def hold(self, on: bool) -> bool:
        """The phone holds / resumes its bridged call (re-INVITE): Hold/Unhold, and music
        on hold for the other party, as Asterisk reports it."""
        eng = self.engine
        for ch in reversed(self.calls):
            if ch.dead or ch.bridge is None or ch.on_hold == on:
                continue
            ch.on_hold = on
            eng.chan_event("Hold" if on else "Unhold", ch)
            for other in ch.bridge.others(ch):
                if on:
                    eng.moh_start(other)
                else:
                    eng.moh_stop(other)
            eng.refresh_device(ch.device)
            return True
        return False

    def forget(self, ch: Channel) -> None:
        if ch in self.calls:
            self.calls.remove(ch)

    def place_call(self, exten: str, *, caller: tuple[str, str] | None = None) -> Channel:
        """Send an INVITE to the PBX for ``exten``; the call enters the endpoint's context."""
        from ccd.sim.pbx import start_pbx

        eng = self.engine
        ep = self.endpoint
        cid = caller or (ep.caller_name, ep.caller_num)
        ch = eng.new_channel(
            "PJSIP",
            ep.name,
            context=ep.context,
            exten=exten,
            state=C.RING,
            caller=cid,
            language=ep.language,
            endpoint=ep.name,
            dnid=exten,
        )
        self.calls.append(ch)
        eng.set_var(ch, "SIPDOMAIN", "127.0.0.1")
        start_pbx(eng, ch)
        return ch

    def press(self, ch: Channel, digits: str, duration_ms: int = 100) -> None:
        """The caller presses keys (RFC 4733): DTMFBegin/End events, digits reach the PBX."""
        for d in digits:
            self.engine.dtmf(ch, d, begin=True)
            self.engine.dtmf(ch, d, duration_ms=duration_ms)
            ch.dtmf.put_nowait(d)

    def set_registered(self, registered: bool) -> None:
        """REGISTER / expiry: PeerStatus, ContactStatus and device state follow."""
        if self.profile.registered == registered:
            return
        self.profile.registered = registered
        self.announce_contact()
        self.engine.refresh_device(f"PJSIP/{self.name}")

    def announce_contact(self) -> None:
        eng = self.engine
        reg = self.profile.registered
        eng.emit(
            "PeerStatus",
            SYSTEM,
            [
                ("ChannelType", "PJSIP"),
                ("Peer", f"PJSIP/{self.name}"),
                ("PeerStatus", "Reachable" if reg else "Unreachable"),
            ],
        )
        eng.emit(
            "ContactStatus",
            SYSTEM,
            [
                ("URI", f"sip:{self.name}@127.0.0.1:5060"),
                ("ContactStatus", "Reachable" if reg else "Unreachable"),
                ("AOR", self.endpoint.aors[0] if self.endpoint.aors else self.name),
                ("EndpointName", self.name),
                ("RoundtripUsec", "900" if reg else "0"),
            ],
        )


class PhoneBook:
    """Every endpoint's phone; endpoints without a profile get the default one."""

    def __init__(
        self,
        engine: Engine,
        profiles: dict[str, PhoneProfile] | None = None,
        default: PhoneProfile | None = None,
    ) -> None:
        self.engine = engine
        self.default = default or PhoneProfile()
        self.phones: dict[str, Phone] = {}
        profiles = profiles or {}
        for name, ep in engine.config.endpoints.items():
            prof = profiles.get(name) or replace(self.default)
            self.phones[name] = Phone(engine, ep, prof)

    def get(self, endpoint: str) -> Phone | None:
        return self.phones.get(endpoint)

    def registered(self, endpoint: str) -> bool:
        phone = self.phones.get(endpoint)
        return phone is not None and phone.profile.registered

    def __iter__(self) -> Iterator[Phone]:
        return iter(self.phones.values())

    async def wait_answered(self, ch: Channel, timeout: float | None) -> bool:
        """True once ``ch`` is answered; False on hangup, rejection or timeout."""
        done = asyncio.ensure_future(ch.answered.wait())
        hung = asyncio.ensure_future(ch.hangup_event.wait())
        try:
            waits = {done, hung}
            await asyncio.wait(
                waits,
                timeout=None if timeout is None else self.engine.clock.real(timeout),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            done.cancel()
            hung.cancel()
        return ch.state == C.UP and not ch.hungup
