"""``Queue(name,options,URL,announce,timeout)``: app_queue's caller side.

The caller joins (QueueCallerJoin, music on hold), waits for its turn (checked every
second, ``autofill``), rings members by strategy with the queue's ``timeout`` and ``retry``,
and either connects to an agent (AgentCalled/DialBegin/DialEnd/QueueCallerLeave/
AgentConnect/bridge), abandons (QueueCallerAbandon), times out or leaves an empty queue
(QueueCallerAbandon too, as Asterisk 22 does, then QUEUESTATUS). After the call,
AgentComplete says who ended it; the quirks of the captures are kept (AMI hangups report
``caller``, a redirected caller's AgentComplete comes only when it hangs up).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim.apps import app
from ccd.sim.apps.basic import pause
from ccd.sim.bridge import Bridge
from ccd.sim.channel import Channel
from ccd.sim.dialing import RequestFailed, dial_event, place, rejected, request, status_of
from ccd.sim.dialplan import split_args
from ccd.sim.events import AGENT, CALL
from ccd.sim.pbx import async_goto
from ccd.sim.queues import INVALID, UNAVAILABLE, UNKNOWN, Entry, Member, Queue

if TYPE_CHECKING:
    from ccd.sim.engine import Engine

RECHECK = 1.0  # app_queue checks its turn every second

STRICT = frozenset({"penalty", "paused", "invalid", "unavailable"})
LOOSE = frozenset({"penalty", "invalid"})


def empty_conditions(spec: str, join: bool) -> frozenset[str]:
    """joinempty / leavewhenempty as app_queue parses them: ``yes`` means "join anyway" but
    "leave when empty", ``no`` the opposite; otherwise a list of conditions."""
    spec = spec.strip().lower()
    if spec in ("yes", "true", "1", "on"):
        return frozenset() if join else STRICT
    if spec in ("no", "false", "0", "off", ""):
        return STRICT if join else frozenset()
    if spec == "strict":
        return STRICT
    if spec == "loose":
        return LOOSE
    return frozenset(x.strip() for x in spec.split(",") if x.strip())


class Attempt:
    """One member being rung for one caller."""

    def __init__(self, member: Member, channel: Channel, started: float) -> None:
        self.member = member
        self.channel = channel
        self.started = started
        self.ringing_reported = False
        self.done = False


@app("Queue")
async def queue_app(engine: Engine, ch: Channel, data: str) -> int:
    args = [a.strip() for a in split_args(data)] + [""] * 8
    q = engine.queues.get(args[0])
    for var in (
        "ANSWEREDTIME",
        "ANSWEREDTIME_MS",
        "DIALEDTIME",
        "DIALEDTIME_MS",
        "QUEUEWAIT",
        "QUEUEWAIT_MS",
    ):
        engine.set_var(ch, var, "")
    if q is None:
        engine.set_var(ch, "QUEUESTATUS", "UNKNOWN")
        return 0
    timeout = float(args[4]) if args[4].replace(".", "", 1).isdigit() else 0.0
    call = QueueCall(engine, ch, q, args[1], timeout)
    return await call.run()


class QueueCall:
    """One caller's stay in one queue."""

    def __init__(self, engine: Engine, ch: Channel, q: Queue, options: str, timeout: float) -> None:
        self.engine = engine
        self.qm = engine.queues
        self.ch = ch
        self.q = q
        self.options = options
        self.timeout = timeout
        self.entry: Entry | None = None
        self.expire = 0.0
        self.connected_at = 0.0
        self.holdtime = 0
        self.agent: Member | None = None
        self.peer: Channel | None = None
        self.bridge: Bridge | None = None
        self.completed = False

    # ------------------------------------------------------------------ helpers

    def now(self) -> float:
        return self.engine.clock.now()

    def is_empty(self, conditions: frozenset[str]) -> bool:
        """get_member_status() < 0: no member passes the joinempty/leavewhenempty test."""
        if not conditions:
            return False
        now = self.now()
        for m in self.q.members:
            if "paused" in conditions and m.paused:
                continue
            if "unavailable" in conditions and m.status == UNAVAILABLE:
                continue
            if "invalid" in conditions and m.status == INVALID:
                continue
            if "unknown" in conditions and m.status == UNKNOWN:
                continue
            if "inuse" in conditions and (m.in_call or m.status in (2, 3, 7, 8)):
                continue
            if "ringing" in conditions and m.status == 6:
                continue
            if "wrapup" in conditions and self.qm.in_wrapup(self.q, m, now):
                continue
            return False
        return True

    def is_our_turn(self) -> bool:
        entry = self.entry
        if entry is None:
            return False
        if not self.q.config.autofill:
            return self.q.callers[0] is entry if self.q.callers else False
        ahead = 0
        for e in self.q.callers:
            if e is entry:
                break
            if not e.pending:
                ahead += 1
        return ahead < self.qm.num_available(self.q)

    def expired(self) -> bool:
        return bool(self.expire) and self.now() >= self.expire

    # ------------------------------------------------------------------ main loop

    async def run(self) -> int:
        eng, ch, q = self.engine, self.ch, self.q
        if self.is_empty(empty_conditions(q.config.joinempty, join=True)):
            eng.set_var(ch, "QUEUESTATUS", "JOINEMPTY")
            return 0
        if q.config.maxlen and len(q.callers) >= q.config.maxlen:
            eng.set_var(ch, "QUEUESTATUS", "FULL")
            return 0
        self.join()
        leave_cond = empty_conditions(q.config.leavewhenempty, join=False)
        try:
            while True:
                why = await self.wait_turn(leave_cond)
                if why:
                    return self.exit(why)
                outcome = await self.try_calling()
                if outcome == "answered":
                    return await self.talk()
                if outcome in ("hangup", "goto"):
                    return self.exit(outcome)
                if self.expired():
                    return self.exit("timeout")
                if leave_cond and self.is_empty(leave_cond):
                    return self.exit("leaveempty")
                if not await pause(eng, ch, float(q.config.retry)):
                    return self.exit("goto" if ch.pending_goto and not ch.hungup else "hangup")
        finally:
            if self.entry is not None and self.entry in q.callers:
                self.leave()

    def join(self) -> None:
        eng, ch, q = self.engine, self.ch, self.q
        pos = len(q.callers) + 1
        self.entry = Entry(ch, q, pos, pos, self.now())
        ch.queue_entry = self.entry
        if self.timeout:
            self.expire = self.entry.start + self.timeout
        q.callers.append(self.entry)
        if len(q.callers) == 1:
            eng.emit(
                "DeviceStateChange", CALL, [("Device", f"Queue:{q.name}"), ("State", "RINGING")]
            )
        eng.chan_event(
            "QueueCallerJoin",
            ch,
            [("Queue", q.name), ("Position", str(pos)), ("Count", str(len(q.callers)))],
            privilege=AGENT,
        )
        eng.moh_start(ch, q.config.musicclass)

    def leave(self) -> None:
        """Remove from the queue: positions behind move up, QueueCallerLeave."""
        eng, q, entry = self.engine, self.q, self.entry
        if entry is None or entry not in q.callers:
            return
        q.callers.remove(entry)
        for i, e in enumerate(q.callers, 1):
            e.pos = i
        if not q.callers:
            eng.emit(
                "DeviceStateChange", CALL, [("Device", f"Queue:{q.name}"), ("State", "NOT_INUSE")]
            )
        eng.chan_event(
            "QueueCallerLeave",
            self.ch,
            [("Queue", q.name), ("Position", str(entry.pos)), ("Count", str(len(q.callers)))],
            privilege=AGENT,
        )

    async def wait_turn(self, leave_cond: frozenset[str]) -> str:
        """wait_our_turn: '' when it is our turn, else why we stop waiting."""
        ch = self.ch
        while not self.is_our_turn():
            if ch.hungup:
                return "hangup"
            if ch.pending_goto is not None:
                return "goto"
            if self.expired():
                return "timeout"
            if leave_cond and self.is_empty(leave_cond):
                return "leaveempty"
            step = RECHECK
            if self.expire:
                step = max(0.001, min(step, self.expire - self.now()))
            if not await pause(self.engine, ch, step):
                return "goto" if ch.pending_goto and not ch.hungup else "hangup"
        if ch.hungup:
            return "hangup"
        return ""

    def exit(self, why: str) -> int:
        """Leave without an agent: abandon, timeout, empty queue, redirected away."""
        eng, ch, q = self.engine, self.ch, self.q
        entry = self.entry
        eng.moh_stop(ch)
        if entry is not None and entry in q.callers:
            if why != "goto":
                hold = int(self.now()) - int(entry.start)
                eng.chan_event(
                    "QueueCallerAbandon",
                    ch,
                    [
                        ("Queue", q.name),
                        ("Position", str(entry.pos)),
                        ("OriginalPosition", str(entry.original_pos)),
                        ("HoldTime", str(hold)),
                    ],
                    privilege=AGENT,
                )
                self.qm.record_abandon(q, hold)
            self.leave()
        if why == "hangup":
            return -1
        if why == "goto":
            return 0
        eng.set_var(
            ch,
            "QUEUESTATUS",
            {"timeout": "TIMEOUT", "leaveempty": "LEAVEEMPTY"}.get(why, why.upper()),
        )
        return 0

    # ------------------------------------------------------------------ ringing

    def ring_timeout(self) -> float | None:
        to = float(self.q.config.timeout) if self.q.config.timeout else None
        if self.expire:
            left = max(0.0, self.expire - self.now())
            if to is None or left <= to:
                to = left
        return to

    def candidates(self) -> list[tuple[int, int, Member]]:
        """Every member with its metric, best first (ties in container order)."""
        q = self.q
        entry = self.entry or Entry(self.ch, q, 1, 1, self.now())
        q.wrapped = False
        entry.linwrapped = False
        out = [(self.qm.metric(q, entry, m, pos), pos, m) for pos, m in enumerate(q.ordered())]
        return sorted(out, key=lambda x: (x[0], x[1]))

    def store_next(self, rung: list[Member], ordered: list[tuple[int, int, Member]]) -> None:
        """store_next_rr / store_next_lin: remember where the next round starts."""
        q, entry = self.q, self.entry
        rest = [
            (metric, pos)
            for metric, pos, m in ordered
            if m not in rung and self.qm.can_ring(q, m, self.now())
        ]
        if q.config.strategy in ("rrmemory", "rrordered"):
            if rest:
                q.rrpos = min(rest)[0] % 1000
            else:
                q.rrpos = 0 if q.wrapped else q.rrpos + 1
            q.wrapped = False
        elif q.config.strategy == "linear" and entry is not None:
            if rest:
                entry.linpos = min(rest)[0] % 1000
            else:
                entry.linpos = 0 if entry.linwrapped else entry.linpos + 1
            entry.linwrapped = False

    def ring_entry(self, m: Member) -> Attempt | None:
        """Create and ring one member's channel (AgentCalled, DialBegin)."""
        eng, ch = self.engine, self.ch
        try:
            leg = request(eng, m.interface, requestor=ch)
        except RequestFailed:
            return None
        leg.driven = True
        m.reserved += 1
        eng.set_var(leg, "DIALEDPEERNUMBER", m.interface.partition("/")[2])
        leg.exten, leg.priority = ch.exten, 1
        leg.conn_num, leg.conn_name = ch.caller_num, ch.caller_name
        attempt = Attempt(m, leg, self.now())
        eng.chan_event(
            "AgentCalled",
            ch,
            [
                *leg.snapshot("Dest"),
                ("Queue", self.q.name),
                ("Interface", m.interface),
                ("MemberName", m.name),
            ],
            privilege=AGENT,
        )
        dial_event(eng, "DialBegin", ch, leg, [("DialString", m.interface)])
        eng.set_connected(ch, *_cid(leg))
        place(eng, leg)
        return attempt

    async def try_calling(self) -> str:
        """Ring members until one answers, the ring timeout passes, or the caller leaves."""
        _eng, _ch, q = self.engine, self.ch, self.q
        if self.entry is not None:
            self.entry.pending = True
        ordered = self.candidates()
        attempts: list[Attempt] = []
        now = self.now()
        if q.config.strategy == "ringall":
            best = None
            for metric, _pos, m in ordered:
                if not self.qm.can_ring(q, m, now):
                    continue
                if best is None:
                    best = metric
                if metric <= best:
                    a = self.ring_entry(m)
                    if a is not None:
                        attempts.append(a)
        else:
            for _metric, _pos, m in ordered:
                if self.qm.can_ring(q, m, now):
                    a = self.ring_entry(m)
                    if a is not None:
                        attempts.append(a)
                        break
        if not attempts:
            self.store_next([], ordered)
            if self.entry is not None:
                self.entry.pending = False
            return "none"
        result = await self.wait_for_answer(attempts)
        self.store_next([a.member for a in attempts], ordered)
        if self.entry is not None:
            self.entry.pending = False
        return result

    async def wait_for_answer(self, attempts: list[Attempt]) -> str:
        eng, ch, _q = self.engine, self.ch, self.q
        loop = asyncio.get_running_loop()
        timeout = self.ring_timeout()
        deadline = None if timeout is None else loop.time() + eng.clock.real(timeout)
        while True:
            for a in attempts:
                if a.done:
                    continue
                leg = a.channel
                if leg.state == C.RINGING and not a.ringing_reported:
                    a.ringing_reported = True
                    eng.newexten(leg, "AppQueue", "(Outgoing Line)")
                    eng.set_connected(leg, ch.caller_num, ch.caller_name)
                    dial_event(eng, "DialState", ch, leg, [("DialStatus", "RINGING")])
                if leg.state == C.UP and not leg.hungup:
                    if not a.ringing_reported:
                        eng.newexten(leg, "AppQueue", "(Outgoing Line)")
                    a.done = True
                    for other in attempts:
                        if other is not a and not other.done:
                            self.cancel(other, "CANCEL")
                    self.connect(a)
                    return "answered"
                refused = rejected(leg)
                if leg.hungup or refused:
                    a.done = True
                    status = refused or status_of(leg)
                    dial_event(eng, "DialEnd", ch, leg, [("DialStatus", status)])
                    if status in ("BUSY", "CONGESTION"):
                        self._rna_event(a)  # app_queue reports a refusal like a timeout
                    self.release(a, hangup=True)
            if ch.hungup or ch.pending_goto is not None:
                for a in attempts:
                    if not a.done:
                        self.cancel(a, "CANCEL")
                return "hangup" if ch.hungup else "goto"
            if all(a.done for a in attempts):
                return "noanswer"
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                for a in attempts:
                    if not a.done:
                        self.ring_no_answer(a)
                return "noanswer"
            waits = [asyncio.ensure_future(ch.wake.wait())]
            for a in attempts:
                if not a.done:
                    waits.append(asyncio.ensure_future(a.channel.wake.wait()))
                    if not a.ringing_reported:
                        waits.append(asyncio.ensure_future(a.channel.ringing.wait()))
                    waits.append(asyncio.ensure_future(a.channel.answered.wait()))
            await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            ch.wake.clear()
            for a in attempts:
                a.channel.wake.clear()

    def release(self, a: Attempt, hangup: bool) -> None:
        a.member.reserved = max(0, a.member.reserved - 1)
        if hangup and not a.channel.dead:
            self.engine.hangup(a.channel)

    def cancel(self, a: Attempt, status: str) -> None:
        a.done = True
        dial_event(self.engine, "DialEnd", self.ch, a.channel, [("DialStatus", status)])
        self.release(a, hangup=True)

    def ring_no_answer(self, a: Attempt) -> None:
        eng = self.engine
        a.done = True
        self._rna_event(a)
        dial_event(eng, "DialEnd", self.ch, a.channel, [("DialStatus", "NOANSWER")])
        dial_event(eng, "DialEnd", self.ch, a.channel, [("DialStatus", "CANCEL")])
        self.release(a, hangup=True)

    def _rna_event(self, a: Attempt) -> None:
        """AgentRingNoAnswer (RingTime in ms): also sent when the member refused the call."""
        ring_ms = round((self.now() - a.started) * 1000)
        self.engine.chan_event(
            "AgentRingNoAnswer",
            self.ch,
            [
                *a.channel.snapshot("Dest"),
                ("Queue", self.q.name),
                ("Interface", a.member.interface),
                ("MemberName", a.member.name),
                ("RingTime", str(ring_ms)),
            ],
            privilege=AGENT,
        )

    # ------------------------------------------------------------------ connected

    def connect(self, a: Attempt) -> None:
        """The member answered: DialEnd, leave the queue, AgentConnect, bridge."""
        eng, ch, q, m, leg = self.engine, self.ch, self.q, a.member, a.channel
        entry = self.entry
        now = self.now()
        dial_event(eng, "DialEnd", ch, leg, [("DialStatus", "ANSWER")])
        eng.moh_stop(ch)
        if q.config.setinterfacevar:
            for target in (ch, leg):
                for var, value in (
                    ("MEMBERINTERFACE", m.interface),
                    ("MEMBERNAME", m.name),
                    ("MEMBERCALLS", str(m.calls)),
                    ("MEMBERLASTCALL", str(int(m.lastcall))),
                    ("MEMBERPENALTY", str(m.penalty)),
                    ("MEMBERDYNAMIC", "1" if m.dynamic else "0"),
                    ("MEMBERREALTIME", "0"),
                ):
                    eng.set_var(target, var, value)
        start = entry.start if entry is not None else now
        self.holdtime = int(now) - int(start)
        if q.config.setqueueentryvar:
            for target in (ch, leg):
                eng.set_var(target, "QEHOLDTIME", str(self.holdtime))
                eng.set_var(target, "QEORIGINALPOS", str(entry.original_pos if entry else 1))
        if q.config.setqueuevar:
            for target in (ch, leg):
                self.queue_vars(target)
        self.leave()
        waited = now - start
        eng.set_var(ch, "QUEUEPOSITION", str(entry.original_pos if entry else 1))
        eng.set_var(ch, "QUEUEWAIT", str(int(waited)))
        eng.set_var(ch, "QUEUEWAIT_MS", str(int(waited * 1000)))
        ring_time = int(now) - int(a.started)
        eng.chan_event(
            "AgentConnect",
            ch,
            [
                *leg.snapshot("Dest"),
                ("Queue", q.name),
                ("Interface", m.interface),
                ("MemberName", m.name),
                ("HoldTime", str(self.holdtime)),
                ("RingTime", str(ring_time)),
            ],
            privilege=AGENT,
        )
        self.qm.record_connect(q, self.holdtime)
        m.reserved = max(0, m.reserved - 1)
        m.in_call = True
        self.agent, self.peer = m, leg
        self.connected_at = now
        bridge = eng.bridge_create(owner=self)
        bridge.options = self.options
        self.bridge = bridge
        eng.bridge_enter(bridge, leg)
        eng.bridge_enter(bridge, ch)

    def queue_vars(self, target: Channel) -> None:
        q = self.q
        perf, _ = q.sl_perf()
        for var, value in (
            ("QUEUENAME", q.name),
            ("QUEUEMAX", str(q.config.maxlen)),
            ("QUEUESTRATEGY", q.config.strategy),
            ("QUEUECALLS", str(len(q.callers))),
            ("QUEUEHOLDTIME", str(q.holdtime)),
            ("QUEUETALKTIME", str(q.talktime)),
            ("QUEUECOMPLETED", str(q.completed)),
            ("QUEUEABANDONED", str(q.abandoned)),
            ("QUEUESRVLEVEL", str(q.config.servicelevel)),
            ("QUEUESRVLEVELPERF", perf),
        ):
            self.engine.set_var(target, var, value)

    def agent_complete(self, reason: str, dest: Channel | None) -> None:
        """AgentComplete (and the queue statistics of a finished call), once."""
        if self.completed or self.agent is None:
            return
        self.completed = True
        talk = int(self.now()) - int(self.connected_at)
        self.finish_stats(talk)
        self._agent_complete_event(reason, dest, talk)

    def _agent_complete_event(self, reason: str, dest: Channel | None, talk: int) -> None:
        m = self.agent
        if m is None:
            return
        fields = [
            *(dest.snapshot("Dest") if dest is not None and not dest.dead else []),
            ("Queue", self.q.name),
            ("Interface", m.interface),
            ("MemberName", m.name),
            ("HoldTime", str(self.holdtime)),
            ("TalkTime", str(talk)),
            ("Reason", reason),
        ]
        self.engine.chan_event("AgentComplete", self.ch, fields, privilege=AGENT)

    def finish_stats(self, talk: int) -> None:
        m = self.agent
        if m is None:
            return
        self.qm.record_complete(self.q, self.holdtime, talk)
        m.calls += 1
        m.lastcall = self.now()
        m.in_call = False

    def transferred(self, dest: Channel | None) -> None:
        """An attended transfer moved the caller away from the agent."""
        self.agent_complete("transfer", dest)

    async def talk(self) -> int:
        """Wait for the end of the bridged call and tear it down the way Asterisk does."""
        eng, ch = self.engine, self.ch
        bridge = self.bridge
        if bridge is None or bridge.ended is None:
            return -1
        first, why = await bridge.ended
        agent_leg = self.peer
        if why == "goto" and first is ch:
            # AMI Redirect of the caller: the agent is hung up now, but AgentComplete only
            # comes when the caller's channel ends (Reason=caller), as in the captures
            for other in list(bridge.channels):
                eng.bridge_leave(other)
            eng.bridge_destroy(bridge)
            if not self.completed and self.agent is not None:
                self.completed = True
                self.finish_stats(int(self.now()) - int(self.connected_at))
                self._deferred_complete()
            self._hangup_peers(agent_leg)
            return 0
        if why == "transfer":
            self.agent_complete("transfer", agent_leg)
            if agent_leg is not None and agent_leg.bridge is bridge:
                eng.bridge_leave(agent_leg)
            if bridge.transfer_target is not None:
                async_goto(eng, ch, *bridge.transfer_target)
            if ch.bridge is bridge:
                eng.bridge_leave(ch)
            eng.bridge_destroy(bridge)
            self._hangup_peers(agent_leg)
            return 0
        agent_first = first is not None and first is not ch
        reason = "agent" if agent_first and why in (C.REMOTE, C.SHUTDOWN) else "caller"
        if why == C.REMOTE:
            self.agent_complete(reason, agent_leg)
        remaining = list(bridge.channels)
        for other in remaining:
            eng.bridge_leave(other)
        eng.bridge_destroy(bridge)
        self.agent_complete(reason, agent_leg)
        ch.hangupcause = ch.hangupcause or C.NORMAL_CLEARING
        self._hangup_peers(agent_leg, *remaining)
        talked = self.now() - self.connected_at
        eng.set_var(ch, "ANSWEREDTIME", str(int(talked)))
        eng.set_var(ch, "ANSWEREDTIME_MS", str(int(talked * 1000)))
        if agent_first and "c" in self.options and not ch.hungup:
            return 0  # option c: the caller goes on in the dialplan (a survey ...)
        return -1

    def _hangup_peers(self, *legs: Channel | None) -> None:
        seen: set[int] = set()
        for leg in legs:
            if leg is None or id(leg) in seen or leg.dead or leg is self.ch:
                continue
            seen.add(id(leg))
            if leg.bridge is not None and leg.bridge is not self.bridge:
                continue  # moved elsewhere (attended transfer target)
            if leg.in_pbx:
                continue
            leg.hangupcause = leg.hangupcause or C.NORMAL_CLEARING
            self.ch.hangupcause = self.ch.hangupcause or C.NORMAL_CLEARING
            self.engine.hangup(leg)

    def _deferred_complete(self) -> None:
        """AgentComplete only when the redirected caller's channel ends (Reason=caller)."""
        eng = self.engine
        ch = self.ch
        connected_at = self.connected_at

        def hook(dead: Channel) -> None:
            if dead is not ch:
                return
            eng.hangup_hooks.remove(hook)
            talk = int(eng.clock.now()) - int(connected_at)
            self._agent_complete_event("caller", None, talk)

        eng.hangup_hooks.append(hook)


def _cid(ch: Channel) -> tuple[str, str]:
    return ch.caller_num, ch.caller_name
