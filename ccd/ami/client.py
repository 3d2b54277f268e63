"""The AMI link: connect, log in, keep alive, reconnect, send actions.

ccd's own asyncio client rather than panoramisk's Manager, because of two faults
DESIGN.md records in panoramisk 1.4 (an exception in a callback closes the link and
loses the rest of the chunk; an unanswered Ping never times out) and because ccd
parses frames lazily (see :mod:`ccd.ami.parser`), which the benchmark measures.

* Every received event frame goes to ``on_event(raw, received_at)``; whatever that
  callback raises is logged and counted, the link and the rest of the data go on.
* A watchdog sends ``Ping`` every ``ping_interval`` seconds; no answer within
  ``ping_timeout`` means Asterisk is dead or hung, and the transport is aborted.
* Lost links are retried with exponential backoff and jitter, forever.
* After each successful login ``on_connect`` runs (the daemon resynchronises the
  model there); ``on_disconnect`` runs when the link drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from ccd.ami.actions import Value, encode_action
from ccd.ami.parser import FrameError, FrameSplitter, parse_frame, peek_field, values
from ccd.config import AmiConfig

log = logging.getLogger(__name__)


class AmiError(Exception):
    """An action failed (``Response: Error``) or the link is not usable."""

    def __init__(self, message: str, response: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.response = dict(response or {})


class AmiNotConnected(AmiError):
    """No AMI link at the moment; the action was not sent."""


@dataclass(slots=True)
class Response:
    """An action's answer: its fields, and the events of a list action."""

    fields: dict[str, str]
    events: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fields.get("Response") in ("Success", "Goodbye", "Follows")

    @property
    def message(self) -> str:
        return self.fields.get("Message", "")

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)

    def all(self, key: str) -> list[str]:
        return values(self.fields, key)


@dataclass(slots=True)
class LinkStats:
    state: str = "down"  # down | connecting | connected
    connects: int = 0
    disconnects: int = 0
    login_failures: int = 0
    last_error: str = ""
    connected_since: float | None = None
    events: int = 0
    callback_errors: int = 0
    malformed: int = 0
    pings: int = 0
    ping_timeouts: int = 0
    last_rtt: float | None = None
    banner: str = ""


@dataclass(slots=True)
class _Pending:
    future: asyncio.Future[Response]
    is_list: bool
    response: dict[str, str] | None = None
    events: list[dict[str, str]] = field(default_factory=list)


EventCallback = Callable[[bytes, float], None]


def _task_error(task: asyncio.Task[None]) -> BaseException | None:
    """The exception a finished task raised (retrieving it), None if none or not done."""
    if not task.done() or task.cancelled():
        return None
    return task.exception()


