"""Scripted scenarios: exact call flows written as TOML, for tests and demonstrations.

A scenario may set phones (``[phones."1003"] answer = "never"``) and lists ``[[steps]]``,
run in order; times are simulated seconds::

    [phones."1003"]
    answer = "never"

    [[steps]]
    call = { from = "2000", to = "5551000", as = "c1" }   # a phone places a call

    [[steps]]
    wait_for = { event = "BridgeEnter", Channel = "c1" }  # names of calls are resolved
    timeout = 60

    [[steps]]
    sleep = 6

    [[steps]]
    hangup = "c1"              # the caller hangs up; "agent:c1" = its agent; "1001" = a phone

    [[steps]]
    press = { call = "c1", digits = "2" }

    [[steps]]
    ami = { Action = "QueuePause", Interface = "PJSIP/1001", Paused = "true" }
    expect = { Response = "Success" }

    [[steps]]
    answer = "1003"            # a phone picks up its ringing call

    [[steps]]
    register = { endpoint = "1005", on = true }

    [[steps]]
    fault = "restart"          # drop | restart | stop | start | stall | unstall | slow
    downtime = 1.0

A ``wait_for`` that times out, or an ``expect`` that does not match, fails the scenario.
"""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ccd.sim.ami.server import Message
from ccd.sim.channel import Channel
from ccd.sim.events import CLASSES, Event
from ccd.sim.phones import ANSWER_MODES, PhoneProfile

if TYPE_CHECKING:
    from ccd.sim.ami.server import Session
    from ccd.sim.simulator import Simulator

STEP_KINDS = ("call", "wait_for", "sleep", "hangup", "press", "ami", "answer", "register", "fault")


class ScenarioError(ValueError):
    """The scenario file is not valid; the message says which step."""


@dataclass
class Scenario:
    steps: list[dict[str, Any]]
    phones: dict[str, PhoneProfile] = field(default_factory=dict)
    name: str = ""


@dataclass
class ScenarioResult:
    ok: bool
    failures: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    calls: dict[str, str] = field(default_factory=dict)  # alias -> channel name


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"{p}: {exc}") from None
    return parse_scenario(data, p.name)


def parse_scenario(data: dict[str, Any], name: str = "") -> Scenario:
    phones: dict[str, PhoneProfile] = {}
    for ep, spec in (data.get("phones") or {}).items():
        if not isinstance(spec, dict):
            raise ScenarioError(f"phones.{ep} must be a table")
        answer = str(spec.get("answer", "auto"))
        if answer not in ANSWER_MODES:
            raise ScenarioError(f"phones.{ep}.answer must be one of {sorted(ANSWER_MODES)}")
        delay = spec.get("answer_delay")
        phones[str(ep)] = PhoneProfile(
            bool(spec.get("registered", True)), answer, None if delay is None else float(delay)
        )
    steps = data.get("steps") or []
    if not isinstance(steps, list):
        raise ScenarioError("steps must be an array of tables ([[steps]])")
    for i, step in enumerate(steps, 1):
        kinds = [k for k in STEP_KINDS if k in step]
        if len(kinds) != 1:
            raise ScenarioError(f"step {i}: needs exactly one of {', '.join(STEP_KINDS)}")
    return Scenario(steps, phones, name)


class _InternalSession:
    """What the action dispatcher needs of a session, for ``ami`` steps (no socket)."""

    def __init__(self, sim: Simulator) -> None:
        self.authenticated = True
        user = next(iter(sim.config.manager.users.values()), None)
        self.user = user
        self.read_classes = frozenset(CLASSES)
        self.write_classes = frozenset(CLASSES)
        self.event_classes = frozenset(CLASSES)
        self.peer = ("127.0.0.1", 0)
        self.local = ("127.0.0.1", 0)
        self.started = sim.clock.now()
        self.ident = "scenario"
        self.challenge = ""
        self.frames: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.frames.append(data)


