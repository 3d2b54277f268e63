"""``ccd sim``: run the simulated Asterisk (AMI + FastAGI client + call engine)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import click

from ccd.cli.main import EXIT_ERROR, EXIT_USAGE, Ctx, cli, pass_ctx
from ccd.sim.conf import ConfError
from ccd.sim.phones import ANSWER_MODES, PhoneProfile
from ccd.sim.scenario import ScenarioError, ScenarioRunner, load_scenario
from ccd.sim.simulator import SimOptions, Simulator, default_config_dir
from ccd.sim.traffic import Traffic, TrafficOptions


def parse_phone(spec: str) -> tuple[str, PhoneProfile]:
    """``1003=never``, ``1005=offline``, ``1001=manual``, ``1002=auto:2.5`` (answer delay)."""
    endpoint, sep, mode = spec.partition("=")
    if not sep or not endpoint:
        raise click.BadParameter(f"{spec!r}: expected ENDPOINT=MODE")
    mode, _, delay = mode.partition(":")
    if mode == "offline":
        return endpoint, PhoneProfile(registered=False)
    if mode not in ANSWER_MODES:
        raise click.BadParameter(
            f"{spec!r}: mode must be offline or one of {', '.join(sorted(ANSWER_MODES))}"
        )
    return endpoint, PhoneProfile(answer=mode, answer_delay=float(delay) if delay else None)


@cli.command("sim")
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Asterisk configuration to load (default: the repository's asterisk-conf/).",
)
@click.option("--ami-host", help="Address for AMI (default: manager.conf bindaddr).")
@click.option("--ami-port", type=int, help="AMI port; 0 picks a free one (default: manager.conf).")
@click.option(
    "--agi",
    "agi",
    default="",
    metavar="HOST:PORT",
    help="Send every agi:// request to this FastAGI server (ccd's).",
)
@click.option(
    "--control-port",
    type=int,
    help="Open the control port (fault injection, calls); 0 picks a free one.",
)
@click.option(
    "--time-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Simulated seconds per real second.",
)
@click.option(
    "--recordings",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write MixMonitor WAV files under this directory.",
)
@click.option(
    "--sounds",
    type=click.Path(file_okay=False, path_type=Path),
    help="Asterisk's sounds directory: only files there play (default: Asterisk's core "
    "sounds and ccd's prompts are taken as installed).",
)
@click.option(
    "--phone",
    "phones",
    multiple=True,
    metavar="ENDPOINT=MODE",
    help="Phone behaviour: auto, manual, never, busy, reject, congestion, offline.",
)
@click.option(
    "--calls-per-minute",
    type=float,
    default=0.0,
    show_default=True,
    help="Generate inbound traffic at this rate (0 = none).",
)
@click.option(
    "--agents",
    type=int,
    default=3,
    show_default=True,
    help="Simulated agents answering the queues.",
)
@click.option(
    "--handle-time", type=float, default=120.0, show_default=True, help="Mean talk time in seconds."
)
@click.option(
    "--patience",
    type=float,
    default=90.0,
    show_default=True,
    help="Mean seconds a caller waits in a queue before hanging up.",
)
@click.option("--seed", type=int, help="Seed of the traffic's randomness.")
@click.option(
    "--scenario",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Run a scripted scenario (TOML); exit with its result.",
)
@click.option("--keep-running", is_flag=True, help="Stay up after the scenario finished.")
@pass_ctx
def sim(
    ctx: Ctx,
    config_dir: Path | None,
    ami_host: str | None,
    ami_port: int | None,
    agi: str,
    control_port: int | None,
    time_scale: float,
    recordings: Path | None,
    sounds: Path | None,
    phones: tuple[str, ...],
    calls_per_minute: float,
    agents: int,
    handle_time: float,
    patience: float,
    seed: int | None,
    scenario: Path | None,
    keep_running: bool,
) -> None:
    """Run a simulated Asterisk 22 for ccd: AMI on TCP, FastAGI to ccd, a call engine.

    The first line printed names the ports bound. Faults from outside: SIGUSR1 drops the
    AMI links, SIGUSR2 restarts Asterisk; the control port (--control-port) takes
    'status', 'drop', 'restart', 'stop', 'start', 'stall', 'slow', 'call' ... one per line.
    """
    if time_scale <= 0:
        raise click.BadParameter("must be positive", param_hint="--time-scale")
    options = SimOptions(
        config_dir=config_dir or default_config_dir(),
        ami_host=ami_host,
        ami_port=ami_port,
        agi=agi,
        control_port=control_port,
        time_scale=time_scale,
        recording_root=recordings,
        phones=dict(parse_phone(p) for p in phones),
    )
    options.settings.sounds_dir = sounds
    traffic = None
    if calls_per_minute > 0:
        traffic = TrafficOptions(
            calls_per_minute=calls_per_minute,
            agents=agents,
            handle_time=handle_time,
            patience=patience,
            seed=seed,
        )
    try:
        code = asyncio.run(_serve(options, traffic, scenario, keep_running))
    except (ConfError, ScenarioError) as exc:
        click.echo(f"ccd sim: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        click.echo(f"ccd sim: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(code)


async def _serve(
    options: SimOptions,
    traffic_opts: TrafficOptions | None,
    scenario_path: Path | None,
    keep_running: bool,
) -> int:
    scenario = load_scenario(scenario_path) if scenario_path else None
    simulator = Simulator(options)
    await simulator.start()
    agi = options.agi or "the dialplan's agi:// URLs"
    control = (
        f", control {options.control_host}:{simulator.control_port}"
        if simulator.control_port is not None
        else ""
    )
    click.echo(
        f"ccd sim: AMI {simulator.ami_host}:{simulator.ami_port}{control}, "
        f"FastAGI -> {agi}, time x{options.time_scale:g}"
    )
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handlers = {
        signal.SIGINT: stop.set,
        signal.SIGTERM: stop.set,
        signal.SIGUSR1: lambda: simulator.drop_links(),
        signal.SIGUSR2: lambda: loop.create_task(simulator.restart()),
    }
    for sig, fn in handlers.items():
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, fn)
    traffic = Traffic(simulator, traffic_opts) if traffic_opts else None
    code = 0
    try:
        if traffic is not None:
            await traffic.start()
        if scenario is not None:
            result = await ScenarioRunner(simulator, scenario).run()
            for line in result.log:
                click.echo(f"  {line}")
            if result.ok:
                click.echo(f"ccd sim: scenario {scenario.name}: ok")
            else:
                for failure in result.failures:
                    click.echo(f"ccd sim: scenario {scenario.name}: {failure}", err=True)
                code = EXIT_ERROR
            if not keep_running:
                stop.set()
        await stop.wait()
    finally:
        if traffic is not None:
            await traffic.stop()
            s = traffic.stats
            click.echo(
                f"ccd sim: {s.offered} calls offered, {s.answered} answered, "
                f"{s.abandoned} abandoned"
            )
        await simulator.stop()
        for sig in handlers:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return code
