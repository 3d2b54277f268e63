"""FastAGI server: asyncio TCP, routes by script path, never strands a caller.

* Headers are read with one ``readuntil(b"\\n\\n")`` under a timeout and the stream's size
  limit: a client that sends garbage, stalls or disconnects mid-header only loses its own
  connection (no busy loop - the panoramisk ``fast_agi`` fault - and nothing left behind).
* ``agi://host/ivr`` runs the handler registered as ``ivr``; ``agi://host/ivr/support``
  also does, with ``session.route_args == ["support"]``.
* A handler that raises (or a script nobody registered) is logged with the call's
  Uniqueid, ``CCD_AGI_ERROR`` is set on the channel and the dialplan is sent to the
  fallback (``SET CONTEXT/EXTENSION/PRIORITY``, by default ``ccd-fallback,s,1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ccd.agi.protocol import AgiError, AgiHangup, AgiProtocolError, parse_env
from ccd.agi.session import AgiSession, RttHook, StreamTransport

if TYPE_CHECKING:
    from ccd.config import AgiConfig

log = logging.getLogger("ccd.agi")

Handler = Callable[[AgiSession], Awaitable[None]]

#: longest header block / reply line accepted (Asterisk's are well under 2 KiB)
DEFAULT_LINE_LIMIT = 64 * 1024


@dataclass(slots=True)
class AgiStats:
    """Counters of one server (or classic runner)."""

    accepted: int = 0
    rejected: int = 0  # bad, stalled or truncated headers
    active: int = 0
    completed: int = 0
    hangups: int = 0
    failed: int = 0
    fallbacks: int = 0


@dataclass(frozen=True, slots=True)
class Fallback:
    """Where a call goes when its handler fails."""

    context: str = "ccd-fallback"
    extension: str = "s"
    priority: str = "1"
    timeout: float = 5.0


class SessionRunner:
    """Runs one session's handler with the error policy; shared by FastAGI and ccd-agi."""

    def __init__(self, routes: Mapping[str, Handler] | None = None,
                 fallback: Fallback | None = None, stats: AgiStats | None = None) -> None:
        self.routes: dict[str, Handler] = dict(routes or {})
        self.fallback = fallback or Fallback()
        self.stats = stats or AgiStats()
        #: routes whose failure must not re-queue the caller (a post-call survey, a
        #: notification): CCD_AGI_ERROR is set and the dialplan simply goes on
        self.no_fallback: set[str] = set()

    def route(self, name: str, handler: Handler, *, fallback: bool = True) -> None:
        """Register ``handler`` for ``agi://host/<name>`` (and ``<name>/...``)."""
        if not callable(handler):
            raise TypeError("an AGI handler must be an async callable")
        name = name.strip("/")
        self.routes[name] = handler
        if not fallback:
            self.no_fallback.add(name)

    def resolve(self, script: str) -> tuple[Handler | None, str, list[str]]:
        """The handler for a script path, the route name and the remaining segments."""
        if script in self.routes:
            return self.routes[script], script, []
        parts = script.split("/")
        for n in range(len(parts) - 1, 0, -1):
            name = "/".join(parts[:n])
            if name in self.routes:
                return self.routes[name], name, parts[n:]
        return None, script, []

    async def run(self, session: AgiSession) -> str:
        """Run the session's handler; returns 'completed', 'hangup', 'failed' or 'fallback'."""
        handler, name, rest = self.resolve(session.script)
        session.route, session.route_args = name, rest
        uid = session.uniqueid or "-"
        try:
            if handler is None:
                raise LookupError(f"no AGI handler for script {session.script!r}")
            await handler(session)
        except AgiHangup as exc:
            self.stats.hangups += 1
            log.info("[%s] AGI %s: caller hung up (%s)", uid, name, exc)
            return "hangup"
        except asyncio.CancelledError:
            raise
        except LookupError as exc:
            self.stats.failed += 1
            log.error("[%s] AGI %s on %s: %s", uid, name, session.channel, exc)
            return await self.send_to_fallback(session, exc)
        except Exception as exc:
            self.stats.failed += 1
            log.exception("[%s] AGI handler %s on %s failed", uid, name, session.channel)
            return await self.send_to_fallback(session, exc)
        if session.hung_up:
            self.stats.hangups += 1
            return "hangup"
        self.stats.completed += 1
        return "completed"

    async def send_to_fallback(self, session: AgiSession, exc: BaseException) -> str:
        """Set ``CCD_AGI_ERROR`` and point the dialplan at the fallback; 'fallback' or 'failed'."""
        if session.hung_up:
            return "failed"
        text = f"{type(exc).__name__}: {exc}".replace("\r", " ").replace("\n", " ")[:200]
        fb = self.fallback
        if session.route in self.no_fallback:
            with contextlib.suppress(AgiError, TimeoutError, OSError, ValueError):
                async with asyncio.timeout(fb.timeout):
                    await session.set_variable("CCD_AGI_ERROR", text)
            return "failed"
        try:
            async with asyncio.timeout(fb.timeout):
                await session.set_variable("CCD_AGI_ERROR", text)
                await session.goto(fb.context, fb.extension, fb.priority)
        except (AgiError, TimeoutError, OSError, ValueError) as exc2:
            log.warning("[%s] could not send the call to %s,%s,%s: %s", session.uniqueid or "-",
                        fb.context, fb.extension, fb.priority, exc2)
            return "failed"
        self.stats.fallbacks += 1
        log.warning("[%s] call sent to fallback %s,%s,%s", session.uniqueid or "-",
                    fb.context, fb.extension, fb.priority)
        return "fallback"


