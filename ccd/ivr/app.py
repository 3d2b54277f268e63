"""Wiring: the AGI routes ccd serves (``ivr``), with their flows and storage.

Both the FastAGI server and ``ccd-agi`` (classic AGI) get their handlers from
:func:`open_routes`, so a call behaves the same whichever way Asterisk runs it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ccd.agi.server import Handler
from ccd.ivr.engine import Clock, IvrEngine, utc_now
from ccd.ivr.flow import BUILTIN_FLOWS, load_flows
from ccd.ivr.lookup import Directory, MemoryDirectory, PgDirectory

log = logging.getLogger("ccd.ivr")


@contextlib.asynccontextmanager
async def open_routes(*, flows_dir: str | Path | None = None, database_url: str | None = None,
                      pool: Any = None, directory: Directory | None = None,
                      default_flow: str = "support", default_country: str = "US",
                      clock: Clock = utc_now) -> AsyncIterator[dict[str, Handler]]:
    """The route table ``{"ivr": handler}``.

    Storage: ``directory`` if given; else PostgreSQL through ``pool`` (an
    ``AsyncConnectionPool``) or a pool opened on ``database_url`` (closed on exit); else
    in memory (no customers, paths kept in the process only).
    """
    flows = load_flows(flows_dir or BUILTIN_FLOWS)
    own_pool = None
    if directory is None:
        if pool is None and database_url:
            from ccd.store.db import open_async_pool

            pool = own_pool = await open_async_pool(database_url, name="ccd-ivr", max_size=4)
        if pool is not None:
            directory = PgDirectory(pool)
        else:
            log.warning("IVR without a database: no customer lookup, paths not stored")
            directory = MemoryDirectory()
    engine = IvrEngine(flows, directory, default_flow=default_flow,
                       default_country=default_country, clock=clock)
    try:
        yield {"ivr": engine.handle}
    finally:
        if own_pool is not None:
            await own_pool.close()
