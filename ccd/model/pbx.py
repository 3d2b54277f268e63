"""Did Asterisk boot, or did ccd just log in again? (pure)

Asterisk sends ``FullyBooted`` to every session that logs in once it is fully booted (no
``Timestamp``, even with ``timestampevents=yes``) and to every connected session when a
boot completes (with ``Timestamp``). Both carry ``Uptime``, whole seconds since Asterisk
started. So each reconnect brings a ``FullyBooted``; it reports a boot only if Asterisk
started again since the last one: its uptime went down, its start (event time - uptime)
moved later, or a ``Shutdown`` came in between. The first one ccd sees is a boot when
the uptime is small.
"""

from __future__ import annotations

from dataclasses import dataclass

#: a first FullyBooted with at most this uptime (seconds) reports a boot
RECENT_BOOT = 60.0
#: how far two estimates of one start may differ: Uptime is truncated to whole seconds,
#: and the time of a FullyBooted without Timestamp is its receive time
START_TOLERANCE = 5.0


@dataclass(slots=True)
class BootTracker:
    """What ccd knows of Asterisk's current run."""

    started: float | None = None  # estimated start of the running Asterisk (epoch seconds)
    uptime: int = -1  # Uptime of the last FullyBooted
    shutdown: bool = False  # a Shutdown came after the last FullyBooted

    def fully_booted(self, ts: float, uptime: int) -> bool:
        """Account a ``FullyBooted`` at ``ts``; True if it reports a boot not seen yet."""
        started = ts - max(0, uptime)
        if self.started is None:
            boot = uptime <= RECENT_BOOT
        else:
            boot = (self.shutdown or uptime < self.uptime
                    or started > self.started + START_TOLERANCE)
        if boot or self.started is None:
            self.started = started
        self.uptime = uptime
        self.shutdown = False
        return boot

    def shutting_down(self) -> None:
        """Account a ``Shutdown``: the next FullyBooted is a boot."""
        self.shutdown = True