class AgiServer:
    """The FastAGI listener."""

    def __init__(
        self,
        routes: Mapping[str, Handler] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        header_timeout: float = 5.0,
        fallback: Fallback | None = None,
        line_limit: int = DEFAULT_LINE_LIMIT,
        reply_timeout: float | None = None,
        on_rtt: RttHook | None = None,
    ) -> None:
        self.runner = SessionRunner(routes, fallback)
        self.host = host
        self.port = port
        self.header_timeout = header_timeout
        self.line_limit = line_limit
        self.reply_timeout = reply_timeout
        self.on_rtt = on_rtt
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @classmethod
    def from_config(cls, cfg: AgiConfig, routes: Mapping[str, Handler] | None = None,
                    **kw: Any) -> AgiServer:
        """Build from the ``[agi]`` section of ccd's configuration."""
        return cls(routes, host=cfg.host, port=cfg.port, header_timeout=cfg.header_timeout,
                   fallback=Fallback(context=cfg.fallback_context), **kw)

    @property
    def stats(self) -> AgiStats:
        return self.runner.stats

    def route(self, name: str, handler: Handler, *, fallback: bool = True) -> None:
        self.runner.route(name, handler, fallback=fallback)

    async def start(self) -> None:
        """Listen; ``port=0`` picks a free port (read it back from ``.port``)."""
        self._server = await asyncio.start_server(
            self._client, self.host, self.port, limit=self.line_limit, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI listening on %s:%d (routes: %s)", self.host, self.port,
                 ", ".join(sorted(self.runner.routes)) or "none")

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop listening and end running sessions."""
        if self._server is not None:
            self._server.close()
        self._closing = True
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        stats = self.runner.stats
        stats.accepted += 1
        stats.active += 1
        try:
            try:
                async with asyncio.timeout(self.header_timeout):
                    block = await reader.readuntil(b"\n\n")
                env = parse_env(block)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    AgiProtocolError, ConnectionError) as exc:
                stats.rejected += 1
                log.warning("FastAGI client %s dropped before a session: %s",
                            writer.get_extra_info("peername"), _why(exc))
                return
            session = AgiSession(env, StreamTransport(reader, writer),
                                 reply_timeout=self.reply_timeout, on_rtt=self.on_rtt)
            await self.runner.run(session)
        except asyncio.CancelledError:
            # close() ends the session: return instead of re-raising, since Python 3.11's
            # start_server logs a cancelled client task as "Exception in callback"
            if not self._closing:
                raise
        finally:
            stats.active -= 1
            self._tasks.discard(task)
            writer.close()


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "headers not complete in time"
    if isinstance(exc, asyncio.IncompleteReadError):
        return f"disconnected after {len(exc.partial)} header bytes"
    if isinstance(exc, asyncio.LimitOverrunError):
        return "header block too large"
    return str(exc) or type(exc).__name__
