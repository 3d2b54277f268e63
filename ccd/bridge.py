"""Thread-safe access to the daemon from other threads (the Flask-SocketIO panel).

The daemon's model, services and AMI link live on one asyncio loop. Code running in
another thread (a Flask request, a Socket.IO handler) uses this bridge:

* :meth:`DaemonBridge.call` runs one of the control-API methods (the same ones the CLI
  uses: ``agents``, ``agent``, ``queues``, ``calls``, ``call``, ``originate`` ...) on the
  loop and returns its result, raising :class:`ccd.api.ApiError` like the API does;
* :meth:`DaemonBridge.read` runs a function against the live model on the loop thread,
  so it sees a consistent state;
* :meth:`DaemonBridge.subscribe` registers a domain-event callback; it runs on the loop
  thread for every event, so it must be quick and thread-safe (hand work to a queue).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from ccd.api import ApiError
from ccd.model.domain import DomainEvent
from ccd.model.live import LiveModel

T = TypeVar("T")


class DaemonBridge:
    def __init__(self, daemon: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.daemon = daemon
        self.loop = loop

    def call(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 10.0) -> Any:
        """Run a control-API method on the daemon's loop; raises ApiError."""
        fn = self.daemon.api.methods.get(method)
        if fn is None:
            raise ApiError(f"unknown method {method!r}", 2)
        fut = asyncio.run_coroutine_threadsafe(fn(params or {}), self.loop)
        try:
            return fut.result(timeout)
        except TimeoutError as exc:
            fut.cancel()
            raise ApiError(f"{method} did not finish within {timeout:g} s", 3) from exc

    def read(self, fn: Callable[[LiveModel], T], timeout: float = 5.0) -> T:
        """Evaluate ``fn(model)`` on the loop thread and return its result."""
        async def run() -> T:
            return fn(self.daemon.model)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def subscribe(self, name: str, fn: Callable[[DomainEvent], None]) -> None:
        """Receive every domain event (called on the loop thread)."""
        self.loop.call_soon_threadsafe(self.daemon.bus.subscribe, name, fn)

    def unsubscribe(self, fn: Callable[[DomainEvent], None]) -> None:
        """Stop receiving domain events."""
        self.loop.call_soon_threadsafe(self.daemon.bus.unsubscribe, fn)
