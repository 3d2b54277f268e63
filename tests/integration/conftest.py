"""The whole system over real sockets: the simulated Asterisk (AMI over TCP, FastAGI to
ccd), the ccd daemon (run_daemon: link, model, IVR, services, store) and a real
PostgreSQL with the demo set-up.

PostgreSQL is another process, so these tests run in real time (the simulator at x10). On a
busy machine everything takes longer in real time, and every real delay shows up ten times
longer in simulated time: tests wait for conditions with generous deadlines, and compare
durations with the simulator's own event timestamps (``stack.events``), never with what
they expect the wall clock to have done."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ccd.cli.demo import prompt_sounds
from ccd.config import Config, load
from ccd.demo_seed import seed
from ccd.service import run_daemon
from ccd.sim.events import Event
from ccd.sim.simulator import SimOptions, Simulator

SCALE = 10.0  # simulated seconds per real second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    sim: Simulator
    daemon: Any
    services: Any
    config: Config
    db_url: str
    env: dict[str, str]
    task: asyncio.Task[None]
    #: every event the simulator emitted (its engines across restarts), in order
    events: list[Event] = field(default_factory=list)

    def event(self, name: str, **fields: str) -> list[Event]:
        """The simulator's events named ``name`` whose fields have the given values."""
        return [e for e in self.events
                if e.name == name and all(e.get(k) == v for k, v in fields.items())]

    async def until(self, cond: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
        end = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            if self.task.done():
                self.task.result()
            assert time.monotonic() < end, f"timed out waiting for {what or cond}"
            await asyncio.sleep(0.05)

    def row(self, sql: str, *params: object) -> tuple | None:
        with psycopg.connect(self.db_url) as conn:
            return conn.execute(sql, params).fetchone()

    def rows(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.db_url) as conn:
            return conn.execute(sql, params).fetchall()

    async def api(self, method: str, **params: Any) -> Any:
        return await self.daemon.api.methods[method](params)

    def agent(self, interface: str) -> Any:
        return self.daemon.model.agents.get(interface)

    async def login(self, *interfaces: str) -> None:
        for iface in interfaces:
            r = await self.api("agent", action="login", agent=iface)
            assert r["confirmed"], r

    async def stored_call(self, call_id: str, timeout: float = 60.0) -> tuple:
        return await self.until(lambda: self.row(
            "SELECT outcome, agent, hangup_by, queue, end_reason, talk_seconds, record "
            "FROM calls WHERE call_id = %s AND NOT open", call_id), timeout, f"call {call_id}")


@pytest.fixture
async def stack(db_url: str, tmp_path: Path,
                request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    """Simulator + daemon + database. ``@pytest.mark.sim_sounds(missing=[...])``: ccd's
    prompts are installed for the simulated PBX as on a real one, minus the files listed
    (paths under sounds/), and it plays only what is there."""
    seed(db_url, tmp_path)
    agi_port = free_port()
    recordings = tmp_path / "spool" / "monitor"  # the PBX's ${ASTSPOOLDIR}/monitor
    env = {"CCD_DATA_DIR": str(tmp_path), "CCD_DATABASE_URL": db_url,
           "CCD_AGI_PORT": str(agi_port), "CCD_STORE_FLUSH_INTERVAL": "0.05",
           # the helpers' blocking queries may hold the loop a moment on a busy machine:
           # a Pong late by that much is not a hung Asterisk
           "CCD_AMI_PING_INTERVAL": "0.5", "CCD_AMI_PING_TIMEOUT": "2.0",
           "CCD_AMI_BACKOFF_INITIAL": "0.05", "CCD_AMI_BACKOFF_MAX": "0.3",
           "CCD_RECORDING_DIR": str(recordings), "CCD_WEB_PORT": "0",
           "CCD_WEB_COOKIE_SECURE": "false"}
    opts = SimOptions(ami_port=0, agi=f"127.0.0.1:{agi_port}", time_scale=SCALE,
                      recording_root=recordings)
    opts.settings.spool_dir = recordings.parent  # the fallback's recordings land there too
    cfg0 = load(None, env)
    marker = request.node.get_closest_marker("sim_sounds")
    if marker is not None:
        from ccd import prompts

        data = tmp_path / "astdata"
        missing = marker.kwargs.get("missing", ())
        if missing == "all":  # ccd's prompts never installed (real-2/T2a)
            (data / "sounds").mkdir(parents=True)
        else:
            prompts.install(data)
            for rel in missing:
                (data / "sounds" / rel).unlink()
        opts.settings.sounds_dir = data / "sounds"
        env["CCD_ASTERISK_DATA_DIR"] = str(data)
        env["CCD_ASTERISK_CHECK_PROMPTS"] = "false"
    else:
        opts.settings.sounds.update(prompt_sounds(cfg0))
    sim = Simulator(opts)
    events: list[Event] = []
    sim.engine.subscribe(events.append)
    sim.boot_hooks.append(lambda engine: engine.subscribe(events.append))
    await sim.start()
    env["CCD_AMI_PORT"] = str(sim.ami_port)
    config = load(None, env)
    ready = asyncio.Event()
    parts: dict[str, Any] = {}
    task = asyncio.create_task(run_daemon(config, ready=ready, extra=parts))
    done, _ = await asyncio.wait({task, asyncio.create_task(ready.wait())}, timeout=30,
                                 return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    s = Stack(sim, parts["daemon"], parts["services"], config, db_url, env, task, events)
    await s.until(lambda: s.daemon.client.connected and s.daemon.resyncs >= 1, what="link")
    try:
        yield s
    finally:
        s.daemon.request_stop()  # the daemon running now (a test may have restarted it)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(s.task, 20)
        await sim.stop()
