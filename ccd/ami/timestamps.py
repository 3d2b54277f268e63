"""Asterisk's event times, bounded before the model sees them.

The model takes time only from the events' ``Timestamp`` (epoch seconds, Asterisk's clock,
``timestampevents=yes``). A frame from the network may say anything: ``0``, ``-5``,
``1e300``, ``nan``. :func:`ccd.ami.events.decode` already refuses values that are not finite,
not positive or beyond the year 2100; :class:`LinkClock` refuses the plausible-looking ones
that are far from the link's recent time, so one absurd frame cannot stretch a wait, a talk
time, a wrap-up or a statistics interval to years.

The link's time is the receive time of the frame on ccd's clock plus the offset between
Asterisk's clock and ccd's measured on the last accepted timestamp (the two hosts need not
agree). A timestamp within :data:`WINDOW` seconds of it is accepted and updates the offset;
any other is replaced by the link's time and counted. At first contact Asterisk's clock may
be up to :data:`MAX_SKEW` away from ccd's. When :data:`REANCHOR` consecutive refused
timestamps agree with each other (Asterisk's clock was stepped, or the first timestamp seen
was the bogus one), the link follows them. Without a receive clock (a replayed file) the
reference is the last accepted timestamp: small steps back and gaps forward up to
:data:`MAX_GAP` are accepted.
"""

from __future__ import annotations

import logging

from ccd.ami.events import MAX_EPOCH

log = logging.getLogger(__name__)

WINDOW = 60.0  #: seconds a timestamp may be away from the link's recent time
MAX_SKEW = 86400.0  #: seconds Asterisk's clock may be away from ccd's
MAX_GAP = 86400.0  #: without a receive clock: the largest gap forward between two events
REANCHOR = 5  #: consecutive refused timestamps agreeing with each other move the link's time


class LinkClock:
    """Keeps the times of one AMI stream plausible; see the module docstring."""

    __slots__ = ("_cand", "_run", "last", "offset", "reanchored", "replaced")

    def __init__(self) -> None:
        self.offset: float | None = None  # Asterisk's clock minus ccd's receive clock
        self.last = 0.0  # last accepted timestamp
        self.replaced = 0  # timestamps replaced by the link's time
        self.reanchored = 0  # times the link followed a jump of Asterisk's clock
        self._cand = 0.0
        self._run = 0

    def expected(self, now: float) -> float:
        """The link's time for a frame received at ``now`` (0: no receive clock)."""
        if now > 0:
            return now + self.offset if self.offset is not None else now
        return self.last

    def check(self, ts: float, now: float) -> float:
        """``ts`` if plausible for a frame received at ``now``, else the link's time."""
        if ts == ts and 0.0 < ts < MAX_EPOCH:  # not NaN, in range
            if now > 0:
                o = ts - now
                off = self.offset
                dev, limit = (o, MAX_SKEW) if off is None else (o - off, WINDOW)
                if -limit <= dev <= limit:
                    self.offset, self.last, self._run = o, ts, 0
                    return ts
                if -MAX_SKEW <= o <= MAX_SKEW and self._agrees(o):
                    self._follow(ts, off, o)
                    self.offset, self.last = o, ts
                    return ts
            else:
                last = self.last
                if last - WINDOW <= ts <= last + MAX_GAP or last <= 0:
                    self.last = ts
                    if self._run:
                        self._run = 0
                    return ts
                if self._agrees(ts):
                    self._follow(ts, last, ts)
                    self.last = ts
                    return ts
        self.bad(ts)
        return self.expected(now)

    def bad(self, ts: float | str) -> None:
        """Count (and now and then log) a timestamp that was not used."""
        self.replaced += 1
        n = self.replaced
        if n == 1 or n % 1000 == 0:
            log.warning("AMI event Timestamp %r is not plausible (%d so far); using the "
                        "link's time instead", ts, n)

    def _agrees(self, value: float) -> bool:
        if self._run and abs(value - self._cand) <= WINDOW:
            self._run += 1
        else:
            self._run = 1
        self._cand = value
        return self._run >= REANCHOR

    def _follow(self, ts: float, old: float | None, new: float) -> None:
        self._run = 0
        self.reanchored += 1
        log.warning("Asterisk's event times jumped (%s -> %.3f, at Timestamp %.6f); following "
                    "them after %d consecutive events", old, new, ts, REANCHOR)
