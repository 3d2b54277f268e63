"""Run the panel inside the daemon: Flask-SocketIO in threading mode on Werkzeug's threaded
WSGI server (real websockets through simple-websocket), in background threads.

The panel talks to the daemon only through :class:`ccd.bridge.DaemonBridge`: control-API
methods for commands and reads, a bus subscription for domain events. Its own data
(users, customers, tickets, wrap-ups, history) comes from PostgreSQL through a blocking
connection pool.

Scale-out: ``[web] message_queue = "redis://host:6379/0"`` makes Socket.IO publish through
Redis (python-socketio's ``RedisManager``, needs the ``redis`` package), so several panel
processes behind a load balancer (with sticky sessions) share rooms; events published by
the daemon's panel reach browsers connected to any of them.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask_socketio import SocketIO
from psycopg_pool import ConnectionPool
from werkzeug.serving import (
    LISTEN_QUEUE,
    BaseWSGIServer,
    WSGIRequestHandler,
    get_sockaddr,
    make_server,
    select_address_family,
)

from ccd.store.db import open_pool
from ccd.web.app import PanelContext, create_app, load_secret_key
from ccd.web.heartbeat import HeartbeatMonitor
from ccd.web.hub import Hub
from ccd.web.sockets import Registry, register
from ccd.web.store import PanelStore

log = logging.getLogger(__name__)

VENDOR = Path(__file__).resolve().parent / "static" / "vendor"
VENDOR_FILES = ("socket.io.min.js", "chart.umd.min.js")


class _QuietHandler(WSGIRequestHandler):
    """TCP_NODELAY on every connection; no access log line per request; unparseable
    requests only at debug level (a websocket client's last frames after the server ended
    the session look like one).

    Without TCP_NODELAY, a screen pop written right after another small message (the
    agent's ``ringing`` state) waits for the browser's delayed ACK: 40 ms on Linux.
    """

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return

    def log_error(self, format: str, *args: Any) -> None:
        if args and args[0] == 400:
            log.debug("panel: " + format, *args)
            return
        super().log_error(format, *args)


@dataclass
class Panel:
    """A running panel; :meth:`stop` ends it (idempotent)."""

    app: Flask
    socketio: SocketIO
    server: BaseWSGIServer
    thread: threading.Thread
    hub: Hub
    heartbeat: HeartbeatMonitor
    registry: Registry
    pool: ConnectionPool
    _stopped: bool = False

    @property
    def host(self) -> str:
        return str(self.server.server_address[0])

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.hub.stop()
        self.heartbeat.stop()
        for sid in self.registry.sids():
            try:
                self.socketio.server.disconnect(sid, namespace="/")
            except Exception as exc:
                log.debug("disconnecting %s: %s", sid, exc)
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.pool.close()
        log.info("panel stopped")


class PanelPortError(Exception):
    """The panel cannot listen on ``[web] host:port`` (taken, or not an address here)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(
            f"the panel cannot listen on {where}: {reason}. Stop the program that holds it "
            f"or choose another port with [web] port (CCD_WEB_PORT); [web] optional = true "
            f"runs ccd without the panel instead")
        self.where = where
        self.reason = reason


def panel_address(config: Any) -> str:
    """``host:port`` of the panel as configured (``[::1]:8080`` for IPv6)."""
    host = str(config.web.host)
    return f"[{host}]:{config.web.port}" if ":" in host else f"{host}:{config.web.port}"


def bind_panel(config: Any) -> socket.socket:
    """Bind and listen on ``[web] host:port`` now, for :func:`start_panel` to serve later.

    Done before the daemon starts anything, so a taken port is found while nothing has
    been touched, and no other program can take the port in between. Raises
    :class:`PanelPortError` (never ``SystemExit``, which Werkzeug's own bind does).
    """
    host, port = str(config.web.host), int(config.web.port)
    family = select_address_family(host, port)
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family != getattr(socket, "AF_UNIX", None):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(get_sockaddr(host, port, family))
            sock.listen(LISTEN_QUEUE)
        except BaseException:
            sock.close()
            raise
    except OSError as exc:
        raise PanelPortError(panel_address(config), exc.strerror or str(exc)) from exc
    return sock


def reserve_panel(config: Any) -> socket.socket | None:
    """:func:`bind_panel`, honouring ``[web] optional``: a taken port raises
    :class:`PanelPortError`, or with ``optional = true`` logs a warning and returns None
    (ccd then runs without the panel)."""
    try:
        return bind_panel(config)
    except PanelPortError as exc:
        if not getattr(config.web, "optional", False):
            raise
        log.warning("the panel cannot listen on %s: %s; running without the panel "
                    "([web] optional = true)", exc.where, exc.reason)
        return None


def start_panel(config: Any, bridge: Any, database_url: str,
                sock: socket.socket | None = None) -> Panel:
    """Start the panel on ``sock`` (from :func:`bind_panel`; bound here when None) and
    return it. ``[web] port`` 0 = any free port. The panel owns ``sock`` from now on.

    Call it from a thread other than the daemon's loop (``asyncio.to_thread``): it waits
    for the database pool and subscribes through the bridge.
    """
    if sock is None:
        sock = bind_panel(config)
    try:
        return _start_panel(config, bridge, database_url, sock)
    finally:
        sock.close()  # the server serves a duplicate of it


def _start_panel(config: Any, bridge: Any, database_url: str, sock: socket.socket) -> Panel:
    web = config.web
    missing = [f for f in VENDOR_FILES if not (VENDOR / f).exists()]
    if missing:
        log.warning("panel assets missing in %s (%s): run scripts/assets.sh", VENDOR,
                    ", ".join(missing))
    pool = open_pool(database_url, min_size=1, max_size=int(getattr(web, "pool_max", 8)),
                     name="ccd-web")
    try:
        store = PanelStore(pool)
        mq = str(getattr(web, "message_queue", "") or "") or None
        socketio = SocketIO(async_mode="threading", message_queue=mq, ping_interval=25,
                            ping_timeout=20, max_http_buffer_size=64 * 1024)
        hub = Hub(socketio.emit, store, bridge)
        heartbeat = HeartbeatMonitor(bridge,
                                     timeout=float(getattr(web, "heartbeat_timeout", 30.0)))
        context = PanelContext(config, bridge, store, hub, heartbeat)
        app = create_app(config, context, load_secret_key(config))
        socketio.init_app(app)
        registry = register(socketio, context)
        hub.active_tenants = registry.tenants
        context.registry, context.socketio = registry, socketio
        server = make_server(web.host, int(web.port), app, threaded=True,
                             request_handler=_QuietHandler, fd=sock.fileno())
    except BaseException:
        pool.close()
        raise
    thread = threading.Thread(target=server.serve_forever, name="ccd-web-http", daemon=True)
    hub.start()
    heartbeat.start()
    thread.start()
    panel = Panel(app, socketio, server, thread, hub, heartbeat, registry, pool)
    log.info("panel listening on %s", panel.url)
    return panel


def stats_today_method(services: Any) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    """The ``stats.today`` control-API method: today's live per-interval statistics
    (``services.live_stats``), read on the daemon's loop."""
    async def stats_today(params: dict[str, Any]) -> dict[str, Any]:
        st = services.live_stats
        out: dict[str, Any] = {"day": services.stats_day, "interval": st.interval,
                               "queues": st.queue_rows()}
        if params.get("agents"):
            out["agents"] = st.agent_rows()
        return out

    return stats_today


def register_methods(daemon: Any, services: Any) -> None:
    """Control-API methods the panel needs besides the services' own."""
    daemon.api.register("stats.today", stats_today_method(services))
