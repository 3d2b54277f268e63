"""Progressive vs predictive pacing: a seeded discrete-event simulation of a dialer shift.

Both modes dial the *same* contact stream (the i-th number dialled has the same outcome,
ring, talk and wrap-up times in both runs) and use the pure pacer the campaign runner uses
(:mod:`ccd.campaigns.pacer`), called once per second as the runner's tick does.

The world, per scenario (agents x live-answer rate):

* dialling: 0.5-1.5 s of call set-up; a live person answers after a lognormal ring time
  (mean 7 s, capped by the 20 s ring timeout); busy lines end in 2-6 s, failures in
  0.5-3 s, the rest ring for the full 20 s (Originate Timeout >= 15 s);
* an answered call goes to any idle agent; with none free it waits at most 2 s for one,
  then it is abandoned (the recorded message is played) - the FTC / Ofcom rule;
* talk time is lognormal (mean 90 s, sd 75 s), wrap-up lognormal (mean 12 s, sd 6 s);
* agents are staffed for the whole shift and never pause.

Occupancy = (talk + wrap-up) / staffed time. Abandonment = abandoned / live-answered.
Usage: ``python bench/dialer.py [--hours 4] [--seed 7] [--quick]``; the last line is
``key=value`` pairs.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import time
from dataclasses import dataclass, field

from ccd.campaigns.pacer import PacerInput, PacerSettings, PacerStats, decide

RING_TIMEOUT = 20.0
ABANDON_AFTER = 2.0
TICK = 1.0
BUSY_SHARE, FAILED_SHARE = 0.08, 0.05


def lognormal(rng: random.Random, mean: float, sd: float) -> float:
    s2 = math.log(1.0 + (sd / mean) ** 2)
    return rng.lognormvariate(math.log(mean) - s2 / 2.0, math.sqrt(s2))


@dataclass(frozen=True, slots=True)
class Contact:
    """What happens when this number is dialled."""

    live: bool
    setup: float
    ring: float  # until answer (live) or until the line ends (others)
    talk: float
    wrap: float


class ContactStream:
    """The i-th dialled contact, identical whatever the pacing mode."""

    def __init__(self, seed: int, live_rate: float) -> None:
        self.seed = seed
        self.live_rate = live_rate
        self._made: list[Contact] = []

    def __getitem__(self, i: int) -> Contact:
        while len(self._made) <= i:
            self._made.append(self._make(len(self._made)))
        return self._made[i]

    def _make(self, i: int) -> Contact:
        rng = random.Random(self.seed * 1_000_003 + i)
        u = rng.random()
        setup = rng.uniform(0.5, 1.5)
        talk, wrap = lognormal(rng, 90.0, 75.0), lognormal(rng, 12.0, 6.0)
        if u < self.live_rate:
            return Contact(True, setup, min(lognormal(rng, 7.0, 3.5), RING_TIMEOUT - 0.1),
                           talk, wrap)
        if u < self.live_rate + BUSY_SHARE:
            return Contact(False, setup, rng.uniform(2.0, 6.0), 0.0, 0.0)
        if u < self.live_rate + BUSY_SHARE + FAILED_SHARE:
            return Contact(False, setup, rng.uniform(0.5, 3.0), 0.0, 0.0)
        return Contact(False, setup, RING_TIMEOUT, 0.0, 0.0)


@dataclass
class Result:
    mode: str
    agents: int
    live_rate: float
    hours: float
    dials: int = 0
    live: int = 0
    abandoned: int = 0
    connected: int = 0
    busy_seconds: float = 0.0
    max_ringing: int = 0
    guard_ticks: int = 0
    decisions: list[int] = field(default_factory=list)

    @property
    def staffed(self) -> float:
        return self.agents * self.hours * 3600.0

    @property
    def occupancy(self) -> float:
        return self.busy_seconds / self.staffed

    @property
    def abandon_pct(self) -> float:
        return 100.0 * self.abandoned / self.live if self.live else 0.0

    @property
    def per_agent_hour(self) -> float:
        return self.connected / (self.agents * self.hours)


def simulate(mode: str, agents: int, stream: ContactStream, hours: float) -> Result:
    """One shift of ``agents`` agents dialling ``stream`` with the given pacing mode."""
    end = hours * 3600.0
    settings = PacerSettings(mode=mode, ring_timeout=RING_TIMEOUT, max_channels=10 * agents,
                             wrapup=12.0)
    stats = PacerStats(settings, 0.0)
    res = Result(mode, agents, stream.live_rate, hours)
    events: list[tuple[float, int, str, int]] = []
    seq = 0
    idle = agents
    talking = 0
    wrap_end: dict[int, float] = {}  # agent slot -> wrap-up end
    ringing: dict[int, float] = {}  # call -> dial time
    waiting: dict[int, float] = {}  # call -> answer time (in order)
    next_contact = 0
    slots = iter(range(10**9))

    def push(t: float, kind: str, ident: int) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, ident))

    def connect(call: int, now: float) -> None:
        nonlocal idle, talking
        c = stream[call]
        idle -= 1
        talking += 1
        res.connected += 1
        stats.record_live(False, now)
        talk_end = min(now + c.talk, end)
        res.busy_seconds += talk_end - now
        push(now + c.talk, "talk_end", call)

    push(0.0, "tick", 0)
    while events:
        now, _, kind, ident = heapq.heappop(events)
        if now >= end:
            break
        if kind == "tick":
            inp = PacerInput(
                now=now, idle=idle, talking=talking,
                wrapping=tuple(w - now for w in wrap_end.values()),
                ringing=tuple(now - t for t in ringing.values()),
                waiting=len(waiting), channels=len(ringing) + len(waiting) + talking)
            d = decide(settings, stats, inp)
            res.guard_ticks += d.how == "guard"
            for _ in range(d.calls):
                call = next_contact
                next_contact += 1
                c = stream[call]
                ringing[call] = now
                res.dials += 1
                push(now + c.setup + c.ring, "answer" if c.live else "fail", call)
            res.max_ringing = max(res.max_ringing, len(ringing))
            push(now + TICK, "tick", 0)
        elif kind == "fail":
            ringing.pop(ident, None)
            stats.record_attempt(False)
        elif kind == "answer":
            t0 = ringing.pop(ident)
            stats.record_attempt(True, now - t0)
            res.live += 1
            if idle > 0:
                connect(ident, now)
            else:
                waiting[ident] = now
                push(now + ABANDON_AFTER, "give_up", ident)
        elif kind == "give_up":
            if waiting.pop(ident, None) is not None:
                res.abandoned += 1
                stats.record_live(True, now)
        elif kind == "talk_end":
            c = stream[ident]
            stats.record_talk(c.talk)
            talking -= 1
            slot = next(slots)
            wrap_end[slot] = now + c.wrap
            res.busy_seconds += min(now + c.wrap, end) - now
            push(now + c.wrap, "free", slot)
        elif kind == "free":
            del wrap_end[ident]
            idle += 1
            if waiting:
                call = next(iter(waiting))
                del waiting[call]
                connect(call, now)
    return res


SCENARIOS = [(a, r) for a in (20, 50, 100) for r in (0.25, 0.32, 0.40)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=4.0, help="shift length (default 4)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="1-hour shifts")
    args = ap.parse_args()
    hours = 1.0 if args.quick else args.hours
    t0 = time.perf_counter()
    totals = {m: [0.0, 0.0, 0, 0, 0] for m in ("progressive", "predictive")}
    worst = 0.0
    print(f"{'agents':>6} {'live':>5} | {'prog occ':>8} {'pred occ':>8} {'ratio':>5} | "
          f"{'prog c/ah':>9} {'pred c/ah':>9} | {'abandon%':>8} {'guard%':>6}")
    for i, (agents, live_rate) in enumerate(SCENARIOS):
        stream = ContactStream(args.seed * 100 + i, live_rate)
        prog = simulate("progressive", agents, stream, hours)
        pred = simulate("predictive", agents, stream, hours)
        for r in (prog, pred):
            t = totals[r.mode]
            t[0] += r.busy_seconds
            t[1] += r.staffed
            t[2] += r.connected
            t[3] += r.live
            t[4] += r.abandoned
        worst = max(worst, pred.abandon_pct)
        print(f"{agents:>6} {live_rate:>5.2f} | {prog.occupancy:>8.1%} {pred.occupancy:>8.1%} "
              f"{pred.occupancy / prog.occupancy:>5.2f} | {prog.per_agent_hour:>9.1f} "
              f"{pred.per_agent_hour:>9.1f} | {pred.abandon_pct:>8.2f} "
              f"{100 * pred.guard_ticks / (hours * 3600):>6.1f}", flush=True)
    prog_occ = totals["progressive"][0] / totals["progressive"][1]
    pred_occ = totals["predictive"][0] / totals["predictive"][1]
    agent_hours = sum(a for a, _ in SCENARIOS) * hours
    ab = totals["predictive"]
    abandon_pct = 100.0 * ab[4] / ab[3] if ab[3] else 0.0
    print(f"occupancy_ratio={pred_occ / prog_occ:.3f} abandon_pct={abandon_pct:.2f} "
          f"abandon_pct_worst={worst:.2f} occupancy_progressive={100 * prog_occ:.1f} "
          f"occupancy_predictive={100 * pred_occ:.1f} "
          f"contacts_per_agent_hour_progressive={totals['progressive'][2] / agent_hours:.2f} "
          f"contacts_per_agent_hour_predictive={totals['predictive'][2] / agent_hours:.2f} "
          f"scenarios={len(SCENARIOS)} hours={hours:g} seed={args.seed} "
          f"seconds={time.perf_counter() - t0:.1f}")


if __name__ == "__main__":
    main()
