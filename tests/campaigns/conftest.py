"""Campaign test fixtures: a seeded database, a controllable clock that also drives
APScheduler, and a running stack - the simulated PBX (real AMI over TCP), a ccd daemon with
its event writer, the campaign service, and optionally the FastAGI server with the
campaign routes. Helpers reach the tests as fixtures, so test modules import nothing here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apscheduler.executors.base
import apscheduler.schedulers.base
import apscheduler.triggers.interval
import psycopg
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ccd.agi.server import AgiServer
from ccd.campaigns.agi import campaign_routes
from ccd.campaigns.service import CampaignService
from ccd.config import Config
from ccd.daemon import Daemon
from ccd.model.domain import DomainEvent
from ccd.sim.phones import PhoneProfile
from ccd.sim.simulator import SimOptions, Simulator
from ccd.store.db import open_async_pool
from ccd.store.writer import EventWriter

PBX = Path(__file__).resolve().parent / "pbx"
#: Monday 2030-01-07 15:00 UTC = 10:00 in New York (the tenant's zone)
MONDAY = datetime(2030, 1, 7, 15, 0, tzinfo=UTC).timestamp()
SCALE = 10.0  # the simulated PBX runs ten times faster than real time


def number(i: int) -> str:
    """Contact i of the test PBX: +155501000ii (endpoint 155501000ii)."""
    return f"+155501000{i:02d}"


class Clock:
    """Epoch time that runs with real time and can jump ahead."""

    def __init__(self, start: float) -> None:
        self._start = start
        self._m0 = time.monotonic()
        self.offset = 0.0

    def __call__(self) -> float:
        return self._start + (time.monotonic() - self._m0) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The campaign clock; APScheduler 3.x reads ``datetime.now`` in these modules, so they
    are pointed at the same clock (jobs then fire at the clock's times)."""
    c = Clock(MONDAY)

    class _Now(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.fromtimestamp(c(), tz)

    for mod in (apscheduler.schedulers.base, apscheduler.executors.base,
                apscheduler.triggers.interval):
        monkeypatch.setattr(mod, "datetime", _Now)
    return c


# ------------------------------------------------------------------ database


class Db:
    """Blocking helpers on one test database."""

    def __init__(self, url: str) -> None:
        self.url = url

    def q(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.cursor(row_factory=dict_row)
            cur.execute(sql, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def seed(self) -> int:
        """Tenant acme (New York) with queues outbound, support (surveys on), nosurvey and
        outbound3, agents 1001 (outbound, support), 1002 (outbound, nosurvey) and 1003; the
        id."""
        (t,) = self.q("INSERT INTO tenants (slug, name, timezone) VALUES "
                      "('acme', 'ACME', 'America/New_York') RETURNING id")
        tid = t["id"]
        queues = {}
        for name, surveys in (("outbound", False), ("support", True), ("nosurvey", False),
                              ("outbound3", False)):
            queues[name] = self.q("INSERT INTO queues (tenant_id, name, surveys) VALUES "
                                  "(%s, %s, %s) RETURNING id", tid, name, surveys)[0]["id"]
        for iface, name, qs in (("PJSIP/1001", "Alice", ("outbound", "support", "outbound3")),
                                ("PJSIP/1002", "Bob", ("outbound", "nosurvey", "outbound3")),
                                ("PJSIP/1003", "Carl", ("outbound3",))):
            aid = self.q("INSERT INTO agents (tenant_id, name, interface, extension) VALUES "
                         "(%s, %s, %s, %s) RETURNING id", tid, name, iface,
                         iface[-4:])[0]["id"]
            for qn in qs:
                self.q("INSERT INTO agent_skills (tenant_id, agent_id, queue_id) VALUES "
                       "(%s, %s, %s)", tid, aid, queues[qn])
        return tid

    def campaign(self, tenant_id: int, name: str = "spring", **over: Any) -> int:
        row: dict[str, Any] = {
            "tenant_id": tenant_id, "name": name, "kind": "agents",
            "dial_mode": "progressive", "queue": "outbound", "state": "draft",
            "caller_id": "5551000", "caller_name": "ACME", "dial_template": "PJSIP/{digits}",
            "ring_timeout": 15, "max_attempts": 3,
            "retry": {"busy": {"delay": 600, "backoff": 1, "max": 3},
                      "no_answer": {"delay": 3600, "backoff": 1, "max": 2},
                      "failed": {"delay": 1800, "backoff": 1, "max": 2}},
            "windows": ["mon-fri 09:00-20:00"], "abandon_message": "custom/acme-abandon",
            **over}
        cols = list(row)
        vals = [Jsonb(v) if isinstance(v, (dict, list)) else v for v in row.values()]
        return self.q(f"INSERT INTO campaigns ({', '.join(cols)}) VALUES "
                      f"({', '.join(['%s'] * len(cols))}) RETURNING id", *vals)[0]["id"]

    def contacts(self, tenant_id: int, campaign_id: int,
                 rows: list[tuple[str, str | None]]) -> dict[str, int]:
        out = {}
        for e164, tz in rows:
            out[e164] = self.q("INSERT INTO campaign_contacts (tenant_id, campaign_id, e164, "
                               "timezone, name) VALUES (%s, %s, %s, %s, %s) RETURNING id",
                               tenant_id, campaign_id, e164, tz, f"Contact {e164[-2:]}")[0]["id"]
        return out

    def attempts(self, campaign_id: int) -> list[dict[str, Any]]:
        return self.q("SELECT * FROM campaign_attempts WHERE campaign_id = %s ORDER BY id",
                      campaign_id)

    def contact(self, contact_id: int) -> dict[str, Any]:
        return self.q("SELECT * FROM campaign_contacts WHERE id = %s", contact_id)[0]


@pytest.fixture
def db(db_url: str) -> Db:
    return Db(db_url)


# ------------------------------------------------------------------ the running stack


@dataclass
class Ccd:
    """One ccd instance: daemon (AMI link + model + writer) and campaign service."""

    daemon: Daemon
    svc: CampaignService
    scheduler: AsyncIOScheduler
    pool: Any
    writer: EventWriter
    agi: AgiServer | None = None
    events: list[DomainEvent] = field(default_factory=list)

    async def stop(self) -> None:
        await self.svc.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.agi is not None:
            await self.agi.close()
        await self.daemon.stop()
        await self.pool.close()


@dataclass
class Stack:
    sim: Simulator
    clock: Clock
    url: str
    tmp: Path
    instances: list[Ccd] = field(default_factory=list)

    async def ccd(self, name: str = "ccd-a", *, tick: float = 0.2, service: bool = True,
                  agi: AgiServer | None = None) -> Ccd:
        """Start a ccd instance connected to the simulator and the test database."""
        cfg = Config.model_validate({
            "data_dir": str(self.tmp / name), "ami": {"port": self.sim.ami_port},
            "model": {"outbound_contexts": ["ccd-campaign", "ccd-notify"]}})
        pool = await open_async_pool(self.url, max_size=6, name=name)
        writer = EventWriter(pool, self.tmp / name / "spool", flush_interval=0.05)
        await writer.start()
        daemon = Daemon(cfg, self.url)
        daemon.pool, daemon.writer = pool, writer
        daemon.bus.subscribe("store", writer.submit)
        scheduler = AsyncIOScheduler(timezone="UTC")
        svc = CampaignService(cfg, daemon, self.url, scheduler, clock=self.clock, tick=tick,
                              name=name)
        inst = Ccd(daemon, svc, scheduler, pool, writer, agi)
        daemon.bus.subscribe("test", inst.events.append)
        await daemon.start()
        await daemon.client.wait_connected(5)
        await until(lambda: len(daemon.model.agents) >= 2, 5, "agents known after resync")
        if service:
            await svc.start()
            scheduler.start()
        self.instances.append(inst)
        return inst

    def hang_up_answered(self, inst: Ccd, after: float = 0.5) -> None:
        """Contacts hang up ``after`` real seconds once an agent took their call."""
        loop = asyncio.get_running_loop()

        def on(e: DomainEvent) -> None:
            if e.kind != "answered":
                return
            call = inst.daemon.model.calls.get(e.call_id)  # type: ignore[attr-defined]
            if call is None:
                return
            endpoint = call.record.customer_channel.split("/", 1)[-1].rsplit("-", 1)[0]
            phone = self.sim.engine.phones.get(endpoint)
            if phone is not None:
                loop.call_later(after, phone.hangup)

        inst.daemon.bus.subscribe("hang-up", on)

    async def wake(self, inst: Ccd) -> None:
        """Let the scheduler see the clock's jump now."""
        inst.scheduler.wakeup()
        await asyncio.sleep(0.05)


async def until(pred: Callable[[], bool] | Callable[[], Awaitable[bool]], timeout: float,
                what: str, every: float = 0.05) -> None:
    """Wait (real seconds) until ``pred()`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(every)


@pytest.fixture
def wait_for() -> Callable[..., Awaitable[None]]:
    return until


def profiles(**over: PhoneProfile) -> dict[str, PhoneProfile]:
    """Contacts 1-12 answer after 2 s (simulated) unless told otherwise."""
    out = {f"155501000{i:02d}": PhoneProfile(answer="auto", answer_delay=2.0)
           for i in range(1, 13)}
    out.update(over)
    return out


@pytest.fixture
def phone() -> Callable[..., PhoneProfile]:
    return PhoneProfile


@pytest.fixture
async def stack(db_url: str, tmp_path: Path, clock: Clock,
                request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    """The simulated PBX and a factory of ccd instances (``await stack.ccd()``).

    Phone behaviour per endpoint comes from ``@pytest.mark.phones(endpoint=PhoneProfile)``
    (default: every contact answers after 2 simulated seconds).
    """
    marker = request.node.get_closest_marker("phones")
    phones = profiles(**(marker.kwargs if marker else {}))
    agi_mark = request.node.get_closest_marker("agi")
    agi: AgiServer | None = None
    agi_pool = None
    if agi_mark is not None:
        agi_pool = await open_async_pool(db_url, max_size=4, name="agi")
        agi = AgiServer(campaign_routes(agi_pool, recording_dir=tmp_path / "rec", clock=clock),
                        host="127.0.0.1", port=0)
        await agi.start()
    sim = Simulator(SimOptions(config_dir=PBX, ami_port=0, time_scale=SCALE, phones=phones,
                               agi=f"127.0.0.1:{agi.port}" if agi else ""))
    await sim.start()
    st = Stack(sim, clock, db_url, tmp_path)
    st.agi = agi  # type: ignore[attr-defined]
    try:
        yield st
    finally:
        for inst in reversed(st.instances):
            with contextlib.suppress(Exception):
                await inst.stop()
        await sim.stop()
        if agi is not None:
            await agi.close()
        if agi_pool is not None:
            await agi_pool.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "phones(**profiles): phone behaviour of the test PBX")
    config.addinivalue_line("markers", "agi: start the FastAGI server with the campaign routes")
