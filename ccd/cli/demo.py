"""``ccd demo`` (what ``make run`` starts): the whole call centre on one machine.

Embedded PostgreSQL with demo data, the simulated Asterisk generating live traffic, the
ccd daemon connected to it (AMI, FastAGI IVR, store, services, panel), the demo agents
logged in. Ctrl-C stops everything cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import click

from ccd import logs
from ccd.cli.main import EXIT_USAGE, Ctx, cli, pass_ctx
from ccd.cli.output import console
from ccd.config import Config
from ccd.demo_seed import AGENTS, seed
from ccd.store import migrate
from ccd.store.embedded import database_url

log = logging.getLogger("ccd.demo")


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def prompt_sounds(config: Config, seconds: float = 2.0) -> dict[str, float]:
    """The IVR flows' prompts, for the simulated Asterisk to "play" (a real one needs the
    recorded files under its sounds directory)."""
    from ccd.ivr.flow import BUILTIN_FLOWS, load_flows

    sounds: dict[str, float] = {}
    for flow in load_flows(config.ivr.flows_dir or BUILTIN_FLOWS).values():
        for prompts in flow.doc.prompts.values():
            for name in prompts.values():
                sounds[name] = seconds
    return sounds


def _banner(config: Config, info: dict[str, Any], sim_port: int, panel: Any,
            traffic: dict[str, Any]) -> None:
    console.print()
    console.print("[bold green]ccd demo is running[/]  (Ctrl-C stops everything)")
    console.print(f"  simulated Asterisk  AMI 127.0.0.1:{sim_port}, "
                  f"{traffic['calls_per_minute']:g} calls/min, {traffic['agents']} agents")
    console.print(f"  ccd daemon          FastAGI {config.agi.host}:{config.agi.port}, "
                  f"control socket {config.api_socket}")
    console.print(f"  database            embedded PostgreSQL under {config.data_dir}/pgdata")
    if panel is not None:
        console.print(f"  panel               [bold]http://{config.web.host}:{panel.port}[/]")
    console.print("  logins (user / role / password):")
    for user, role, password in info["users"]:
        console.print(f"    {user:<8} {role:<11} {password}")
    console.print("  try: [bold].venv/bin/ccd status[/], [bold].venv/bin/ccd agents[/], "
                  "[bold].venv/bin/ccd queues[/], [bold].venv/bin/ccd calls[/]")
    console.print()


def _install_prompts(config: Config, data: Path) -> Path | None:
    """The simulated Asterisk's data directory with ccd's prompts, as on a real PBX."""
    from ccd import prompts

    config.asterisk.data_dir = data / "asterisk"
    try:
        report = prompts.install(config.asterisk.data_dir)
    except prompts.PromptError as exc:
        log.warning("%s; the simulated PBX plays silent prompts instead", exc)
        config.asterisk.check_prompts = False
        return None
    if report.written:
        log.info("installed %d prompts under %s", len(report.written), config.asterisk.data_dir)
    return config.asterisk.sounds_dir


async def run_demo(config: Config, calls_per_minute: float, agents: int, handle_time: float,
                   time_scale: float, seed_value: int | None) -> None:
    """Start everything, log the agents in, wait for Ctrl-C / SIGTERM, stop everything."""
    from ccd.service import run_daemon
    from ccd.sim.simulator import SimOptions, Simulator
    from ccd.sim.traffic import Traffic, TrafficOptions
    from ccd.web.server import reserve_panel

    data = config.data_dir.resolve()
    recordings = (data / "spool" / "monitor").resolve()  # the PBX's ${ASTSPOOLDIR}/monitor
    config.recording.dir = recordings
    if config.agi.port == 4573:  # the demo never competes for the well-known port
        config.agi.port = _free_port(config.agi.host)
    config.web.cookie_secure = False  # the demo panel is plain http on localhost
    # the panel's port first, before the database and the simulator start
    panel_socket = reserve_panel(config) if config.web.enabled else None
    if panel_socket is None:
        config.web.enabled = False
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    with database_url(config) as url:
        await asyncio.to_thread(migrate.upgrade, url)
        info = await asyncio.to_thread(seed, url, data)
        config.database.url = url
        opts = SimOptions(ami_port=0, agi=f"{config.agi.host}:{config.agi.port}",
                          time_scale=time_scale, recording_root=recordings)
        opts.settings.umask = 0o027  # Asterisk as the README sets it up: files 0640
        opts.settings.sounds_dir = await asyncio.to_thread(_install_prompts, config, data)
        opts.settings.spool_dir = recordings.parent  # ${ASTSPOOLDIR}/monitor = recordings
        sim = Simulator(opts)
        await sim.start()
        config.ami.port = sim.ami_port
        traffic = Traffic(sim, TrafficOptions(calls_per_minute=calls_per_minute, agents=agents,
                                              handle_time=handle_time, seed=seed_value,
                                              auto_login=False))
        await traffic.start()
        ready = asyncio.Event()
        parts: dict[str, Any] = {}
        daemon_task = asyncio.create_task(run_daemon(config, ready=ready, extra=parts,
                                                     panel_socket=panel_socket))
        try:
            done, _ = await asyncio.wait({daemon_task, asyncio.create_task(ready.wait())},
                                         return_when=asyncio.FIRST_COMPLETED)
            if daemon_task in done:
                daemon_task.result()  # raises what stopped it
            daemon = parts["daemon"]
            await daemon.client.wait_connected(15)
            for _, interface, _ in AGENTS[:agents]:
                try:
                    await daemon.api.methods["agent"]({"action": "login", "agent": interface})
                except Exception as exc:  # show it, keep the demo running
                    log.error("could not log in %s: %s", interface, exc)
            _banner(config, info, sim.ami_port, parts.get("panel"),
                    {"calls_per_minute": calls_per_minute, "agents": agents})
            await asyncio.wait({daemon_task, asyncio.create_task(stop.wait())},
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            console.print("[yellow]stopping: daemon, simulated traffic, Asterisk, database[/]")
            if "daemon" in parts:
                parts["daemon"].request_stop()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(daemon_task, 30)
            await traffic.stop()
            await sim.stop()


@cli.command()
@click.option("--calls-per-minute", default=6.0, show_default=True, type=float)
@click.option("--agents", default=4, show_default=True, type=click.IntRange(1, len(AGENTS)))
@click.option("--handle-time", default=45.0, show_default=True, type=float,
              help="Mean talk seconds.")
@click.option("--time-scale", default=1.0, show_default=True, type=float,
              help="Simulated seconds per real second.")
@click.option("--seed", "seed_value", type=int, help="Reproduce the same traffic.")
@pass_ctx
def demo(ctx: Ctx, calls_per_minute: float, agents: int, handle_time: float,
         time_scale: float, seed_value: int | None) -> None:
    """Run the demo: embedded PostgreSQL, simulated Asterisk with traffic, ccd, panel."""
    cfg = ctx.config
    logs.setup(cfg.log.level, cfg.log.format)
    for noisy in ("ccd.sim", "ccd.ivr", "ccd.agi"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from ccd.web.server import PanelPortError

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_demo(cfg, calls_per_minute, agents, handle_time, time_scale,
                                 seed_value))
    except PanelPortError as exc:
        click.echo(f"ccd: {exc}", err=True)
        sys.exit(EXIT_USAGE)

