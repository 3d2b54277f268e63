"""app_queue's state: queues, members, callers, statistics and the member events.

Member order follows Asterisk's containers: a hash container of 37 buckets (keyed on the
interface after its ``/``) for most strategies, insertion order for ``linear`` and
``rrordered``; queues are listed in the order of their 53-bucket hash. That is why
QueueStatus lists a dynamic member added later before the static ones, exactly as the
captures show.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ccd.sim.channel import Channel
from ccd.sim.engine import DEVICE_CODES
from ccd.sim.events import AGENT, Fields
from ccd.sim.pbxconf import QueueConfig

if TYPE_CHECKING:
    from ccd.sim.engine import Engine

NOT_INUSE, INUSE, UNAVAILABLE, INVALID, RINGING, UNKNOWN = 1, 2, 5, 4, 6, 0


def _compress_char(c: str) -> int:
    o = ord(c)
    if o < 32:
        return 0
    return o - 64 if o > 96 else o - 32


def member_hash(interface: str) -> int:
    """app_queue's member_hash_fn: five characters from the ``/`` on, six bits each."""
    i = interface.find("/")
    chname = interface[i:] if i >= 0 else interface
    return sum(_compress_char(chname[k]) << (k * 6) for k in range(min(5, len(chname))))


def str_case_hash(s: str) -> int:
    """Asterisk's ast_str_case_hash (djb2 with xor, 32-bit signed, abs)."""
    h = 5381
    for c in s.lower():
        h = ((h * 33) ^ ord(c)) & 0xFFFFFFFF
    if h >= 2**31:
        h -= 2**32
    return abs(h)


_seq = itertools.count()


@dataclass(eq=False)
class Member:
    interface: str
    name: str
    state_interface: str
    penalty: int = 0
    dynamic: bool = False
    paused: bool = False
    paused_reason: str = ""
    calls: int = 0
    lastcall: float = 0.0
    lastpause: float = 0.0
    logintime: float = 0.0
    in_call: bool = False
    status: int = NOT_INUSE
    ringinuse: bool = False
    wrapuptime: int = 0
    seq: int = field(default_factory=lambda: next(_seq))
    reserved: int = 0  # call attempts currently ringing this member

    def fields(self, queue: str, listing: bool = False) -> Fields:
        """Fields of QueueMember* events (``listing``: the QueueStatus list variant)."""
        head: Fields = (
            [("Queue", queue), ("Name", self.name), ("Location", self.interface)]
            if listing
            else [("Queue", queue), ("MemberName", self.name), ("Interface", self.interface)]
        )
        out = [
            *head,
            ("StateInterface", self.state_interface),
            ("Membership", "dynamic" if self.dynamic else "static"),
            ("Penalty", str(self.penalty)),
            ("CallsTaken", str(self.calls)),
            ("LastCall", str(int(self.lastcall))),
            ("LastPause", str(int(self.lastpause))),
            ("LoginTime", str(int(self.logintime))),
            ("InCall", "1" if self.in_call else "0"),
            ("Status", str(self.status)),
            ("Paused", "1" if self.paused else "0"),
            ("PausedReason", self.paused_reason),
        ]
        if not listing:
            out.append(("Ringinuse", "1" if self.ringinuse else "0"))
        out.append(("Wrapuptime", str(self.wrapuptime)))
        return out


@dataclass(eq=False)
class Entry:
    """A caller waiting in (or being served by) a queue."""

    channel: Channel
    queue: Queue
    pos: int
    original_pos: int
    start: float
    linpos: int = 0
    linwrapped: bool = False
    pending: bool = False
    handled: bool = False


@dataclass(eq=False)
class Queue:
    config: QueueConfig
    members: list[Member] = field(default_factory=list)
    callers: list[Entry] = field(default_factory=list)
    holdtime: int = 0
    talktime: int = 0
    completed: int = 0
    abandoned: int = 0
    completed_in_sl: int = 0
    abandoned_in_sl: int = 0
    rrpos: int = 0
    wrapped: bool = False

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def linear(self) -> bool:
        return self.config.strategy in ("linear", "rrordered")

    def ordered(self) -> list[Member]:
        """Members in Asterisk's container iteration order."""
        if self.linear:
            return sorted(self.members, key=lambda m: m.seq)
        return sorted(self.members, key=lambda m: (member_hash(m.interface) % 37, m.seq))

    def member(self, interface: str) -> Member | None:
        low = interface.lower()
        for m in self.members:
            if m.interface.lower() == low:
                return m
        return None

    def sl_perf(self) -> tuple[str, str]:
        perf = 100.0 * self.completed_in_sl / self.completed if self.completed else 0.0
        total = self.completed + self.abandoned
        perf2 = 100.0 * (self.completed_in_sl + self.abandoned_in_sl) / total if total else 0.0
        return f"{perf:.1f}", f"{perf2:.1f}"