class AmiClient:
    """One AMI connection to one Asterisk, kept alive for the life of the daemon."""

    def __init__(self, cfg: AmiConfig, on_event: EventCallback,
                 on_connect: Callable[[], Awaitable[None]] | None = None,
                 on_disconnect: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.on_event = on_event
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.clock = clock
        self.stats = LinkStats()
        self._ids = itertools.count(1)
        self._prefix = f"ccd-{os.getpid()}-"
        self._pending: dict[str, _Pending] = {}
        self._watch: dict[str, asyncio.Future[dict[str, str]]] = {}  # ActionID -> next event
        self._writer: asyncio.StreamWriter | None = None
        self._connected = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._logged_in = False
        self._booted = asyncio.Event()  # this session saw FullyBooted
        self._reader_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> asyncio.Task[None]:
        """Run the connect/reconnect loop in the background."""
        self._task = asyncio.create_task(self.run(), name="ami-link")
        return self._task

    async def stop(self) -> None:
        """Log off politely and stop reconnecting."""
        self._stopping = True
        if self._writer is not None and self._logged_in:
            with contextlib.suppress(AmiError, TimeoutError, OSError):
                await asyncio.wait_for(self.action("Logoff"), 1.0)
        self._abort("stopping")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def connected(self) -> bool:
        return self.stats.state == "connected"

    @property
    def booted(self) -> bool:
        """This session has seen ``FullyBooted``: every module of Asterisk is loaded.

        Asterisk sends it right after the login response when it is fully booted, and to
        every session when a boot completes; until then (the AMI port opens early in a
        boot) actions of modules not yet loaded are answered ``Invalid/unknown command``.
        """
        return self._booted.is_set()

    async def wait_booted(self, timeout: float) -> bool:
        """Wait until this session has seen ``FullyBooted``; False after ``timeout``."""
        try:
            await asyncio.wait_for(self._booted.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _reader_gone(self) -> bool:
        return self._reader_task is not None and self._reader_task.done()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until logged in (raises TimeoutError)."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def run(self) -> None:
        """Connect, serve, and reconnect with backoff until :meth:`stop`."""
        attempt = 0
        while not self._stopping:
            reason = "closed"
            try:
                self.stats.state = "connecting"
                await self._session()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, AmiError, asyncio.IncompleteReadError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # never let a bug end the reconnect loop
                log.exception("AMI session failed unexpectedly")
                reason = f"{type(exc).__name__}: {exc}"
            was_up = self.stats.state == "connected"
            self._down(reason)
            if was_up:
                attempt = 0
            if self._stopping:
                break
            delay = self._backoff(attempt)
            attempt += 1
            log.warning("AMI link to %s:%s down (%s); reconnecting in %.1fs",
                        self.cfg.host, self.cfg.port, reason, delay)
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        base = min(self.cfg.backoff_max, self.cfg.backoff_initial * (2 ** min(attempt, 20)))
        return base / 2 + random.uniform(0, base / 2)  # "equal jitter"

    def _down(self, reason: str) -> None:
        self._connected.clear()
        self._booted.clear()
        self._logged_in = False
        for p in self._pending.values():
            if not p.future.done():
                p.future.set_exception(AmiNotConnected(f"AMI link lost: {reason}"))
        self._pending.clear()
        for w in self._watch.values():
            if not w.done():
                w.set_exception(AmiNotConnected(f"AMI link lost: {reason}"))
        self._watch.clear()
        if self._writer is not None:
            self._writer.transport.abort()
            self._writer = None
        if self.stats.state == "connected" or reason != "closed":
            self.stats.last_error = reason  # a failed connect or login counts too
        if self.stats.state == "connected":
            self.stats.disconnects += 1
            if self.on_disconnect is not None:
                try:
                    self.on_disconnect(reason)
                except Exception:
                    log.exception("AMI on_disconnect callback failed")
        self.stats.state = "down"
        self.stats.connected_since = None

    def _abort(self, why: str) -> None:
        if self._writer is not None:
            log.info("aborting AMI transport: %s", why)
            self._writer.transport.abort()

    # ------------------------------------------------------------------ session

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.cfg.host, self.cfg.port), self.cfg.connect_timeout)
        self._writer = writer
        self._booted.clear()
        splitter = FrameSplitter()
        reader_task = asyncio.create_task(self._read_loop(reader, splitter), name="ami-read")
        reader_task.add_done_callback(self._reader_done)
        self._reader_task = reader_task
        try:
            try:
                resp = await self.action("Login", {"Username": self.cfg.username,
                                                   "Secret": self.cfg.secret.get_secret_value(),
                                                   "Events": "on"},
                                         timeout=self.cfg.connect_timeout)
            except AmiNotConnected:
                # the reader died first (reset, EOF): its error is the real reason
                lost = _task_error(reader_task)
                if lost is not None:
                    raise lost from None
                raise
            if not resp.ok:
                self.stats.login_failures += 1
                raise AmiError(f"login as {self.cfg.username!r} refused: {resp.message}")
            self._logged_in = True
            self.stats.state = "connected"
            self.stats.connects += 1
            self.stats.connected_since = self.clock()
            self._connected.set()
            log.info("AMI link up: %s:%s as %s (%s)", self.cfg.host, self.cfg.port,
                     self.cfg.username, self.stats.banner or "no banner")
            if self.on_connect is not None:
                connect_task = asyncio.create_task(self._run_on_connect(), name="ami-resync")
            else:
                connect_task = None
            watchdog = asyncio.create_task(self._watchdog(), name="ami-watchdog")
            try:
                await reader_task
            finally:
                watchdog.cancel()
                if connect_task is not None:
                    connect_task.cancel()
        finally:
            if not reader_task.done():
                reader_task.cancel()
            writer.transport.abort()

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        """The reader ended (reset, EOF, a bug): fail what waits for an answer at once.

        Retrieving the exception here also keeps asyncio from logging "Task exception was
        never retrieved" when the session ends before anybody awaited the reader.
        """
        exc = _task_error(task)
        if exc is None:
            return
        lost = AmiNotConnected(f"AMI link lost: {type(exc).__name__}: {exc}")
        for p in self._pending.values():
            if not p.future.done():
                p.future.set_exception(lost)
        for w in self._watch.values():
            if not w.done():
                w.set_exception(lost)

    async def _run_on_connect(self) -> None:
        assert self.on_connect is not None
        try:
            await self.on_connect()
        except asyncio.CancelledError:
            raise
        except AmiNotConnected as exc:  # the link dropped during the resync: it is retried
            log.info("AMI resync interrupted: %s", exc)
        except (AmiError, TimeoutError) as exc:
            log.warning("AMI resync failed (%s: %s); dropping the link to retry",
                        type(exc).__name__, exc)
            self._abort("resync failed")
        except Exception:
            log.exception("AMI on_connect (resync) failed; dropping the link to retry")
            self._abort("resync failed")

    async def _read_loop(self, reader: asyncio.StreamReader, splitter: FrameSplitter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                tail = splitter.close()
                if tail:
                    self.stats.malformed += 1
                    log.warning("AMI link closed in the middle of a frame (%d bytes lost)",
                                len(tail))
                raise ConnectionResetError("Asterisk closed the AMI connection")
            now = self.clock()
            for raw in splitter.feed(data):
                self._frame(raw, now)

    def _frame(self, raw: bytes, now: float) -> None:
        if raw.startswith(b"Event: "):
            if raw.startswith(b"Event: FullyBooted\r\n"):
                self._booted.set()
            if self._pending or self._watch:
                aid = peek_field(raw, b"ActionID")
                p = self._pending.get(aid) if aid else None
                if p is not None and p.is_list:
                    self._list_item(aid, p, raw)
                    return
                w = self._watch.pop(aid, None) if aid else None
                if w is not None and not w.done():
                    try:
                        w.set_result(parse_frame(raw))
                    except FrameError as exc:
                        w.set_exception(AmiError(f"malformed event for {aid}: {exc}"))
            self.stats.events += 1
            try:
                self.on_event(raw, now)
            except Exception:
                self.stats.callback_errors += 1
                log.exception("AMI event handler failed; event skipped, link kept")
            return
        if raw.startswith(b"Response: "):
            try:
                fields = parse_frame(raw)
            except FrameError as exc:
                self.stats.malformed += 1
                log.warning("skipping malformed AMI response: %s", exc)
                return
            aid = fields.get("ActionID", "")
            p = self._pending.get(aid)
            if p is None:
                log.debug("AMI response for unknown ActionID %r", aid)
                return
            if p.is_list and fields.get("Response") == "Success" \
                    and fields.get("EventList", "").lower() == "start":
                p.response = fields
                return
            del self._pending[aid]
            if not p.future.done():
                p.future.set_result(Response(fields))
            return
        if raw.startswith(b"Asterisk Call Manager/"):
            self.stats.banner = raw.decode("ascii", "replace")
            return
        self.stats.malformed += 1
        log.warning("skipping unrecognised AMI frame: %r", raw[:120])

    def _list_item(self, aid: str, p: _Pending, raw: bytes) -> None:
        try:
            fields = parse_frame(raw)
        except FrameError as exc:
            self.stats.malformed += 1
            log.warning("skipping malformed AMI list item: %s", exc)
            return
        if fields.get("EventList", "").lower() == "complete":
            del self._pending[aid]
            if not p.future.done():
                p.future.set_result(Response(p.response or {"Response": "Success"}, p.events))
            return
        p.events.append(fields)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.ping_interval)
            started = time.monotonic()
            self.stats.pings += 1
            try:
                await self.action("Ping", timeout=self.cfg.ping_timeout)
            except TimeoutError:
                self.stats.ping_timeouts += 1
                log.error("AMI link hung: no answer to Ping within %.1fs; reconnecting",
                          self.cfg.ping_timeout)
                self._abort("ping timeout")
                return
            except AmiError:
                return
            self.stats.last_rtt = time.monotonic() - started

    # ------------------------------------------------------------------ actions

    async def action(self, name: str, fields: Mapping[str, Value] | None = None, *,
                     timeout: float | None = None, is_list: bool = False) -> Response:
        """Send an action and wait for its response (and, for list actions, its events).

        Raises :class:`ccd.ami.actions.AmiActionError` for unsafe values,
        :class:`AmiNotConnected` without a link and ``TimeoutError``.
        """
        writer = self._writer
        if writer is None or (name != "Login" and not self._logged_in) or self._reader_gone():
            raise AmiNotConnected(f"no AMI link; {name} not sent")
        aid = f"{self._prefix}{next(self._ids)}"
        data = encode_action(name, fields, aid)
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[aid] = _Pending(fut, is_list)
        try:
            writer.write(data)
            return await asyncio.wait_for(fut, timeout or self.cfg.action_timeout)
        finally:
            self._pending.pop(aid, None)

    async def command(self, name: str, fields: Mapping[str, Value] | None = None,
                      **kw: float) -> Response:
        """Like :meth:`action` but raises :class:`AmiError` on ``Response: Error``."""
        resp = await self.action(name, fields, **kw)  # type: ignore[arg-type]
        if not resp.ok:
            raise AmiError(f"{name} failed: {resp.message or resp.fields}", resp.fields)
        return resp

    async def originate(self, fields: Mapping[str, Value], timeout: float = 60.0
                        ) -> dict[str, str]:
        """Async ``Originate``; wait for and return its ``OriginateResponse`` event.

        ``Response: Success`` in the result means answered (Reason 4); Failure comes with
        Asterisk's Reason code (0 failed/unavailable, 3 no answer, 5 busy, 8 congestion).
        Raises :class:`AmiError` if the action itself is refused and ``TimeoutError``.
        """
        writer = self._writer
        if writer is None or not self._logged_in or self._reader_gone():
            raise AmiNotConnected("no AMI link; Originate not sent")
        aid = f"{self._prefix}{next(self._ids)}"
        loop = asyncio.get_running_loop()
        resp_fut: asyncio.Future[Response] = loop.create_future()
        event_fut: asyncio.Future[dict[str, str]] = loop.create_future()
        self._pending[aid] = _Pending(resp_fut, False)
        self._watch[aid] = event_fut
        try:
            writer.write(encode_action("Originate", {**fields, "Async": "true"}, aid))
            resp = await asyncio.wait_for(resp_fut, self.cfg.action_timeout)
            if not resp.ok:
                raise AmiError(f"Originate refused: {resp.message}", resp.fields)
            return await asyncio.wait_for(event_fut, timeout)
        finally:
            self._pending.pop(aid, None)
            self._watch.pop(aid, None)

    async def list_action(self, name: str, fields: Mapping[str, Value] | None = None,
                          timeout: float | None = None) -> Response:
        """An action answered by an event list (CoreShowChannels, QueueStatus ...)."""
        resp = await self.action(name, fields, timeout=timeout, is_list=True)
        if not resp.ok:
            raise AmiError(f"{name} failed: {resp.message}", resp.fields)
        return resp
