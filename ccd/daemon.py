"""The ccd daemon: AMI link -> live model -> bus -> store/panel, plus the control API.

One asyncio loop runs everything I/O-bound. The model is fed only from this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import wave
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

from ccd.ami import events as ev
from ccd.ami.client import AmiClient, AmiError, Response
from ccd.ami.ingest import Ingest
from ccd.api import ApiServer, token_for
from ccd.bus import Bus
from ccd.config import Config, redact_url
from ccd.model.domain import DomainEvent
from ccd.model.live import KnownCall, LiveModel, Snapshot

log = logging.getLogger(__name__)


def _unknown_action(exc: AmiError) -> bool:
    """Asterisk's answer to an action no loaded module registered (manager.c)."""
    return exc.response.get("Message", "").startswith("Invalid/unknown command")


def wav_seconds(path: str) -> float | None:
    """Length of a WAV recording in seconds, None if it cannot be read as one."""
    try:
        with wave.open(path, "rb") as w:
            rate = w.getframerate()
            return round(w.getnframes() / rate, 3) if rate > 0 else None
    except (OSError, EOFError, wave.Error):
        return None


def recording_lengths(paths: list[str]) -> dict[str, float]:
    """The lengths of the WAV files among ``paths`` that can be read."""
    out: dict[str, float] = {}
    for p in paths:
        secs = wav_seconds(p) if p.lower().endswith(".wav") else None
        if secs is not None:
            out[p] = secs
    return out


