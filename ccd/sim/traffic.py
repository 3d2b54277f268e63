"""A call centre in motion: seeded callers and agents driving the simulated PBX.

Callers arrive as a Poisson process (``calls_per_minute``), come in through the trunk to
the DID, press an IVR digit (or not), wait in the queue up to their patience and hang up
if nobody answers (an abandon). Agents' phones ring, the agent picks up after a few
seconds, talks for a log-normal handle time, one side hangs up, and app_queue's
``wrapuptime`` keeps the agent out of the queue for a while. Every random choice comes
from one ``random.Random(seed)``, so a seed reproduces a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim.channel import Channel

if TYPE_CHECKING:
    from ccd.sim.engine import Engine
    from ccd.sim.phones import Phone
    from ccd.sim.simulator import Simulator

log = logging.getLogger(__name__)


@dataclass
class TrafficOptions:
    calls_per_minute: float = 4.0
    agents: int = 3
    handle_time: float = 120.0  # mean talk seconds
    handle_spread: float = 0.5  # sigma of the log-normal talk time
    patience: float = 90.0  # mean seconds a caller waits in the queue before giving up
    ring_time: tuple[float, float] = (1.0, 5.0)  # an agent picks up after this long
    ivr_digits: str = "123"  # what callers press in the IVR
    press_probability: float = 0.8
    agent_hangup_share: float = 0.5  # share of calls the agent ends
    did: str = "5551000"
    trunk: str = ""  # endpoint callers arrive from; default: one in an inbound context
    seed: int | None = None
    max_calls: int | None = None
    agent_context: str = "agents"  # whose phones are agents when queues have no members
    #: log the simulated agents in to every queue (like *23) when no queue has members;
    #: off when ccd logs agents in itself (make run)
    auto_login: bool = True


@dataclass
class TrafficStats:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    completed: int = 0
    by_agent: dict[str, int] = field(default_factory=dict)


class Traffic:
    """Runs callers and agents against a simulator until stopped."""

    def __init__(self, sim: Simulator, options: TrafficOptions) -> None:
        self.sim = sim
        self.opts = options
        self.rng = random.Random(options.seed)
        self.stats = TrafficStats()
        self.agent_endpoints: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._arrivals: asyncio.Task[None] | None = None
        self._engine: Engine | None = None

    # ------------------------------------------------------------------ set-up

    def agent_pool(self, engine: Engine) -> list[str]:
        """The simulated agents' phones, in name order: the queues' members, or (when agents
        log in at run time, as with ccd) the endpoints of the agents' dialplan context."""
        names: set[str] = set()
        for q in engine.queues.queues.values():
            for m in q.members:
                tech, _, res = m.interface.partition("/")
                if tech.upper() == "PJSIP" and res in engine.config.endpoints:
                    names.add(res)
        if not names:
            names = {name for name, ep in engine.config.endpoints.items()
                     if ep.context == self.opts.agent_context}
        return sorted(names)

    def trunk_endpoint(self, engine: Engine) -> str:
        if self.opts.trunk:
            if self.opts.trunk not in engine.config.endpoints:
                raise ValueError(f"no PJSIP endpoint {self.opts.trunk!r} for the trunk")
            return self.opts.trunk
        plan = engine.config.dialplan
        agents = set(self.agent_pool(engine))
        preferred = sorted(engine.config.endpoints.items(), key=lambda kv: kv[0] != "trunk")
        for name, ep in preferred:
            if name not in agents and plan.find(ep.context, self.opts.did) is not None:
                return name
        raise ValueError(f"no endpoint whose context reaches DID {self.opts.did}")

    def attach(self, engine: Engine) -> None:
        """Make the first ``agents`` member phones our agents; the others go offline."""
        self._engine = engine
        pool = self.agent_pool(engine)
        if self.opts.agents > len(pool):
            log.warning(
                "traffic: %d agents asked, only %d queue members exist", self.opts.agents, len(pool)
            )
        self.agent_endpoints = pool[: self.opts.agents]
        no_members = not any(q.members for q in engine.queues.queues.values())
        if self.opts.auto_login and no_members:
            for name in self.agent_endpoints:
                for queue in engine.queues.queues:
                    engine.queues.add_member(queue, f"PJSIP/{name}", name=f"Agent {name}")
        for name in pool:
            phone = engine.phones.get(name)
            if phone is None:
                continue
            if name in self.agent_endpoints:
                phone.profile.answer = "manual"
                phone.set_registered(True)
                phone.on_incoming = self._agent_rings(phone)
            else:
                phone.on_incoming = None
                phone.set_registered(False)

    # ------------------------------------------------------------------ running

    async def start(self) -> None:
        self.attach(self.sim.engine)
        self.sim.boot_hooks.append(self.attach)
        self._arrivals = asyncio.get_running_loop().create_task(self._arrive())

    async def stop(self) -> None:
        if self.attach in self.sim.boot_hooks:
            self.sim.boot_hooks.remove(self.attach)
        tasks = [t for t in (self._arrivals, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _arrive(self) -> None:
        rate = self.opts.calls_per_minute / 60.0
        if rate <= 0:
            return
        n = 0
        while self.opts.max_calls is None or n < self.opts.max_calls:
            await self.sim.clock.sleep(self.rng.expovariate(rate))
            if self.sim.down:
                continue
            n += 1
            task = asyncio.get_running_loop().create_task(self._caller(n))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _agent_rings(self, phone: Phone) -> Callable[[Channel], None]:
        def ringing(ch: Channel) -> None:
            lo, hi = self.opts.ring_time
            delay = self.rng.uniform(lo, hi)
            task = asyncio.get_running_loop().create_task(self._pick_up(phone, ch, delay))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return ringing

    async def _pick_up(self, phone: Phone, ch: Channel, delay: float) -> None:
        await self.sim.clock.sleep(delay)
        if not ch.hungup and ch.state == C.RINGING:
            phone.answer(ch)

    async def _caller(self, n: int) -> None:
        engine = self.sim.engine
        try:
            trunk = engine.phones.get(self.trunk_endpoint(engine))
        except ValueError as exc:
            log.error("traffic: %s", exc)
            return
        if trunk is None:
            return
        num = "555" + "".join(str(self.rng.randrange(10)) for _ in range(7))
        ch = trunk.place_call(self.opts.did, caller=(f"Caller {n}", num))
        self.stats.offered += 1
        patience = self.rng.expovariate(1.0 / self.opts.patience) if self.opts.patience else 0
        talk = self.opts.handle_time * math.exp(
            self.rng.gauss(0, self.opts.handle_spread) - self.opts.handle_spread**2 / 2
        )
        press = self.opts.ivr_digits and self.rng.random() < self.opts.press_probability
        digit = self.rng.choice(self.opts.ivr_digits) if press else ""
        agent_ends = self.rng.random() < self.opts.agent_hangup_share
        try:
            if digit:
                await self.sim.clock.sleep(2.2)
                if not ch.hungup:
                    trunk.press(ch, digit)
            peer = await self._wait_for_agent(ch, patience)
            if peer is None:
                if not ch.hungup:
                    trunk.hangup(ch)
                    self.stats.abandoned += 1
                return
            self.stats.answered += 1
            self.stats.by_agent[peer.endpoint] = self.stats.by_agent.get(peer.endpoint, 0) + 1
            await self._talk(ch, talk)
            if ch.hungup:
                return
            agent_phone = engine.phones.get(peer.endpoint)
            if agent_ends and agent_phone is not None and not peer.hungup:
                agent_phone.hangup(peer)
            else:
                trunk.hangup(ch)
            self.stats.completed += 1
        finally:
            trunk.forget(ch)

    async def _wait_for_agent(self, ch: Channel, patience: float) -> Channel | None:
        """The agent channel once the caller is bridged; None when patience runs out."""
        clock = self.sim.clock
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while not ch.hungup:
            if ch.bridge is not None:
                peers = [c for c in ch.bridge.others(ch) if c.endpoint]
                if peers:
                    return peers[0]
            if deadline is None and ch.queue_entry is not None:
                deadline = loop.time() + clock.real(patience)
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            ch.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ch.wake.wait(), min(remaining or 1.0, clock.real(1.0)))
        return None

    async def _talk(self, ch: Channel, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.sim.clock.real(seconds)
        while not ch.hungup and loop.time() < deadline:
            try:
                await asyncio.wait_for(ch.hangup_event.wait(), deadline - loop.time())
            except TimeoutError:
                break
