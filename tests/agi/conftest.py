"""FastAGI test fixtures: a server on a free loopback port, closed after the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from ccd.agi.server import AgiServer, Handler
from ccd.sim.clock import VirtualTimeLoop


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[AgiServer]]]:
    """``srv = await serve({"ivr": handler})``: a started AgiServer on 127.0.0.1:<free>."""
    servers: list[AgiServer] = []

    async def start(routes: Mapping[str, Handler], **kw: Any) -> AgiServer:
        srv = AgiServer(routes, host="127.0.0.1", port=0, **kw)
        await srv.start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        await srv.close()



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