class QueueManager:
    """All queues of the PBX; emits QueueMember* events."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.queues: dict[str, Queue] = {}
        now = engine.clock.now()
        for name, qc in engine.config.queues.items():
            q = Queue(qc)
            for mc in qc.members:
                q.members.append(
                    Member(
                        mc.interface,
                        mc.name or mc.interface,
                        mc.state_interface or mc.interface,
                        mc.penalty,
                        False,
                        logintime=now,
                        ringinuse=qc.ringinuse if mc.ringinuse is None else mc.ringinuse,
                    )
                )
            self.queues[name] = q

    def init_status(self) -> None:
        """Read every member's device state once at boot (no events, as at load time)."""
        for q in self.queues.values():
            for m in q.members:
                m.status = DEVICE_CODES.get(self.engine.device_state(m.state_interface), 0)

    def ordered(self) -> list[Queue]:
        return sorted(self.queues.values(), key=lambda q: (str_case_hash(q.name) % 53, q.name))

    def get(self, name: str) -> Queue | None:
        return self.queues.get(name)

    def _event(self, name: str, q: Queue, m: Member) -> None:
        self.engine.emit(name, AGENT, m.fields(q.name))

    # ------------------------------------------------------------------ device state

    def device_changed(self, device: str, state: str) -> None:
        code = DEVICE_CODES.get(state, 0)
        for q in self.ordered():
            for m in q.ordered():
                if m.state_interface.lower() == device.lower() and m.status != code:
                    m.status = code
                    self._event("QueueMemberStatus", q, m)

    # ------------------------------------------------------------------ member changes

    def add_member(
        self,
        queue: str,
        interface: str,
        *,
        penalty: int = 0,
        name: str = "",
        state_interface: str = "",
        paused: bool = False,
        reason: str = "",
        ringinuse: bool | None = None,
    ) -> str | None:
        """QueueAdd / AddQueueMember. Returns None, ``exists`` or ``noqueue``."""
        q = self.queues.get(queue)
        if q is None:
            return "noqueue"
        if q.member(interface) is not None:
            return "exists"
        now = self.engine.clock.now()
        si = state_interface or interface
        m = Member(
            interface,
            name or interface,
            si,
            penalty,
            True,
            paused,
            reason if paused else "",
            logintime=now,
            ringinuse=q.config.ringinuse if ringinuse is None else ringinuse,
            lastpause=now if paused else 0.0,
        )
        m.status = DEVICE_CODES.get(self.engine.device_state(si), 0)
        q.members.append(m)
        self._event("QueueMemberAdded", q, m)
        return None

    def remove_member(self, queue: str, interface: str) -> str | None:
        """QueueRemove. Returns None, ``notthere``, ``noqueue`` or ``notdynamic``."""
        q = self.queues.get(queue)
        if q is None:
            return "noqueue"
        m = q.member(interface)
        if m is None:
            return "notthere"
        if not m.dynamic:
            return "notdynamic"
        q.members.remove(m)
        self._event("QueueMemberRemoved", q, m)
        return None

    def _memberships(self, interface: str, queue: str | None) -> list[tuple[Queue, Member]]:
        """(queue, member) pairs for ``interface`` in ``queue``, or in every queue if None."""
        if queue:
            targets = [self.queues[queue]] if queue in self.queues else []
        else:
            targets = self.ordered()
        return [(q, m) for q in targets if (m := q.member(interface)) is not None]

    def set_paused(
        self, interface: str, paused: bool, queue: str | None = None, reason: str = ""
    ) -> str | None:
        """QueuePause (all queues when ``queue`` is None). None or ``notfound``."""
        found = False
        now = self.engine.clock.now()
        for q, m in self._memberships(interface, queue):
            found = True
            m.paused = paused
            m.paused_reason = reason
            if paused:
                m.lastpause = now
            self._event("QueueMemberPause", q, m)
            m.paused_reason = reason if paused else ""
        return None if found else "notfound"

    def set_penalty(self, interface: str, penalty: int, queue: str | None = None) -> bool:
        found = False
        for q, m in self._memberships(interface, queue):
            found = True
            m.penalty = penalty
            self._event("QueueMemberPenalty", q, m)
        return found

    def set_ringinuse(self, interface: str, value: bool, queue: str | None = None) -> bool:
        found = False
        for q, m in self._memberships(interface, queue):
            found = True
            m.ringinuse = value
            self._event("QueueMemberRinginuse", q, m)
        return found

    def forget_dynamic(self) -> None:
        """After a restart only static members from queues.conf exist."""
        for q in self.queues.values():
            q.members = [m for m in q.members if not m.dynamic]

    def member_function(self, argv: list[str]) -> str:
        """``${QUEUE_MEMBER(queue,logged|free|ready|count|paused)}``."""
        if len(argv) < 2 or argv[0].strip() not in self.queues:
            return "0"
        q = self.queues[argv[0].strip()]
        what = argv[1].strip().lower()
        now = self.engine.clock.now()
        if what == "count":
            return str(len(q.members))
        if what == "logged":
            return str(sum(1 for m in q.members if m.status not in (UNAVAILABLE, INVALID)))
        if what == "paused":
            return str(sum(1 for m in q.members if m.paused))
        if what in ("free", "ready"):
            return str(sum(1 for m in q.members if self.available(q, m, now)))
        return "0"

    # ------------------------------------------------------------------ availability

    def wrapup(self, q: Queue, m: Member) -> float:
        return float(m.wrapuptime or q.config.wrapuptime)

    def in_wrapup(self, q: Queue, m: Member, now: float) -> bool:
        """app_queue compares whole seconds: time(NULL) - wrapuptime < lastcall."""
        wrap = self.wrapup(q, m)
        return bool(wrap and m.lastcall and int(now) - wrap < int(m.lastcall))

    def available(self, q: Queue, m: Member, now: float) -> bool:
        """is_member_available(): could this member take a call now?"""
        if m.status in (UNAVAILABLE, INVALID) or m.paused:
            return False
        if m.status not in (NOT_INUSE, UNKNOWN) and not m.ringinuse:
            return False
        return not self.in_wrapup(q, m, now)

    def can_ring(self, q: Queue, m: Member, now: float) -> bool:
        """app_queue's can_ring_entry: paused, wrap-up, in use (ringinuse=no), unavailable."""
        if m.paused or m.status in (UNAVAILABLE, INVALID):
            return False
        if m.reserved:
            return False
        if not m.ringinuse and m.status not in (NOT_INUSE, UNKNOWN):
            return False
        if not m.ringinuse and m.in_call:
            return False
        if not m.ringinuse and self._busy_elsewhere(m):
            return False
        return not self.in_wrapup(q, m, now)

    def _busy_elsewhere(self, m: Member) -> bool:
        key = m.interface.lower()
        return any(
            x.reserved or x.in_call
            for q in self.queues.values()
            for x in q.members
            if x.interface.lower() == key and x is not m
        )

    def num_available(self, q: Queue) -> int:
        """num_available_members(): with autofill off or ringall, at most 1."""
        now = self.engine.clock.now()
        count = 0
        for m in q.ordered():
            count += self.available(q, m, now)
            if count and (not q.config.autofill or q.config.strategy == "ringall"):
                break
        return count

    def metric(self, q: Queue, entry: Entry, m: Member, pos: int) -> int:
        """calc_metric: lower rings first."""
        strategy = q.config.strategy
        penalty = m.penalty * 1000000
        if strategy == "ringall":
            return penalty
        if strategy in ("rrmemory", "rrordered"):
            if pos < q.rrpos:
                return 1000 + pos + penalty
            if pos > q.rrpos:
                q.wrapped = True
            return pos + penalty
        if strategy == "linear":
            if pos < entry.linpos:
                return 1000 + pos + penalty
            if pos > entry.linpos:
                entry.linwrapped = True
            return pos + penalty
        if strategy == "leastrecent":
            now = self.engine.clock.now()
            if not m.lastcall or now - m.lastcall >= 1000000:
                return penalty
            return int(1000000 - (now - m.lastcall)) + penalty
        if strategy == "fewestcalls":
            return m.calls + penalty
        if strategy == "random":
            return random.randrange(1000) + penalty
        if strategy == "wrandom":
            return random.randrange((1 + m.penalty) * 1000)
        return penalty

    # ------------------------------------------------------------------ statistics

    def record_connect(self, q: Queue, holdtime: int) -> None:
        if q.completed + q.abandoned == 0:
            q.holdtime = holdtime
        else:
            q.holdtime = ((q.holdtime << 2) - q.holdtime + holdtime) >> 2

    def record_complete(self, q: Queue, holdtime: int, talktime: int) -> None:
        q.completed += 1
        if holdtime <= q.config.servicelevel:
            q.completed_in_sl += 1
        if q.completed == 1:
            q.talktime = talktime
        else:
            q.talktime = ((q.talktime << 2) - q.talktime + talktime) >> 2

    def record_abandon(self, q: Queue, holdtime: int) -> None:
        q.abandoned += 1
        if holdtime <= q.config.servicelevel:
            q.abandoned_in_sl += 1