class ScenarioRunner:
    """Runs a scenario against a running simulator."""

    def __init__(self, sim: Simulator, scenario: Scenario) -> None:
        self.sim = sim
        self.scenario = scenario
        self.result = ScenarioResult(True)
        self._events: list[Event] = []
        self._new = asyncio.Event()
        self._engine = sim.engine

    def _listen(self, ev: Event) -> None:
        self._events.append(ev)
        self._new.set()

    def _follow_engine(self) -> None:
        if self._engine is not self.sim.engine:
            self._engine.unsubscribe(self._listen)
            self._engine = self.sim.engine
            self._engine.subscribe(self._listen)

    def apply_phones(self) -> None:
        for ep, prof in self.scenario.phones.items():
            phone = self.sim.engine.phones.get(ep)
            if phone is None:
                raise ScenarioError(f"phones.{ep}: no such endpoint in pjsip.conf")
            phone.profile.answer = prof.answer
            phone.profile.answer_delay = prof.answer_delay
            phone.set_registered(prof.registered)

    async def run(self) -> ScenarioResult:
        self._engine.subscribe(self._listen)
        try:
            self.apply_phones()
            for i, step in enumerate(self.scenario.steps, 1):
                self._follow_engine()
                try:
                    await self._step(step)
                except ScenarioError as exc:
                    self.result.ok = False
                    self.result.failures.append(f"step {i}: {exc}")
                    break
        finally:
            self._engine.unsubscribe(self._listen)
        return self.result

    def _note(self, text: str) -> None:
        self.result.log.append(f"{self.sim.clock.now():.3f} {text}")

    def _resolve(self, value: str) -> str:
        return self.result.calls.get(value, value)

    def _channel(self, ref: str) -> Channel:
        ch = self.sim.engine.find_channel(self._resolve(ref))
        if ch is None:
            raise ScenarioError(f"no live channel {ref!r}")
        return ch

    async def _step(self, step: dict[str, Any]) -> None:
        sim = self.sim
        if "call" in step:
            spec = step["call"]
            caller = None
            if "num" in spec or "name" in spec:
                caller = (str(spec.get("name", "")), str(spec.get("num", "")))
            try:
                ch = sim.call(str(spec["from"]), str(spec["to"]), caller=caller)
            except KeyError as exc:
                raise ScenarioError(f"call: {exc}") from None
            if "as" in spec:
                self.result.calls[str(spec["as"])] = ch.name
            self._note(f"call {ch.name} -> {spec['to']}")
        elif "sleep" in step:
            await sim.clock.sleep(float(step["sleep"]))
        elif "wait_for" in step:
            await self._wait_for(dict(step["wait_for"]), float(step.get("timeout", 60)))
        elif "hangup" in step:
            self._hangup(str(step["hangup"]))
        elif "press" in step:
            ch = self._channel(str(step["press"]["call"]))
            sim.phone(ch.endpoint).press(ch, str(step["press"]["digits"]))
        elif "answer" in step:
            if not sim.phone(str(step["answer"])).answer():
                raise ScenarioError(f"answer: phone {step['answer']} has no ringing call")
        elif "register" in step:
            spec = step["register"]
            sim.phone(str(spec["endpoint"])).set_registered(bool(spec.get("on", True)))
        elif "ami" in step:
            await self._ami(dict(step["ami"]), step.get("expect"))
        elif "fault" in step:
            await self._fault(str(step["fault"]), step)

    def _hangup(self, who: str) -> None:
        sim = self.sim
        if who.startswith("agent:"):
            ch = self._channel(who[6:])
            peers = [c for c in (ch.bridge.others(ch) if ch.bridge else []) if c.endpoint]
            if not peers:
                raise ScenarioError(f"hangup: {who[6:]} is not talking to an agent")
            sim.phone(peers[0].endpoint).hangup(peers[0])
            return
        ch = sim.engine.find_channel(self._resolve(who))
        if ch is not None and ch.endpoint:
            sim.phone(ch.endpoint).hangup(ch)
            return
        phone = sim.engine.phones.get(who)
        if phone is None or not phone.hangup():
            raise ScenarioError(f"hangup: nothing to hang up for {who!r}")

    async def _wait_for(self, spec: dict[str, Any], timeout: float) -> None:
        name = str(spec.pop("event"))
        want = {k: self._resolve(str(v)) for k, v in spec.items()}
        start = len(self._events)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.sim.clock.real(timeout)
        idx = start
        while True:
            while idx < len(self._events):
                ev = self._events[idx]
                idx += 1
                if ev.name == name and all(ev.get(k) == v for k, v in want.items()):
                    self._note(f"saw {name}")
                    return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ScenarioError(f"wait_for: no {name} {want} within {timeout}s")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), remaining)
            except TimeoutError:
                continue

    async def _ami(self, headers: dict[str, Any], expect: Any) -> None:
        session = _InternalSession(self.sim)
        msg = Message([(str(k), str(self._resolve(str(v)))) for k, v in headers.items()])
        await self.sim.ami.dispatcher.dispatch(cast("Session", session), msg)
        first = session.frames[0].decode() if session.frames else ""
        fields = dict(line.split(": ", 1) for line in first.split("\r\n") if ": " in line)
        self._note(
            f"ami {headers.get('Action')}: {fields.get('Response')} {fields.get('Message', '')}"
        )
        if isinstance(expect, dict):
            for k, v in expect.items():
                if fields.get(str(k)) != str(v):
                    raise ScenarioError(
                        f"ami {headers.get('Action')}: {k} is "
                        f"{fields.get(str(k))!r}, expected {v!r}"
                    )

    async def _fault(self, kind: str, step: dict[str, Any]) -> None:
        sim = self.sim
        if kind == "drop":
            sim.drop_links(abort=bool(step.get("abort", False)))
        elif kind == "restart":
            await sim.restart(float(step.get("downtime", 0.5)))
        elif kind == "stop":
            await sim.shutdown()
        elif kind == "start":
            await sim.boot()
        elif kind == "stall":
            sim.stall(True)
        elif kind == "unstall":
            sim.stall(False)
        elif kind == "slow":
            sim.slow(float(step.get("seconds", 0.1)))
        else:
            raise ScenarioError(f"unknown fault {kind!r}")
        self._note(f"fault {kind}")
