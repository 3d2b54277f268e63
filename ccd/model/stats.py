"""Queue and agent statistics per interval, computed from domain events (pure).

Definitions (also in the README):

* Every queue entry is attributed to the interval in which the caller **joined** the
  queue (15 minutes by default, aligned to UTC).
* ``offered``: entries into the queue. ``answered``: entries an agent answered.
  ``abandoned``: the caller hung up while waiting. ``exited``: left without an agent
  and without hanging up (queue timeout, empty queue ...).
* ``answered_in_sl``: answered with a wait <= the queue's service-level threshold T.
  ``abandoned_short``: abandoned with a wait < T; they are *excluded* from the
  service level, as QueueMetrics and Wazo do, and so are callers still waiting:
  ``service_level = answered_in_sl / (answered + abandoned + exited - abandoned_short)``.
* ``asa`` (average speed of answer) = total wait of answered entries / answered.
* ``avg_wait`` and ``longest_wait`` cover every entry that finished waiting
  (answered, abandoned, exited); ``avg_abandon_wait`` only the abandoned ones.
* ``aht`` (average handle time) = (talk + hold outside talk + wrap-up) / answered with a
  known talk time, where talk is the time the caller spent with the agent who answered
  from this queue, hold the time that agent held the call (a hold while the caller
  stays connected is already part of talk and is not added twice) and wrap-up that
  agent's wrap-up after the call (attributed to the queue the agent answered from, also
  after a transfer). ``talk_unknown`` counts answered calls whose end ccd did not see
  (the AMI link was down): they are left out of talk, hold, wrap-up and AHT.
* Agent ``occupancy`` = (ringing + on call + on hold + wrap-up) / staffed time, where
  staffed = logged in and not paused (available, ringing, on call, on hold, wrap-up).

The work done per event is bounded whatever the times say: a collector keeps only the
intervals overlapping its ``window`` (a report's range, the live wallboard's day), a state
is spread over at most :data:`MAX_SPAN` seconds before the event that ends it (so at most
``MAX_SPAN / interval`` intervals), and events whose time is not finite are ignored.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ccd.model import domain as d

INTERVAL = 900.0
#: the longest stretch of one agent state spread over intervals (31 days: a month's report)
MAX_SPAN = 31 * 86400.0
BUSY_STATES = ("ringing", "on_call", "on_hold", "wrapup")
STAFFED_STATES = ("available", *BUSY_STATES)


def interval_start(ts: float, size: float = INTERVAL) -> float:
    """Start of the interval containing ``ts``."""
    return math.floor(ts / size) * size


@dataclass(slots=True)
class QueueInterval:
    queue: str
    start: float
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    exited: int = 0
    answered_in_sl: int = 0
    abandoned_short: int = 0
    wait_answered: float = 0.0
    wait_total: float = 0.0
    waits: int = 0
    longest_wait: float = 0.0
    abandon_wait: float = 0.0
    talk: float = 0.0
    hold: float = 0.0
    hold_extra: float = 0.0  # hold not already inside talk
    wrapup: float = 0.0
    talk_unknown: int = 0  # answered calls whose end (so talk) is not known

    @property
    def service_level(self) -> float | None:
        # only entries whose wait is over: a caller still waiting is neither in nor out
        base = self.answered + self.abandoned + self.exited - self.abandoned_short
        return None if base <= 0 else round(100.0 * self.answered_in_sl / base, 2)

    @property
    def asa(self) -> float | None:
        return None if not self.answered else round(self.wait_answered / self.answered, 3)

    @property
    def avg_wait(self) -> float | None:
        return None if not self.waits else round(self.wait_total / self.waits, 3)

    @property
    def avg_abandon_wait(self) -> float | None:
        return None if not self.abandoned else round(self.abandon_wait / self.abandoned, 3)

    @property
    def aht(self) -> float | None:
        handled = self.answered - self.talk_unknown
        if handled <= 0:
            return None
        return round((self.talk + self.hold_extra + self.wrapup) / handled, 3)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__slots__}
        for k in ("wait_answered", "wait_total", "longest_wait", "abandon_wait", "talk", "hold",
                  "hold_extra", "wrapup"):
            out[k] = round(out[k], 3)
        out.update(service_level=self.service_level, asa=self.asa, avg_wait=self.avg_wait,
                   avg_abandon_wait=self.avg_abandon_wait, aht=self.aht)
        return out


@dataclass(slots=True)
class AgentInterval:
    agent: str
    start: float
    seconds: dict[str, float] = field(default_factory=dict)
    answered: int = 0

    @property
    def staffed(self) -> float:
        return sum(self.seconds.get(s, 0.0) for s in STAFFED_STATES)

    @property
    def busy(self) -> float:
        return sum(self.seconds.get(s, 0.0) for s in BUSY_STATES)

    @property
    def occupancy(self) -> float | None:
        staffed = self.staffed
        return None if staffed <= 0 else round(100.0 * self.busy / staffed, 2)

    def to_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "start": self.start, "answered": self.answered,
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
                "staffed": round(self.staffed, 3), "busy": round(self.busy, 3),
                "occupancy": self.occupancy}


@dataclass(slots=True)
class _Entry:
    queue: str
    joined: float
    start: float  # interval


class StatsCollector:
    """Feed it domain events in time order; read :attr:`queues` and :attr:`agents`."""

    def __init__(self, sl_threshold: dict[str, float] | None = None,
                 default_threshold: float = 20.0, interval: float = INTERVAL,
                 window: tuple[float, float] | None = None, max_span: float = MAX_SPAN) -> None:
        """``window`` = ``(start, end)``: only intervals overlapping it are kept."""
        self.sl_threshold = sl_threshold or {}
        self.default_threshold = default_threshold
        self.interval = interval
        self.window = window or (-math.inf, math.inf)
        self.max_span = max_span
        self.ignored = 0  # events with a time that is not finite
        self.queues: dict[tuple[str, float], QueueInterval] = {}
        self.agents: dict[tuple[str, float], AgentInterval] = {}
        self._entries: dict[str, _Entry] = {}  # call id -> current queue entry
        #: (call id, agent) -> (queue, interval) of the entry that agent answered
        self._handled: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._unknown: set[tuple[str, str]] = set()  # answered calls with an unknown end
        self._agents_of: dict[str, list[str]] = {}  # call id -> agents who answered it
        self._agent_state: dict[str, tuple[str, float, str]] = {}  # agent -> state, since, call
        self._wrapup_until: dict[str, float | None] = {}  # agent -> end of its wrap-up time

    def threshold(self, queue: str) -> float:
        return self.sl_threshold.get(queue, self.default_threshold)

    def _row(self, queue: str, start: float) -> QueueInterval:
        row = self.queues.get((queue, start))
        if row is None:
            row = self.queues[(queue, start)] = QueueInterval(queue, start)
        return row

    def _inside(self, start: float) -> bool:
        """The interval starting at ``start`` overlaps the window."""
        lo, hi = self.window
        return start < hi and start + self.interval > lo

    def _clip(self, t0: float, t1: float) -> tuple[float, float]:
        """``[t0, t1)`` cut to the window and to the last ``max_span`` seconds."""
        lo, hi = self.window
        return max(t0, lo, t1 - self.max_span), min(t1, hi)

    def feed(self, e: d.DomainEvent) -> None:
        """Account one domain event."""
        if not math.isfinite(e.ts):
            self.ignored += 1
            return
        if isinstance(e, d.CallQueued):
            start = interval_start(e.ts, self.interval)
            if not self._inside(start):
                return
            self._entries[e.call_id] = _Entry(e.queue, e.ts, start)
            self._row(e.queue, start).offered += 1
        elif isinstance(e, d.CallAnswered):
            ent = self._entries.pop(e.call_id, None)
            if ent is None:
                return
            row = self._row(ent.queue, ent.start)
            row.answered += 1
            row.wait_answered += e.wait
            self._wait(row, e.wait)
            if e.wait <= self.threshold(ent.queue):
                row.answered_in_sl += 1
            self._handled[(e.call_id, e.agent)] = (ent.queue, ent.start)
            self._agents_of.setdefault(e.call_id, []).append(e.agent)
            while len(self._handled) > 10000:
                old, _ = self._handled.popitem(last=False)
                self._unknown.discard(old)
                self._agents_of.pop(old[0], None)
        elif isinstance(e, d.CallAbandoned):
            ent = self._entries.pop(e.call_id, None)
            if ent is None:
                return
            row = self._row(ent.queue, ent.start)
            row.abandoned += 1
            row.abandon_wait += e.wait
            self._wait(row, e.wait)
            if e.wait < self.threshold(ent.queue):
                row.abandoned_short += 1
        elif isinstance(e, d.QueueExited):
            ent = self._entries.pop(e.call_id, None)
            if ent is None:
                return
            row = self._row(ent.queue, ent.start)
            row.exited += 1
            self._wait(row, e.wait)
        elif isinstance(e, d.CallEnded):
            self._call_ended(e)
        elif isinstance(e, d.AgentStateChanged):
            self._agent(e)

    def feed_all(self, events: list[d.DomainEvent]) -> None:
        for e in events:
            self.feed(e)

    @staticmethod
    def _wait(row: QueueInterval, wait: float) -> None:
        row.wait_total += wait
        row.waits += 1
        row.longest_wait = max(row.longest_wait, wait)

    def _call_ended(self, e: d.CallEnded) -> None:
        ent = self._entries.pop(e.call_id, None)
        if ent is not None:  # still waiting when the call ended: the caller left
            row = self._row(ent.queue, ent.start)
            row.abandoned += 1
            wait = max(0.0, e.ts - ent.joined)
            row.abandon_wait += wait
            self._wait(row, wait)
            if wait < self.threshold(ent.queue):
                row.abandoned_short += 1
        rec = e.record
        for agent in dict.fromkeys(self._agents_of.get(e.call_id, ())):
            key = self._handled.get((e.call_id, agent))
            if key is None:
                continue
            row = self._row(*key)
            if e.talk_seconds is None:
                row.talk_unknown += 1
                self._unknown.add((e.call_id, agent))
                continue
            legs = [s for s in rec.segments if s.agent == agent and s.queue == key[0]]
            row.talk += sum(s.seconds for s in legs)
            for h in rec.holds:
                if h.get("agent") != agent or h.get("end") is None:
                    continue
                start, end = float(h["start"]), float(h["end"])
                inside = sum(max(0.0, min(end, s.end) - max(start, s.start))
                             for s in legs if s.end is not None)
                row.hold += end - start
                row.hold_extra += max(0.0, end - start - inside)

    def _wrapup(self, agent: str, call_id: str, since: float, end: float) -> None:
        """Wrap-up of ``agent`` after ``call_id``, for the queue it answered that call from
        (bounded by the end of Asterisk's wrap-up time the model announced)."""
        key = self._handled.get((call_id, agent))
        if key is None or (call_id, agent) in self._unknown:
            return
        until = self._wrapup_until.get(agent)
        if until is not None:
            end = min(end, until)
        t0, t1 = self._clip(since, end)  # never past the window, never an unbounded span
        self._row(*key).wrapup += max(0.0, t1 - t0)

    def _agent(self, e: d.AgentStateChanged) -> None:
        prev = self._agent_state.get(e.agent)
        if prev is not None:
            state, since, call_id = prev
            self._span(e.agent, state, since, e.ts)
            if state == "wrapup":
                self._wrapup(e.agent, call_id, since, e.ts)
        if e.state == "on_call" and (prev is None or prev[0] not in ("on_call", "on_hold")):
            start = interval_start(e.ts, self.interval)
            if self._inside(start):
                self._agent_row(e.agent, start).answered += 1
        self._agent_state[e.agent] = (e.state, e.ts, e.call_id)
        self._wrapup_until[e.agent] = e.until if e.state == "wrapup" else None

    def _agent_row(self, agent: str, start: float) -> AgentInterval:
        row = self.agents.get((agent, start))
        if row is None:
            row = self.agents[(agent, start)] = AgentInterval(agent, start)
        return row

    def _span(self, agent: str, state: str, t0: float, t1: float) -> None:
        t0, t1 = self._clip(t0, t1)  # at most max_span / interval + 1 rounds
        while t0 < t1:
            start = interval_start(t0, self.interval)
            end = min(t1, start + self.interval)
            row = self._agent_row(agent, start)
            row.seconds[state] = row.seconds.get(state, 0.0) + (end - t0)
            t0 = end

    def close(self, now: float) -> None:
        """Account the agents' current states up to ``now`` (end of a report)."""
        if not math.isfinite(now):
            return
        for agent, (state, since, call_id) in list(self._agent_state.items()):
            if now > since:
                self._span(agent, state, since, now)
                if state == "wrapup":
                    self._wrapup(agent, call_id, since, now)
                self._agent_state[agent] = (state, now, call_id)

    def queue_rows(self) -> list[dict[str, Any]]:
        return [r.to_dict() for _, r in sorted(self.queues.items())]

    def agent_rows(self) -> list[dict[str, Any]]:
        return [r.to_dict() for _, r in sorted(self.agents.items())]

    def totals(self, queue: str | None = None) -> QueueInterval:
        """All intervals of one queue (or every queue) summed."""
        tot = QueueInterval(queue or "*", 0.0)
        for (q, _), r in self.queues.items():
            if queue is not None and q != queue:
                continue
            for k in ("offered", "answered", "abandoned", "exited", "answered_in_sl",
                      "abandoned_short", "wait_answered", "wait_total", "waits", "abandon_wait",
                      "talk", "hold", "hold_extra", "wrapup", "talk_unknown"):
                setattr(tot, k, getattr(tot, k) + getattr(r, k))
            tot.longest_wait = max(tot.longest_wait, r.longest_wait)
        return tot
