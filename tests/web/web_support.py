"""Panel test helpers: the whole stack in one process, over real sockets.

:class:`Stack` runs, on an asyncio loop in a background thread: ccd's PBX simulator (the
configuration in ``tests/web/pbx``), the daemon exactly as ``ccd run`` composes it
(:func:`ccd.service.run_daemon`: migrations, event writer, services, FastAGI with the flow
in ``tests/web/flows``), and the panel wired the way ``service.py`` is asked to wire it
(:func:`ccd.web.server.register_methods` + :func:`ccd.web.server.start_panel` with a
:class:`ccd.bridge.DaemonBridge`). Tests drive it through HTTP, python-socketio clients
and the simulated phones.

Seed data: tenant 1 "Acme Support" (DID 5551000, queue support, agents Alice 1001, Bob
1002, Carl 1003, supervisor Sue 1004, admin), tenant 2 "Globex" (DID 5552000, queue sales,
agent Dave 1005, supervisor Gina), a known customer Carol (+15557770001) with an open
ticket, and a Globex customer.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import requests
import socketio
from psycopg import sql

from ccd.bridge import DaemonBridge
from ccd.config import Config
from ccd.security import hash_password
from ccd.service import run_daemon
from ccd.sim.engine import EngineSettings
from ccd.sim.phones import PhoneProfile
from ccd.sim.simulator import SimOptions, Simulator
from ccd.store import migrate
from ccd.store.db import with_database
from ccd.web.server import Panel, register_methods, start_panel

HERE = Path(__file__).resolve().parent
PASSWORD = "correct-horse-42"
ARTIFACTS = HERE.parents[1] / "test-artifacts"


def wait_until(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``cond`` until it returns something truthy; that value, or AssertionError."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def seed(url: str) -> dict[str, int]:
    """Tenants, queues, agents, users, customers and tickets of the panel tests."""
    pw = hash_password(PASSWORD)
    ids: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        def one(query: str, *params: Any) -> int:
            row = conn.execute(query, params).fetchone()
            assert row is not None
            return int(row[0])

        conn.execute("UPDATE tenants SET name = 'Acme Support' WHERE id = 1")
        ids["t1"] = 1
        ids["t2"] = one("INSERT INTO tenants (slug, name) VALUES ('globex', 'Globex') "
                        "RETURNING id")
        conn.execute("INSERT INTO dids (number, tenant_id) VALUES ('5551000', 1), "
                     "('5552000', %s)", (ids["t2"],))
        ids["q_support"] = one("INSERT INTO queues (tenant_id, name, wrapup_seconds, "
                               "recording_policy) VALUES (1, 'support', 2, 'never') RETURNING id")
        ids["q_sales"] = one("INSERT INTO queues (tenant_id, name, wrapup_seconds, "
                             "recording_policy) VALUES (%s, 'sales', 2, 'never') RETURNING id",
                             ids["t2"])
        for key, tenant, name, iface, role, queue in (
                ("alice", 1, "Alice", "PJSIP/1001", "agent", "q_support"),
                ("bob", 1, "Bob", "PJSIP/1002", "agent", "q_support"),
                ("carl", 1, "Carl", "PJSIP/1003", "agent", "q_support"),
                ("sue", 1, "Sue", "PJSIP/1004", "supervisor", ""),
                ("dave", ids["t2"], "Dave", "PJSIP/1005", "agent", "q_sales")):
            aid = one("INSERT INTO agents (tenant_id, name, interface, extension, role) "
                      "VALUES (%s, %s, %s, %s, %s) RETURNING id", tenant, name, iface,
                      iface.split("/")[1], role)
            ids[f"a_{key}"] = aid
            if queue:
                conn.execute("INSERT INTO agent_skills (tenant_id, agent_id, queue_id) "
                             "VALUES (%s, %s, %s)", (tenant, aid, ids[queue]))
        for username, tenant, role, agent in (
                ("alice", 1, "agent", "a_alice"), ("bob", 1, "agent", "a_bob"),
                ("sue", 1, "supervisor", "a_sue"), ("admin", 1, "admin", ""),
                ("dave", ids["t2"], "agent", "a_dave"), ("gina", ids["t2"], "supervisor", "")):
            ids[f"u_{username}"] = one(
                "INSERT INTO users (tenant_id, username, password_hash, role, agent_id) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING id", tenant, username, pw, role,
                ids[agent] if agent else None)
        ids["c_carol"] = one("INSERT INTO customers (tenant_id, name, account_no, notes) "
                             "VALUES (1, 'Carol Customer', 'A-1001', 'prefers email') "
                             "RETURNING id")
        conn.execute("INSERT INTO customer_phones (tenant_id, customer_id, e164) "
                     "VALUES (1, %s, '+15557770001')", (ids["c_carol"],))
        ids["k_carol"] = one("INSERT INTO tickets (tenant_id, subject, status, customer_id) "
                             "VALUES (1, 'Router keeps rebooting', 'open', %s) RETURNING id",
                             ids["c_carol"])
        ids["c_globex"] = one("INSERT INTO customers (tenant_id, name) VALUES (%s, "
                              "'Globex Secret Customer') RETURNING id", ids["t2"])
        conn.execute("INSERT INTO customer_phones (tenant_id, customer_id, e164) "
                     "VALUES (%s, %s, '+15550000002')", (ids["t2"], ids["c_globex"]))
        ids["k_globex"] = one("INSERT INTO tickets (tenant_id, subject, customer_id) "
                              "VALUES (%s, 'Globex only ticket', %s) RETURNING id",
                              ids["t2"], ids["c_globex"])
    return ids


def create_database(server_url: str) -> str:
    """A fresh database with every migration applied."""
    name = f"ccd_web_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    migrate.upgrade(url)
    return url


def drop_database(server_url: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                     .format(sql.Identifier(str(name))))


class Stack:
    """Simulator + daemon + panel on a background event loop (see the module docstring)."""

    def __init__(self, db_url: str, *, heartbeat_timeout: float = 30.0) -> None:
        self.db_url = db_url
        self.heartbeat_timeout = heartbeat_timeout
        self.tmp = Path(tempfile.mkdtemp(prefix="ccdweb-"))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="stack-loop",
                                       daemon=True)
        self.extra: dict[str, Any] = {}
        self.ready: asyncio.Event | None = None
        self.sim: Simulator
        self.panel: Panel
        self.bridge: DaemonBridge
        self.config: Config

    # ------------------------------------------------------------------ lifecycle

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def on_loop(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        async def call() -> Any:
            return fn()
        return self.run(call(), timeout)

    def start(self) -> Stack:
        self.thread.start()
        opts = SimOptions(config_dir=HERE / "pbx", ami_port=0, time_scale=1.0,
                          default_phone=PhoneProfile(answer="manual"),
                          settings=EngineSettings(sounds={"custom/menu": 0.3}))
        self.sim = Simulator(opts)
        self.run(self.sim.start())
        self.config = Config.model_validate({
            "data_dir": str(self.tmp),
            "ami": {"host": "127.0.0.1", "port": self.sim.ami_port, "secret": "ccdsecret",
                    "ping_interval": 2.0, "action_timeout": 1.0},
            "agi": {"host": "127.0.0.1", "port": 0},
            "ivr": {"flows_dir": str(HERE / "flows"), "default_flow": "support"},
            "database": {"url": self.db_url},
            "store": {"flush_interval": 0.05},
            "model": {"wrapup": {"support": 2.0, "sales": 2.0}},
            "web": {"host": "127.0.0.1", "port": 0, "cookie_secure": False,
                    "heartbeat_timeout": self.heartbeat_timeout, "secret_key": "test-key" * 4},
        })

        async def daemon() -> None:
            self.ready = asyncio.Event()
            await run_daemon(self.config, ready=self.ready, extra=self.extra)

        self.daemon_done = asyncio.run_coroutine_threadsafe(daemon(), self.loop)
        wait_until(lambda: (self.ready is not None and self.ready.is_set())
                   or self.daemon_done.done(), 60, "the daemon to start")
        if self.daemon_done.done():
            self.daemon_done.result()  # raises what stopped it
        d = self.extra["daemon"]
        self.sim.engine.settings.agi_override = f"127.0.0.1:{d.agi.port}"
        self.bridge = DaemonBridge(d, self.loop)
        self.on_loop(lambda: register_methods(d, self.extra["services"]))
        self.panel = start_panel(self.config, self.bridge, self.db_url)
        wait_until(lambda: d.client.stats.state == "connected", 20, "the AMI link")
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.panel.stop()
        d = self.extra.get("daemon")
        if d is not None:
            self.loop.call_soon_threadsafe(d.request_stop)
            with contextlib.suppress(Exception):
                self.daemon_done.result(30)
        with contextlib.suppress(Exception):
            self.run(self.sim.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ driving

    @property
    def url(self) -> str:
        return self.panel.url

    def call(self, exten: str = "5551000", caller: tuple[str, str] | None = None,
             phone: str = "2000") -> Any:
        """The customer phone calls ``exten``; returns the simulator's channel."""
        return self.on_loop(lambda: self.sim.call(phone, exten, caller=caller))

    def press(self, channel: Any, digits: str, phone: str = "2000") -> None:
        self.on_loop(lambda: self.sim.phone(phone).press(channel, digits))

    def answer(self, endpoint: str, timeout: float = 15.0) -> bool:
        """Pick up the ringing phone; the model may see AgentCalled a moment before the
        simulated phone has the call, so this retries briefly."""
        end = time.monotonic() + timeout
        while not self.on_loop(lambda: self.sim.phone(endpoint).answer()):
            if time.monotonic() > end:
                return False
            time.sleep(0.05)
        return True

    def hangup(self, endpoint: str) -> bool:
        return bool(self.on_loop(lambda: self.sim.phone(endpoint).hangup()))

    def hangup_all(self) -> None:
        """End every call (between tests)."""
        def drop() -> None:
            for phone in self.sim.engine.phones:
                for ch in [c for c in phone.calls if not c.dead]:
                    phone.hangup(ch)
        self.on_loop(drop)
        wait_until(lambda: not self.bridge.read(lambda m: len(m.calls)), 15, "calls to end")

    def agent(self, interface: str) -> dict[str, Any]:
        """The live agent as ccd's model has it."""
        def view(m: Any) -> dict[str, Any]:
            a = m.agents.get(interface)
            if a is None:
                return {"state": "logged_out", "paused": False, "reason": "", "call_id": ""}
            return {"state": a.state, "paused": a.paused, "reason": a.pause_reason,
                    "call_id": a.call_id, "queues": sorted(a.memberships)}
        return self.bridge.read(view)

    def ringing_call(self, interface: str) -> str:
        """The call id ringing at ``interface`` (waits for it)."""
        def ring() -> str:
            return self.bridge.read(lambda m: next(iter(m.agents[interface].ringing.values()), "")
                                    if interface in m.agents else "")
        return wait_until(ring, 15, f"a call ringing at {interface}")

    def login_agent(self, interface: str) -> None:
        self.bridge.call("agent", {"action": "login", "agent": interface})
        try:
            wait_until(lambda: self.agent(interface)["state"] == "available", 10,
                       f"{interface} available")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.agent(interface)}") from None

    def logout_agent(self, interface: str) -> None:
        with contextlib.suppress(Exception):
            self.bridge.call("agent", {"action": "logout", "agent": interface})


