"""Dial pacing: how many calls to place now. Pure - no I/O, the time is a parameter.

The campaign runner and ``bench/dialer.py`` both call :func:`decide` once per tick with a
:class:`PacerInput` (what the agents and the calls in flight are doing) and feed outcomes
back into :class:`PacerStats`.

* **preview** never dials by itself (the agent does).
* **progressive** places one call per free agent not already covered by a ringing call:
  a live answer always has an agent, so it cannot abandon (short of the agent leaving).
* **predictive** estimates, for the horizon *H* = mean time a call takes to be answered,
  how many agents will be free (idle now, wrap-up ending within *H*, talk ending within
  *H* under an exponential talk-time model) and how many answers the calls already
  ringing will bring (each with its answer probability given how long it has rung). It
  then places the largest number *N* of new calls such that the *N*-th call, if a live
  person answers it, still finds an agent with probability >= 1 - *r* (normal
  approximation of answers minus free agents, closed form). *r* starts at the target
  rate and is tuned by a stochastic-approximation controller on every live answer (down
  on an abandon, slightly up otherwise), so the long-run abandonment converges on the
  target whatever the model gets wrong.
* **Compliance guard**: abandonment is kept <= ``max_abandon`` (3 %) of live-answered
  calls over the campaign, over each successive ``period`` (FTC: 30 days) and over a
  rolling ``window`` (Ofcom: 24 h). The *budget* ``max_abandon * live - abandoned`` of
  each scope, less the abandons expected from calls already ringing, must stay >= 1 for
  the pacer to dial beyond progressive; otherwise it dials progressively until enough
  calls were connected.
* **notify** (no agents) keeps ``max_channels`` calls up.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

_NORMAL = NormalDist()
MODES = ("preview", "progressive", "predictive", "notify")


@dataclass(slots=True)
class PacerSettings:
    """Tunables of one campaign's pacing (seconds, fractions)."""

    mode: str = "progressive"
    max_abandon: float = 0.03  # legal limit, fraction of live-answered calls
    target: float = 0.0  # controller set-point; 0 = 80 % of max_abandon
    ring_timeout: float = 20.0  # Originate Timeout (>= 15 s)
    max_channels: int = 30  # calls up at once (trunk capacity)
    max_ratio: float = 3.0  # calls ringing per staffed agent, at most
    window: float = 86400.0  # rolling abandonment window (Ofcom: 24 h)
    period: float = 30 * 86400.0  # successive measurement periods (FTC: 30 days)
    wrapup: float = 0.0  # the queue's wrap-up time
    setup: float = 1.0  # from the decision to the call ringing (tick + Originate)
    gain_step: float = 0.01  # controller step (log scale) per live answer
    prior_live_rate: float = 0.3  # before the campaign has its own figures ...
    prior_weight: float = 30.0  # ... worth this many attempts
    prior_ring: float = 8.0  # seconds a live answer takes
    prior_talk: float = 120.0  # talk seconds
    memory: float = 500.0  # attempts the live-rate estimate remembers (exponential)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"dial mode must be one of {', '.join(MODES)}")
        if not 0 < self.max_abandon <= 0.03:
            raise ValueError("max_abandon must be in (0, 0.03]")
        if self.ring_timeout < 15:
            raise ValueError("ring_timeout must be >= 15 s (FTC safe harbour)")
        if not self.target:
            self.target = 0.8 * self.max_abandon
        self.target = min(self.target, self.max_abandon)


@dataclass(frozen=True, slots=True)
class PacerInput:
    """What the campaign's agents and calls are doing at ``now``."""

    now: float
    idle: int  # agents available (logged in to the campaign queue, not paused)
    talking: int = 0  # agents ringing, on a call or on hold
    wrapping: tuple[float, ...] = ()  # seconds of wrap-up left, per agent in wrap-up
    ringing: tuple[float, ...] = ()  # seconds each unanswered call has been ringing
    waiting: int = 0  # answered contacts waiting for an agent (at most 2 s)
    channels: int = 0  # the campaign's calls up (ringing, waiting, talking)


@dataclass(frozen=True, slots=True)
class Decision:
    """How many calls to place now, and why."""

    calls: int
    how: str  # preview progressive predictive guard notify
    live_rate: float
    agents: float = 0.0  # agents expected free within the horizon
    answers: float = 0.0  # answers expected from calls in flight (+ waiting)
    threshold: float = 0.0  # allowed probability that a new call's answer finds no agent
    budget: float = 0.0  # abandons still allowed in the tightest scope

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "how": self.how, "live_rate": round(self.live_rate, 4),
                "agents": round(self.agents, 2), "answers": round(self.answers, 2),
                "threshold": round(self.threshold, 5), "budget": round(self.budget, 2)}


