"""IVR test harness: the real FastAGI server with the IVR routes, driven over loopback by
the simulator's FastAGI client with a scripted caller."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ccd.agi.server import AgiServer
from ccd.ivr.app import open_routes
from ccd.ivr.flow import BUILTIN_FLOWS
from ccd.ivr.lookup import Directory, MemoryDirectory
from ccd.sim.agi_client import ScriptedChannel, run_fastagi
from ccd.sim.clock import VirtualTimeLoop

TEST_FLOWS = Path(__file__).with_name("flows")
#: Tuesday 2026-11-24 10:00 in Shanghai: the support calendar is open
OPEN = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


class Ivr:
    """``await ivr.call(channel)`` -> AGISTATUS, with the server and directory at hand."""

    def __init__(self) -> None:
        self.server: AgiServer | None = None
        self.directory: Any = None
        self._cm: Any = None
        self.now = OPEN

    async def start(self, directory: Directory | None = None, flows: Path | None = None,
                    **kw: Any) -> Ivr:
        self.directory = directory if directory is not None else MemoryDirectory()
        self._cm = open_routes(flows_dir=flows or self.flows_dir(), directory=self.directory,
                               clock=lambda: self.now, **kw)
        routes = await self._cm.__aenter__()
        self.server = AgiServer(routes, host="127.0.0.1", port=0)
        await self.server.start()
        return self

    @staticmethod
    def flows_dir() -> Path:
        return BUILTIN_FLOWS

    async def call(self, channel: ScriptedChannel, script: str = "ivr") -> str:
        assert self.server is not None
        return await run_fastagi(f"agi://127.0.0.1:{self.server.port}/{script}", channel)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()
        if self._cm is not None:
            await self._cm.__aexit__(None, None, None)


@pytest.fixture
def flows_dir(tmp_path: Path) -> Path:
    """The built-in flows plus tests/ivr/flows/*.toml in one directory."""
    d = tmp_path / "flows"
    d.mkdir()
    for p in [*BUILTIN_FLOWS.glob("*.toml"), *TEST_FLOWS.glob("*.toml")]:
        shutil.copy(p, d / p.name)
    return d


@pytest.fixture
async def ivr(flows_dir: Path) -> AsyncIterator[Callable[..., Any]]:
    """``h = await ivr(directory=..., now=...)``: a started harness (closed after the test)."""
    made: list[Ivr] = []

    async def start(directory: Directory | None = None, now: datetime = OPEN,
                    flows: Path | None = None, **kw: Any) -> Ivr:
        h = Ivr()
        h.now = now
        await h.start(directory, flows or flows_dir, **kw)
        made.append(h)
        return h

    yield start
    for h in made:
        await h.close()



def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Virtual time (:class:`ccd.sim.clock.VirtualTimeLoop`) for the tests whose peers all
    live in the test's event loop: timeouts, polls and pauses then happen in a fixed order
    and take exact durations however loaded the machine is. Tests that talk to another
    process (PostgreSQL, a subprocess: marked ``realtime``) run on an ordinary loop."""
    if item.get_closest_marker("realtime") or {"db_url", "pg_server_url"} & set(
        getattr(item, "fixturenames", ())
    ):
        return {"realtime": asyncio.new_event_loop}
    return {"virtual-time": VirtualTimeLoop}
