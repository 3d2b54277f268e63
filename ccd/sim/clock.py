"""Simulated time: Asterisk's wall clock, optionally running faster than real time.

Every timestamp the simulator emits and every delay it waits for is in *simulated* seconds.
With ``scale=20`` a 20-second queue wait takes one real second, while events still say the
caller waited 20 seconds (HoldTime, Timestamp, QueueCallerAbandon ...).

Simulated time is measured on the clock of the event loop the simulator runs on, so it is
exactly as deterministic as that loop's clock. On an ordinary asyncio loop that is the real
monotonic clock (``ccd sim`` and ``make run``). On a :class:`VirtualTimeLoop` it is virtual
time that stands still while anything is running and jumps to the next timer when the loop
is idle: a 5-second ring timeout then gives ``RingTime: 5000`` however slow or busy the CPU
is, and a test of an hour of traffic takes as long as its computation does.
"""

from __future__ import annotations

import asyncio
import selectors
import socket
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

_T = TypeVar("_T")


def loop_clock() -> Callable[[], float]:
    """The running event loop's clock (``loop.time``), else the monotonic clock."""
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:
        return time.monotonic


class SimClock:
    """Epoch time that advances ``scale`` times faster than the event loop's clock.

    ``start`` is the simulated epoch at construction (default: the wall clock now);
    ``timer`` is the clock it runs on (default: the running loop's, see :func:`loop_clock`).
    """

    def __init__(
        self,
        scale: float = 1.0,
        start: float | None = None,
        timer: Callable[[], float] | None = None,
    ) -> None:
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self.scale = scale
        self._timer = timer or loop_clock()
        self._epoch0 = time.time() if start is None else start
        self._mono0 = self._timer()
        self._last_us = 0

    def now(self) -> float:
        """Simulated epoch seconds in whole microseconds (as Asterisk's timevals); never
        goes backwards, and each call is at least a microsecond after the last, so no two
        event Timestamps are equal."""
        us = round((self._epoch0 + (self._timer() - self._mono0) * self.scale) * 1_000_000)
        if us <= self._last_us:
            us = self._last_us + 1
        self._last_us = us
        return us / 1_000_000

    def real(self, seconds: float) -> float:
        """Event-loop seconds that ``seconds`` of simulated time take."""
        return max(0.0, seconds) / self.scale

    def lead(self) -> float:
        """Simulated seconds by which :meth:`now` runs ahead of the loop's clock (the
        microseconds given to events that happened at one instant of the loop's clock)."""
        raw = self._epoch0 + (self._timer() - self._mono0) * self.scale
        return max(0.0, self._last_us / 1_000_000 - raw)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of simulated time after the last :meth:`now`."""
        await asyncio.sleep(self.real(seconds + self.lead()))


# --------------------------------------------------------------------------- virtual time


class _IdleSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The loop's selector: polls, and where the loop would block, moves virtual time."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._vloop = loop

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        loop = self._vloop
        if loop.outside_work:
            # a thread works for the loop: time runs as real time until it reports back
            t0 = time.monotonic()
            ready = super().select(timeout)
            elapsed = time.monotonic() - t0
            loop.advance(elapsed if timeout is None else min(elapsed, timeout))
            return ready
        if timeout is None:
            # nothing scheduled: only I/O from outside can wake us, and time stands still
            return super().select(None)
        if self._connecting():
            # a TCP handshake is pending in the kernel (a SYN to retransmit when the peer's
            # accept queue was full): it takes real time, so time runs as real time
            t0 = time.monotonic()
            ready = super().select(min(timeout, 0.05))
            loop.advance(min(time.monotonic() - t0, timeout))
            return ready
        # idle: nothing ready, no I/O, nobody working; the next timer is due now
        loop.advance(timeout)
        loop.jumps += 1
        return []

    def _connecting(self) -> bool:
        """Is a socket waiting to become writable still in TCP's SYN-SENT state?"""
        if _TCP_INFO is None:
            return False
        for key in self.get_map().values():
            if key.events & selectors.EVENT_WRITE and _syn_sent(key.fd):
                return True
        return False


_TCP_INFO: int | None = getattr(socket, "TCP_INFO", None)  # Linux
_TCP_SYN_SENT = 2  # tcpi_state, include/net/tcp_states.h


def _syn_sent(fd: int) -> bool:
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return False
    try:
        if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        assert _TCP_INFO is not None
        return sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 8)[0] == _TCP_SYN_SENT
    except OSError:
        return False
    finally:
        sock.detach()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` only moves when the loop has nothing to do.

    While callbacks run, time stands still, however long they take; when no callback is
    ready, no socket is readable or writable and no executor job (``asyncio.to_thread``)
    is outstanding, time jumps to the next timer. Sockets between coroutines of this loop
    (loopback TCP, delivered by the kernel within the sending call) keep working unchanged,
    so a simulator and its clients in one loop run deterministically and as fast as the CPU
    allows. While an executor job runs, time follows the real clock (the thread's work takes
    real time). Unsuitable for talking to other processes (a database, a subprocess): their
    answers take real time, during which virtual time may run far ahead.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._vnow = float(start)
        self.outside_work = 0
        #: how many times time jumped ahead because the loop was idle
        self.jumps = 0
        super().__init__(_IdleSelector(self))

    def time(self) -> float:
        return self._vnow

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` (never backwards)."""
        if seconds > 0:
            self._vnow += seconds

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., _T], *args: Any
    ) -> asyncio.Future[_T]:
        fut = super().run_in_executor(executor, func, *args)
        self.outside_work += 1
        fut.add_done_callback(self._outside_done)
        return fut

    def _outside_done(self, _fut: asyncio.Future[Any]) -> None:
        self.outside_work -= 1