class RollingCount:
    """Live and abandoned calls over the last ``span`` seconds (``bucket``-second buckets)."""

    def __init__(self, span: float, bucket: float = 60.0) -> None:
        self.span = span
        self.bucket = bucket
        self.live = 0
        self.abandoned = 0
        self._q: deque[list[float]] = deque()

    def add(self, ts: float, live: int = 1, abandoned: int = 0) -> None:
        key = ts - ts % self.bucket
        if self._q and self._q[-1][0] >= key:
            self._q[-1][1] += live
            self._q[-1][2] += abandoned
        else:
            self._q.append([key, live, abandoned])
        self.live += live
        self.abandoned += abandoned

    def expire(self, now: float) -> None:
        while self._q and self._q[0][0] + self.bucket <= now - self.span:
            _, live, ab = self._q.popleft()
            self.live -= int(live)
            self.abandoned -= int(ab)


def rate(abandoned: int, live: int) -> float:
    """Abandoned / live-answered, 0.0 when nothing was answered."""
    return abandoned / live if live else 0.0


class PacerStats:
    """What the campaign has measured: live-answer rate, ring and talk times, abandonment
    per scope, and the controller's gain. Mutable, but without I/O or clock."""

    def __init__(self, settings: PacerSettings, now: float) -> None:
        self.s = settings
        self._w_att = settings.prior_weight
        self._w_live = settings.prior_weight * settings.prior_live_rate
        self.ring_mean = settings.prior_ring
        self.talk_mean = settings.prior_talk
        self.log_gain = 0.0
        self.attempts = 0
        self.live_total = 0
        self.abandoned_total = 0
        self.period_start = now
        self.period_live = 0
        self.period_abandoned = 0
        self.window = RollingCount(settings.window)

    # ------------------------------------------------------------------ feeding

    def record_attempt(self, live: bool, ring_seconds: float | None = None) -> None:
        """An attempt's outcome is known (``live``: a person answered)."""
        self.attempts += 1
        keep = 1.0 - 1.0 / self.s.memory
        self._w_att = self._w_att * keep + 1.0
        self._w_live = self._w_live * keep + (1.0 if live else 0.0)
        if live and ring_seconds is not None and ring_seconds >= 0:
            self.ring_mean += 0.05 * (min(ring_seconds, self.s.ring_timeout) - self.ring_mean)

    def record_talk(self, seconds: float) -> None:
        """Talk time of a call connected to an agent."""
        if seconds >= 0:
            self.talk_mean += 0.05 * (seconds - self.talk_mean)

    def record_live(self, abandoned: bool, ts: float) -> None:
        """A live person answered at ``ts``; ``abandoned``: no agent within 2 s."""
        self._roll_period(ts)
        ab = 1 if abandoned else 0
        self.live_total += 1
        self.abandoned_total += ab
        self.period_live += 1
        self.period_abandoned += ab
        self.window.add(ts, 1, ab)
        tgt = self.s.target
        self.log_gain += self.s.gain_step * (tgt - ab) / tgt
        self.log_gain = min(3.0, max(-6.0, self.log_gain))

    def seed(self, *, live: int, abandoned: int, period_start: float, period_live: int,
             period_abandoned: int, window: Iterable[tuple[float, int, int]],
             attempts: int = 0, lives: int = 0, ring_mean: float | None = None,
             talk_mean: float | None = None) -> None:
        """Restore what was measured before a restart (from the attempts table)."""
        self.live_total, self.abandoned_total = live, abandoned
        self.period_start = period_start
        self.period_live, self.period_abandoned = period_live, period_abandoned
        self.window = RollingCount(self.s.window)
        for ts, lv, ab in sorted(window):
            self.window.add(ts, lv, ab)
        if attempts:
            w = min(float(attempts), self.s.memory)
            self._w_att = self.s.prior_weight + w
            self._w_live = self.s.prior_weight * self.s.prior_live_rate + w * lives / attempts
        self.attempts = attempts
        if ring_mean is not None:
            self.ring_mean = ring_mean
        if talk_mean is not None:
            self.talk_mean = talk_mean
        # restart conservatively: the controller earns its gain back with clean calls
        self.log_gain = min(self.log_gain, 0.0)

    def _roll_period(self, now: float) -> None:
        if now - self.period_start >= self.s.period:
            n = math.floor((now - self.period_start) / self.s.period)
            self.period_start += n * self.s.period
            self.period_live = self.period_abandoned = 0

    # ------------------------------------------------------------------ reading

    def live_rate(self) -> float:
        return self._w_live / self._w_att if self._w_att > 0 else self.s.prior_live_rate

    def threshold(self) -> float:
        return min(0.25, max(1e-4, self.s.target * math.exp(self.log_gain)))

    def budget(self, now: float) -> float:
        """Abandons still allowed before the tightest scope would exceed the limit."""
        self.window.expire(now)
        self._roll_period(now)
        lim = self.s.max_abandon
        return min(lim * self.live_total - self.abandoned_total,
                   lim * self.period_live - self.period_abandoned,
                   lim * self.window.live - self.window.abandoned)

    def rates(self, now: float) -> dict[str, Any]:
        """Abandonment per scope, in percent, with the counts (for status displays)."""
        self.window.expire(now)
        self._roll_period(now)
        return {
            "limit_pct": round(self.s.max_abandon * 100, 2),
            "campaign_pct": round(100 * rate(self.abandoned_total, self.live_total), 2),
            "period_pct": round(100 * rate(self.period_abandoned, self.period_live), 2),
            "window_pct": round(100 * rate(self.window.abandoned, self.window.live), 2),
            "window_hours": round(self.s.window / 3600, 1),
            "live": self.live_total, "abandoned": self.abandoned_total,
            "period_start": self.period_start,
            "window_live": self.window.live, "window_abandoned": self.window.abandoned,
        }

    def to_dict(self, now: float) -> dict[str, Any]:
        return {"live_rate": round(self.live_rate(), 4), "ring_mean": round(self.ring_mean, 2),
                "talk_mean": round(self.talk_mean, 1), "gain": round(math.exp(self.log_gain), 3),
                "threshold": round(self.threshold(), 5), "attempts": self.attempts,
                "abandonment": self.rates(now)}


