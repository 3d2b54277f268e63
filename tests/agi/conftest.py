"""FastAGI test fixtures: a server on a free loopback port, closed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from ccd.agi.server import AgiServer, Handler


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
