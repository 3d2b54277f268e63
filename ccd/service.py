"""Composition root of ``ccd run``: database (embedded or configured), migrations, the
event writer, the daemon and its services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any

from ccd import prompts
from ccd.agi.server import AgiServer
from ccd.bridge import DaemonBridge
from ccd.campaigns.agi import campaign_routes
from ccd.config import Config, redact_url
from ccd.daemon import Daemon
from ccd.heap import settle_heap
from ccd.ivr.app import open_routes
from ccd.services.wiring import Services
from ccd.store import migrate
from ccd.store.db import DatabaseUnavailable, open_async_pool
from ccd.store.embedded import database_url
from ccd.store.known import open_calls
from ccd.store.writer import EventWriter
from ccd.web.server import Panel, register_methods, reserve_panel, start_panel

log = logging.getLogger(__name__)


def check_prompts(config: Config) -> None:
    """Every prompt the flows, dialplan and surveys play exists (raises PromptError)."""
    from ccd.ivr.flow import BUILTIN_FLOWS, load_flows

    flows = load_flows(config.ivr.flows_dir or BUILTIN_FLOWS)
    prompts.startup_check(config.asterisk.sounds_dir, flows, log.warning)


async def _migrate_until_done(url: str, retry: float) -> None:
    """Apply migrations; while the database is unreachable, keep trying in the background."""
    while True:
        try:
            applied = await asyncio.to_thread(migrate.upgrade, url)
        except DatabaseUnavailable as exc:
            log.error("database unreachable (%s); events are spooled until it returns", exc)
            await asyncio.sleep(retry)
            continue
        if applied:
            log.info("applied %d migrations: %s", len(applied),
                     ", ".join(m.filename for m in applied))
        return


async def run_daemon(config: Config, *, ready: asyncio.Event | None = None,
                     extra: dict[str, Any] | None = None,
                     panel_socket: socket.socket | None = None) -> None:
    """Run ccd until SIGTERM/SIGINT (or until the returned task is cancelled).

    The panel's ``[web] host:port`` is bound first, before the database, AMI or anything
    else is touched: a taken port raises :class:`ccd.web.server.PanelPortError` (``ccd
    run`` exits 2), or with ``[web] optional = true`` ccd runs without the panel. A caller
    that already bound it (``ccd demo``) passes ``panel_socket``.
    """
    if config.asterisk.check_prompts:
        check_prompts(config)
    if panel_socket is None and config.web.enabled:
        panel_socket = reserve_panel(config)
    try:
        await _run(config, ready, extra, panel_socket)
    finally:
        if panel_socket is not None:
            panel_socket.close()  # never served (start-up failed); closing twice is harmless


async def _run(config: Config, ready: asyncio.Event | None, extra: dict[str, Any] | None,
               panel_socket: socket.socket | None) -> None:
    with database_url(config) as url:
        log.info("database %s", redact_url(url))
        migrating = asyncio.create_task(_migrate_until_done(url, config.store.retry_interval))
        try:
            await asyncio.wait_for(asyncio.shield(migrating), 30)
        except TimeoutError:
            log.warning("migrations not done after 30 s; starting anyway, they keep retrying")
        pool = await open_async_pool(url, min_size=config.database.pool_min,
                                     max_size=config.database.pool_max, name="ccd")
        writer = EventWriter.from_config(config, pool)
        await writer.start()
        daemon = Daemon(config, url)
        daemon.writer = writer
        daemon.pool = pool
        daemon.bus.subscribe("store", writer.submit)

        async def known_calls() -> dict[str, Any]:
            # what the previous run left in the spool first, then the calls still open
            with contextlib.suppress(TimeoutError):
                await writer.flush(15)
            return await open_calls(pool)
        daemon.known_loader = known_calls
        services = Services(config, daemon, url)
        if extra is not None:
            extra["daemon"] = daemon
            extra["services"] = services
        agi: AgiServer | None = None
        panel: Panel | None = None
        try:
            async with open_routes(flows_dir=config.ivr.flows_dir, pool=pool,
                                   default_flow=config.ivr.default_flow,
                                   default_country=config.ivr.default_country) as routes:
                agi = AgiServer.from_config(config.agi, routes)
                # post-call survey and notification calls: a failure there must not put the
                # caller back in a queue, so they do not use the IVR fallback
                for name, handler in campaign_routes(
                        pool, recording_dir=config.recording.dir,
                        dir_mode=config.recording.dir_mode_bits).items():
                    agi.route(name, handler, fallback=False)
                await agi.start()
                daemon.agi = agi
                await services.start()
                await daemon.start()
                if panel_socket is not None:
                    register_methods(daemon, services)  # API method "stats.today"
                    bridge = DaemonBridge(daemon, asyncio.get_running_loop())
                    try:
                        panel = await asyncio.to_thread(start_panel, config, bridge, url,
                                                        panel_socket)
                    except OSError as exc:
                        log.error("panel not started on %s:%s: %s", config.web.host,
                                  config.web.port, exc)
                    if extra is not None:
                        extra["panel"] = panel
                settle_heap()  # after start-up: keeps full GCs off the event loop
                if ready is not None:
                    ready.set()
                await daemon.wait_stopped()
        finally:
            if panel is not None:
                await asyncio.to_thread(panel.stop)
            if agi is not None:
                await agi.close()
            await services.stop()
            await daemon.stop()
            migrating.cancel()
            await pool.close()