# ------------------------------------------------------------------ the decision


def _max_calls(a: float, s: float, p: float, z: float) -> int:
    """Largest N such that the N-th new call's answer finds an agent with the required
    confidence: ``a - (N-1) p >= z sqrt(s + (N-1) p (1-p))`` (0 when even N=1 fails)."""
    if p <= 0.0 or a < z * math.sqrt(s):
        return 0
    v = p * (1.0 - p)
    b = 2.0 * a * p + z * z * v
    c = a * a - z * z * s
    disc = max(0.0, b * b - 4.0 * p * p * c)
    k = (b - math.sqrt(disc)) / (2.0 * p * p)
    return math.floor(k + 1e-9) + 1


def answer_probability(p: float, age: float, ring_mean: float, ring_timeout: float) -> float:
    """Chance that a call ringing for ``age`` seconds will still be answered by a person:
    answers arrive exponentially with mean ``ring_mean``; the others ring to the timeout."""
    if age >= ring_timeout:
        return 0.0
    a = p * math.exp(-age / max(ring_mean, 0.5))
    return a / (a + (1.0 - p))


def decide(settings: PacerSettings, stats: PacerStats, inp: PacerInput) -> Decision:
    """How many calls to place at ``inp.now``."""
    s = settings
    p = stats.live_rate()
    free_channels = max(0, s.max_channels - inp.channels)
    if s.mode == "preview":
        return Decision(0, "preview", p)
    if s.mode == "notify":
        return Decision(free_channels, "notify", p)
    floor = max(0, inp.idle - len(inp.ringing) - inp.waiting)
    staffed = inp.idle + inp.talking + len(inp.wrapping)
    cap = max(0, math.ceil(s.max_ratio * staffed) - len(inp.ringing))
    if s.mode == "progressive":
        return Decision(min(floor, free_channels), "progressive", p)

    horizon = stats.ring_mean + s.setup
    q = 0.0
    if inp.talking:
        q = 1.0 - math.exp(-max(0.0, horizon - s.wrapup) / max(stats.talk_mean, 1.0))
    agents = inp.idle + sum(1 for w in inp.wrapping if w <= horizon) + inp.talking * q
    var = inp.talking * q * (1.0 - q)
    answers = float(inp.waiting)
    for age in inp.ringing:
        pr = answer_probability(p, age, stats.ring_mean, s.ring_timeout)
        answers += pr
        var += pr * (1.0 - pr)
    r = stats.threshold()
    budget = stats.budget(inp.now) - r * (answers - inp.waiting)
    if budget < 1.0:
        return Decision(min(floor, free_channels), "guard", p, agents, answers, r, budget)
    z = _NORMAL.inv_cdf(1.0 - r)
    n = max(_max_calls(agents - answers - 0.5, var, p, z), floor)
    return Decision(min(n, free_channels, cap), "predictive", p, agents, answers, r, budget)