class RateMeter:
    """Events per second over a sliding window (for ``ccd status``)."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._marks: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, n: int = 1, now: float | None = None) -> None:
        self.total += n
        now = time.monotonic() if now is None else now
        self._marks.append((now, self.total))
        while self._marks and self._marks[0][0] < now - self.window:
            self._marks.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while self._marks and self._marks[0][0] < now - self.window:
            self._marks.popleft()
        if not self._marks:
            return 0.0
        first_t, first_n = self._marks[0]
        span = max(now - first_t, 1.0)
        return round((self.total - first_n) / span, 2)


class Daemon:
    """Wires the AMI link, the model, the bus and the adapters together."""

    def __init__(self, config: Config, database_url: str | None = None) -> None:
        self.config = config
        self.model = LiveModel(config.model_config_obj())
        self.ingest = Ingest(self.model)
        self.bus = Bus()
        self.rate = RateMeter()
        self.started = time.time()
        self.database_url = database_url
        self.writer: Any = None
        self.pool: Any = None
        self.agi: Any = None
        self.metrics: Any = None  # ccd.metrics.DaemonCollector when [metrics] port is set
        self._stopped = False
        self.client = AmiClient(config.ami, self._on_event, self._on_connect,
                                self._on_disconnect)
        self._resync_buffer: list[tuple[bytes, float]] | None = None
        self.resync_hooks: list[Callable[[], Awaitable[Any]]] = []
        #: reads the calls ccd had stored as open (set by ``run_daemon``); the first resync
        #: keeps what they say for the calls Asterisk still has and closes the others
        self.known_loader: Callable[[], Awaitable[dict[str, KnownCall]]] | None = None
        self._known: dict[str, KnownCall] | None = None
        self._last_event_mono = time.monotonic()
        self.resyncs = 0
        self.last_resync: dict[str, Any] = {}
        self.api = ApiServer(config.api_socket, token_for(config, create=True))
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._register_api()

    # ------------------------------------------------------------------ events

    def _on_event(self, raw: bytes, now: float) -> None:
        if self._resync_buffer is not None:
            self._resync_buffer.append((raw, now))
            return
        self._apply(raw, now)

    def _apply(self, raw: bytes, now: float) -> None:
        self._last_event_mono = time.monotonic()
        self.rate.add()
        for de in self.ingest.frame(raw, now):
            self.bus.publish(de)

    def publish(self, events: list[DomainEvent]) -> None:
        self.bus.publish_all(events)

    async def _read_truth(self) -> tuple[Response, Response | None]:
        """CoreShowChannels and QueueStatus, once Asterisk can answer them.

        While Asterisk boots its AMI port is already open, but actions of modules not yet
        loaded are answered ``Invalid/unknown command`` until ``FullyBooted``: then wait
        for it (``ami.boot_timeout``) and ask again. A module still missing after that is
        not loaded at all: the queues are left out of this resync (None), with a warning.
        """
        client = self.client
        waited = False
        while True:
            chans = await client.list_action("CoreShowChannels")
            try:
                return chans, await client.list_action("QueueStatus")
            except AmiError as exc:
                if not _unknown_action(exc):
                    raise
                if not waited and not client.booted:
                    log.info("Asterisk is still booting (%s); resynchronising once it is "
                             "fully booted", exc)
                    waited = True
                    if not await client.wait_booted(self.config.ami.boot_timeout):
                        log.warning("no FullyBooted from Asterisk within %.0f s (does the "
                                    "AMI user read the 'system' class?); asking again",
                                    self.config.ami.boot_timeout)
                    continue  # read both again: the snapshot is taken after the boot
                log.warning("Asterisk does not know QueueStatus (%s): is app_queue loaded? "
                            "Resynchronising channels only", exc)
                return chans, None

    async def _on_connect(self) -> None:
        """Read Asterisk's current truth and reconcile the model with it."""
        self._resync_buffer = []
        try:
            chans, queues = await self._read_truth()
            status = await self._status()
            snap = Snapshot(ts=self.model_now(), complete_queues=queues is not None)
            for f in chans.events:
                e = ev.decode_fields(f, snap.ts)
                if isinstance(e, ev.CoreShowChannel):
                    snap.channels.append(e)
            for f in status:
                e = ev.decode_fields(f, snap.ts)
                if isinstance(e, ev.ChannelStatus):
                    snap.status[e.uniqueid] = e
            if self._known is not None:  # the first resync after ccd started
                snap.known, self._known = self._known, None
            for f in queues.events if queues is not None else ():
                e = ev.decode_fields(f, snap.ts)
                if isinstance(e, ev.QueueMemberEvent):
                    snap.members.append(e)
                elif isinstance(e, ev.QueueEntry):
                    snap.entries.append(e)
                elif isinstance(e, ev.QueueParams):
                    snap.queues.append(e)
            # calls whose channels are all gone ended while ccd could not see them: the
            # recordings still running on them tell when (MixMonitor writes until hang-up)
            present = {c.uniqueid for c in snap.channels}
            linked = {c.linkedid for c in snap.channels}
            paths = [ch.recording for call in self.model.calls.values()
                     if call.channels and not present.intersection(call.channels)
                     for ch in call.channels.values() if ch.recording]
            paths += [p for cid, k in snap.known.items() if cid not in linked
                      for p in k.recordings]
            if paths:
                snap.recording_seconds = await asyncio.to_thread(recording_lengths, paths)
            before = set(self.model.calls)
            out = self.model.reconcile(snap)
            self.resyncs += 1
            closed = [e for e in out if e.kind == "call_ended"]
            adopted = [e for e in out if e.kind == "call_started"]
            self.last_resync = {"at": snap.ts, "channels": len(snap.channels),
                                "calls_before": len(before), "closed": len(closed),
                                "adopted": len(adopted), "members": len(snap.members)}
            log.info("resynchronised with Asterisk: %d channels, %d calls closed, "
                     "%d adopted, %d queue members", len(snap.channels), len(closed),
                     len(adopted), len(snap.members))
            self.publish(out)
        finally:
            buffered, self._resync_buffer = self._resync_buffer or [], None
            for raw, now in buffered:
                self._apply(raw, now)
        for hook in self.resync_hooks:
            try:
                await hook()
            except Exception:
                log.exception("after-resync hook failed")

    async def _status(self) -> list[dict[str, str]]:
        """AMI Status of every channel with its variables (DNID, CCD_*, MIXMONITOR_FILENAME,
        app_queue's ...): what Asterisk still knows about calls ccd did not see start."""
        try:
            resp = await self.client.list_action("Status", {"AllVariables": "true"})
        except Exception as exc:
            log.warning("resync without channel variables (Status failed: %s)", exc)
            return []
        return resp.events

    def _on_disconnect(self, reason: str) -> None:
        self.publish(self.model.link_lost(self.model_now()))

    def model_now(self) -> float:
        """Asterisk's clock as the model knows it: the last event's timestamp plus the time
        since it arrived (robust to clock skew between the Asterisk and ccd hosts)."""
        if not self.model.last_ts:
            return time.time()
        return self.model.last_ts + (time.monotonic() - self._last_event_mono)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.publish(self.model.tick(self.model_now()))
                if self.metrics is not None:
                    self.metrics.refresh(
                        self.status(), Counter(a.state for a in self.model.agents.values()),
                        {q.name: len(q.waiting) for q in self.model.queues.values()})
            except Exception:
                log.exception("model tick failed")

    # ------------------------------------------------------------------ API

    def _register_api(self) -> None:
        async def status(_: dict[str, Any]) -> dict[str, Any]:
            return self.status()

        self.api.register("status", status)

    def status(self) -> dict[str, Any]:
        s = self.client.stats
        waiting = sum(len(q.waiting) for q in self.model.queues.values())
        out: dict[str, Any] = {
            "uptime": round(time.time() - self.started, 1),
            "ami": {"state": s.state, "host": f"{self.config.ami.host}:{self.config.ami.port}",
                    "connects": s.connects, "disconnects": s.disconnects,
                    "last_error": s.last_error, "banner": s.banner,
                    "ping_rtt_ms": None if s.last_rtt is None else round(s.last_rtt * 1000, 1),
                    "ping_timeouts": s.ping_timeouts},
            "events": {"rate_per_s": self.rate.rate(), "total": self.rate.total,
                       "decoded": self.ingest.stats.events,
                       "malformed": self.ingest.stats.malformed + s.malformed,
                       "bad_timestamps": self.ingest.clock.replaced,
                       "handler_errors": self.ingest.stats.model_errors + s.callback_errors},
            "calls_in_progress": len(self.model.calls),
            "waiting_in_queue": waiting,
            "agents": len(self.model.agents),
            "resyncs": self.resyncs,
            "last_resync": self.last_resync,
            "database": redact_url(self.database_url) if self.database_url else None,
        }
        if self.writer is not None:
            out["store"] = self.writer.stats.as_dict()
        if self.agi is not None:
            st = self.agi.stats
            out["agi"] = {"port": self.agi.port, "sessions": st.accepted, "active": st.active,
                          "completed": st.completed, "failed": st.failed,
                          "fallbacks": st.fallbacks, "rejected": st.rejected}
        return out

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the control API, the AMI link and the model clock; SIGTERM stops."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop.set)
        await self.api.start()
        if self.known_loader is not None:
            try:
                self._known = await self.known_loader()
            except Exception as exc:
                log.error("calls left open by the previous run not read (%s); they are "
                          "reconciled at the next start", exc)
        if self.config.metrics.port:
            from ccd.metrics import serve

            self.metrics = serve(self.config.metrics.host, self.config.metrics.port)
        self.client.start()
        self._tasks.append(asyncio.create_task(self._ticker(), name="model-tick"))

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        """Close the AMI link, flush the store, remove the API socket (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        log.info("stopping: closing the AMI link and flushing what is pending")
        for t in self._tasks:
            t.cancel()
        await self.client.stop()
        if self.writer is not None:
            await self.writer.close()
        await self.api.stop()

    async def run_forever(self) -> None:
        await self.start()
        try:
            await self.wait_stopped()
        finally:
            await self.stop()
