"""Panel heartbeats: an agent whose panel went silent is paused, and unpaused on return.

The browser sends ``heartbeat`` over Socket.IO every few seconds. Once an agent's panel
has been heard from, a sweep (its own thread, once per second) watches it: silent for
``timeout`` seconds (browser closed, laptop asleep, network gone) while logged in to
queues and not paused -> ``QueuePause`` with reason ``connection-lost``, so no more calls
ring a phone whose agent cannot see them. When heartbeats come back and the agent is still
paused with that reason, it is unpaused; a pause with any other reason is left alone.

Commands go through the daemon's services like every other command; the state shown
changes when Asterisk confirms it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ccd.api import ApiError

log = logging.getLogger(__name__)

REASON = "connection-lost"


def _live(model: Any, interface: str) -> tuple[bool, bool, str]:
    """(logged in, paused, pause reason) of an agent, read on the daemon's loop."""
    a = model.agents.get(interface)
    if a is None or not a.memberships:
        return False, False, ""
    return True, a.paused, a.pause_reason


class HeartbeatMonitor:
    """Tracks the last heartbeat per agent interface and pauses/unpauses accordingly."""

    def __init__(self, bridge: Any, timeout: float = 30.0, interval: float = 1.0,
                 retry: float = 10.0) -> None:
        self.bridge = bridge
        self.timeout = timeout
        self.interval = interval
        self.retry = retry
        self._seen: dict[str, float] = {}  # interface -> monotonic time of the last beat
        self._silent: set[str] = set()  # handled as gone (paused by us, or left alone)
        self._returned: set[str] = set()  # beats again after a silence: check the pause
        self._tried: dict[str, float] = {}  # interface -> last command attempt
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.paused = 0
        self.unpaused = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ccd-web-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def beat(self, interface: str) -> None:
        """A heartbeat (or a new connection) from the panel of the agent at ``interface``."""
        if not interface:
            return
        with self._lock:
            first = interface not in self._seen
            self._seen[interface] = time.monotonic()
            if first or interface in self._silent:
                self._silent.discard(interface)
                self._returned.add(interface)

    def last_seen(self, interface: str) -> float | None:
        with self._lock:
            return self._seen.get(interface)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except Exception:
                log.exception("heartbeat sweep failed")

    def sweep(self, now: float | None = None) -> None:
        """Pause the silent, unpause the returned (called every ``interval`` seconds)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            gone = [i for i, t in self._seen.items()
                    if now - t > self.timeout and i not in self._silent]
            back, self._returned = self._returned, set()
        for iface in gone:
            if now - self._tried.get(iface, -1e9) < self.retry:
                continue
            logged_in, paused, _ = self.bridge.read(lambda m, i=iface: _live(m, i))
            if not logged_in or paused:
                with self._lock:
                    self._silent.add(iface)
                continue
            self._tried[iface] = now
            try:
                self.bridge.call("agent", {"action": "pause", "agent": iface, "reason": REASON})
            except ApiError as exc:
                log.warning("panel of %s silent for %.0f s, but pausing failed: %s", iface,
                            self.timeout, exc)
                continue
            self.paused += 1
            log.info("panel of %s silent for %.0f s: paused (%s)", iface, self.timeout, REASON)
            with self._lock:
                self._silent.add(iface)
        for iface in back:
            _, paused, reason = self.bridge.read(lambda m, i=iface: _live(m, i))
            if not (paused and reason == REASON):
                continue
            try:
                self.bridge.call("agent", {"action": "unpause", "agent": iface})
            except ApiError as exc:
                log.warning("panel of %s is back, but unpausing failed: %s", iface, exc)
                with self._lock:
                    self._returned.add(iface)  # try again at the next sweep
                continue
            self.unpaused += 1
            log.info("panel of %s is back: unpaused", iface)
