"""Simulated time: Asterisk's wall clock, optionally running faster than real time.

Every timestamp the simulator emits and every delay it waits for is in *simulated* seconds.
With ``scale=20`` a 20-second queue wait takes one real second, while events still say the
caller waited 20 seconds (HoldTime, Timestamp, QueueCallerAbandon ...).
"""

from __future__ import annotations

import asyncio
import time


class SimClock:
    """Epoch time that advances ``scale`` times faster than the event loop's clock."""

    def __init__(self, scale: float = 1.0, start: float | None = None) -> None:
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self.scale = scale
        self._epoch0 = time.time() if start is None else start
        self._mono0 = time.monotonic()
        self._last = 0.0

    def now(self) -> float:
        """Simulated epoch seconds; never goes backwards, strictly increases per call."""
        t = self._epoch0 + (time.monotonic() - self._mono0) * self.scale
        if t <= self._last:
            t = self._last + 0.000001
        self._last = t
        return t

    def real(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of simulated time take."""
        return max(0.0, seconds) / self.scale

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of simulated time."""
        await asyncio.sleep(self.real(seconds))
