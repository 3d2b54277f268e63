"""The AMI server: TCP sessions speaking Asterisk's manager protocol.

Per connection: the banner, ``Key: Value`` lines read until an empty line (CRLF or LF, as
Asterisk accepts), at most 1024 bytes per line (longer lines are dropped, the way
manager.c "dumps long lines"), unauthenticated sessions limited by ``authlimit`` and timed
out after ``authtimeout``, and an output queue per session so a slow reader never blocks
the PBX (a reader that falls too far behind is disconnected, like Asterisk's
``writetimeout``). Fault injection (stall, slow, drop) acts here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ccd.sim.events import CLASSES, SECURITY, Event
from ccd.sim.pbxconf import ManagerConfig, ManagerUser

if TYPE_CHECKING:
    from ccd.sim.engine import Engine

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
MAX_LINE = 1024
MAX_HEADERS = 128  # Asterisk's AST_MAX_MANHEADERS
MAX_BACKLOG = 20000  # frames queued for one session before it is dropped


@dataclass(slots=True)
class Message:
    """One action as received: headers in order (repeats kept), case-insensitive lookup."""

    headers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str, default: str = "") -> str:
        low = key.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return default

    def getall(self, key: str) -> list[str]:
        low = key.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def has(self, key: str) -> bool:
        low = key.lower()
        return any(k.lower() == low for k, _ in self.headers)

    @property
    def action(self) -> str:
        return self.get("Action").strip()

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID") if self.has("ActionID") else None


@dataclass
class Faults:
    """What the operator or a test asked the AMI side to do wrong."""

    stalled: bool = False
    delay: float = 0.0  # seconds added before each frame is written (slow link)
    stall_changed: asyncio.Event = field(default_factory=asyncio.Event)


class Session:
    """One AMI connection."""

    def __init__(
        self, server: AmiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = writer.get_extra_info("peername") or ("?", 0)
        self.local = writer.get_extra_info("sockname") or ("?", 0)
        self.authenticated = False
        self.user: ManagerUser | None = None
        self.read_classes: frozenset[str] = frozenset()
        self.write_classes: frozenset[str] = frozenset()
        self.event_classes: frozenset[str] = frozenset(CLASSES)
        self.challenge = ""
        self.started = server.clock_now()
        self.out: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.closing = False
        self.ident = f"0x{id(self):x}"

    # ------------------------------------------------------------------ output

    def send(self, data: bytes) -> None:
        if self.closing:
            return
        if self.out.qsize() > MAX_BACKLOG:
            log.warning("AMI session %s:%s is not reading; disconnecting", *self.peer[:2])
            self.close()
            return
        self.out.put_nowait(data)

    def wants(self, ev: Event) -> bool:
        if not self.authenticated or ev.privilege is None:
            return False
        return ev.privilege in self.event_classes and ev.privilege in self.read_classes

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.out.put_nowait(None)

    async def writer_loop(self) -> None:
        faults = self.server.faults
        try:
            while True:
                data = await self.out.get()
                if data is None:
                    break
                while faults.stalled:
                    faults.stall_changed.clear()
                    await faults.stall_changed.wait()
                if faults.delay > 0:
                    await asyncio.sleep(faults.delay)
                self.writer.write(data)
                if self.writer.transport.get_write_buffer_size() > 1 << 20:
                    await asyncio.wait_for(self.writer.drain(), timeout=5.0)
            with contextlib.suppress(OSError, ConnectionError, TimeoutError):
                await asyncio.wait_for(self.writer.drain(), timeout=2.0)
        except (OSError, ConnectionError, TimeoutError):
            pass
        finally:
            self.closing = True
            self.writer.close()

    # ------------------------------------------------------------------ input

    async def read_message(self) -> Message | None:
        """The next action, or None at EOF. Over-long lines are dropped, never fatal."""
        msg = Message()
        discarding = False
        while True:
            try:
                line = await self.reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return None
            except asyncio.LimitOverrunError as exc:
                if not discarding:
                    log.warning("Dumping long line with no return from %s", self.peer[0])
                discarding = True
                await self.reader.readexactly(max(1, exc.consumed))
                continue
            if discarding:
                discarding = False  # the tail of the dropped line
                continue
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            if not text:
                if msg.headers:
                    return msg
                continue
            key, sep, value = text.partition(":")
            if not sep:
                continue
            if len(msg.headers) < MAX_HEADERS:
                msg.headers.append((key.strip(), value.lstrip(" ")))


class AmiServer:
    """Listens for AMI clients and fans the engine's events out to them."""

    def __init__(
        self,
        manager: ManagerConfig,
        engine: Engine,
        host: str,
        port: int,
        *,
        authlimit: int = 50,
        authtimeout: float = 30.0,
        auth_fail_delay: float = 1.0,
    ) -> None:
        from ccd.sim.ami.actions import Dispatcher

        self.manager = manager
        self.engine = engine
        self.host = host
        self.port = port
        self.authlimit = authlimit
        self.authtimeout = authtimeout
        self.auth_fail_delay = auth_fail_delay
        self.faults = Faults()
        self.sessions: set[Session] = set()
        self.dispatcher = Dispatcher(self)
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._hooks: set[asyncio.Task[None]] = set()
        self.on_login: Callable[[Session], None] | None = None
        #: "restart" / "stop": what ``core restart now`` / ``core stop now`` do
        self.system_hooks: dict[str, Callable[[], Awaitable[None]]] = {}
        engine.subscribe(self.broadcast)

    def run_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run a system hook (restart/stop) outside the engine, whose tasks it cancels."""
        task = asyncio.get_running_loop().create_task(hook())
        self._hooks.add(task)
        task.add_done_callback(self._hooks.discard)

    def clock_now(self) -> float:
        return self.engine.clock.now()

    def attach(self, engine: Engine) -> None:
        """Serve another engine (after a simulated restart)."""
        self.engine.unsubscribe(self.broadcast)
        self.engine = engine
        engine.subscribe(self.broadcast)

    # ------------------------------------------------------------------ lifecycle

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(
            self._client, self.host, self.port, limit=MAX_LINE + 2, reuse_address=True, backlog=4096
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        return self.port

    async def stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    def drop_all(self, abort: bool = False) -> int:
        """Close every connection (``abort``: RST instead of FIN). Returns how many."""
        n = len(self.sessions)
        for s in list(self.sessions):
            if abort:
                s.closing = True
                s.writer.transport.abort()
            else:
                s.close()
        return n

    async def stop(self) -> None:
        await self.stop_listening()
        self.drop_all()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.engine.unsubscribe(self.broadcast)

    # ------------------------------------------------------------------ fan-out

    def broadcast(self, ev: Event) -> None:
        if not self.sessions:
            return
        cache: dict[bool, bytes] = {}
        stamps = self.manager.timestampevents
        for s in self.sessions:
            if s.wants(ev):
                data = cache.get(stamps)
                if data is None:
                    data = cache[stamps] = ev.render(stamps)
                s.send(data)

    def unauthenticated(self) -> int:
        return sum(1 for s in self.sessions if not s.authenticated)

    # ------------------------------------------------------------------ per connection

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        session = Session(self, reader, writer)
        if self.unauthenticated() >= self.authlimit:
            log.warning("AMI: too many unauthenticated sessions; refusing %s", session.peer[0])
            writer.close()
            if task is not None:
                self._tasks.discard(task)
            return
        self.sessions.add(session)
        out = asyncio.get_running_loop().create_task(session.writer_loop())
        session.send(BANNER)
        timer = asyncio.get_running_loop().call_later(self.authtimeout, self._auth_timeout, session)
        try:
            while not session.closing:
                msg = await session.read_message()
                if msg is None:
                    break
                while self.faults.stalled and not session.closing:
                    self.faults.stall_changed.clear()
                    await self.faults.stall_changed.wait()
                if session.closing:
                    break
                keep = await self.dispatcher.dispatch(session, msg)
                if not keep:
                    break
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("AMI session %s failed", session.peer)
        finally:
            timer.cancel()
            self.sessions.discard(session)
            session.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(out, 3.0)
            if task is not None:
                self._tasks.discard(task)

    def _auth_timeout(self, session: Session) -> None:
        if not session.authenticated and not session.closing:
            log.info("AMI: %s did not log in within %ss", session.peer[0], self.authtimeout)
            session.close()

    # ------------------------------------------------------------------ security events

    def security_event(
        self, name: str, session: Session, severity: str, extra: list[tuple[str, str]]
    ) -> None:
        """SuccessfulAuth, InvalidPassword, RequestBadFormat ... (class ``security``)."""
        import time as _time

        now = self.clock_now()
        tv = (
            _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(now))
            + f".{int(now * 1000) % 1000:03d}+0000"
        )
        start = (
            _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(session.started))
            + f".{int(session.started * 1000) % 1000:03d}+0000"
        )
        fields = [
            ("EventTV", tv),
            ("Severity", severity),
            ("Service", "AMI"),
            ("EventVersion", "1"),
        ]
        fields += extra
        fields += [
            ("SessionID", session.ident),
            ("LocalAddress", f"IPV4/TCP/{session.local[0]}/{session.local[1]}"),
            ("RemoteAddress", f"IPV4/TCP/{session.peer[0]}/{session.peer[1]}"),
            ("SessionTV", start),
        ]
        self.engine.emit(name, SECURITY, fields)

    def permitted(self, user: ManagerUser, addr: str) -> bool:
        """manager.conf permit= lines (no permit line = everyone)."""
        if not user.permit:
            return True
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        for rule in user.permit:
            net_s, _, mask = rule.partition("/")
            try:
                if mask and "." in mask:
                    net = ipaddress.ip_network(f"{net_s}/{mask}", strict=False)
                else:
                    net = ipaddress.ip_network(rule if mask else net_s, strict=False)
            except ValueError:
                continue
            if ip.version == net.version and ip in net:
                return True
        return False