class Web:
    """A logged-in panel user over HTTP (requests), with its CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.csrf = ""

    def login(self, username: str, password: str = PASSWORD) -> requests.Response:
        page = self.http.get(self.base + "/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        r = self.http.post(self.base + "/login", data={"username": username,
                                                       "password": password,
                                                       "csrf_token": token.group(1)})
        if r.status_code == 200:
            self.refresh_csrf()
        return r

    def refresh_csrf(self) -> None:
        page = self.http.get(self.base + "/tickets")
        m = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
        assert m is not None, page.text[:300]
        self.csrf = m.group(1)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.base + path, **kw)

    def post(self, path: str, json: Any = None, csrf: bool = True, **kw: Any
             ) -> requests.Response:
        headers = {"X-CSRFToken": self.csrf} if csrf else {}
        return self.http.post(self.base + path, json=json, headers=headers, **kw)

    def form(self, path: str, data: dict[str, Any], csrf: bool = True) -> requests.Response:
        body = {**data, **({"csrf_token": self.csrf} if csrf else {})}
        return self.http.post(self.base + path, data=body, allow_redirects=False)

    @property
    def cookie(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)


class Live:
    """A python-socketio client (a real websocket) that records what it receives."""

    EVENTS = ("hello", "pop", "call", "agent_state", "queues", "stats", "pbx")

    def __init__(self, base: str, cookie: str = "", heartbeat: bool = True) -> None:
        self.base = base
        self.cookie = cookie
        self.heartbeat = heartbeat
        self.sio = socketio.Client(reconnection=False)
        self.got: list[tuple[str, Any]] = []
        self._cv = threading.Condition()
        self._beat: threading.Thread | None = None
        for name in self.EVENTS:
            self.sio.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(data: Any = None) -> None:
            with self._cv:
                self.got.append((name, data))
                self._cv.notify_all()
        return record

    def connect(self) -> Live:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        self.sio.connect(self.base, headers=headers, transports=["websocket"], wait_timeout=10)
        if self.heartbeat:
            self._beat = threading.Thread(target=self._beats, daemon=True)
            self._beat.start()
        return self

    def _beats(self) -> None:
        while self.sio.connected:
            with contextlib.suppress(Exception):
                self.sio.emit("heartbeat", {})
            time.sleep(0.3)

    def close(self) -> None:
        """Disconnect without waiting for the websocket closing handshake (the client
        library waits up to 3 s for it)."""
        def bye() -> None:
            with contextlib.suppress(Exception):
                self.sio.disconnect()
        threading.Thread(target=bye, daemon=True).start()

    def __enter__(self) -> Live:
        return self if self.sio.connected else self.connect()

    def __exit__(self, *_: object) -> None:
        self.close()

    def of(self, name: str) -> list[Any]:
        with self._cv:
            return [d for n, d in self.got if n == name]

    def wait(self, name: str, pred: Callable[[Any], bool] = lambda _: True,
             timeout: float = 30.0) -> Any:
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                for n, d in self.got:
                    if n == name and pred(d):
                        return d
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {name!r} event matching within {timeout} s")
                self._cv.wait(left)
