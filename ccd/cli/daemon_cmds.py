"""``ccd run`` (the daemon) and ``ccd status`` (asks the running daemon)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ccd import logs
from ccd.api import ApiError, call_sync
from ccd.cli.main import EXIT_ERROR, EXIT_USAGE, Ctx, cli, pass_ctx
from ccd.config import Config


def fail(exc: ApiError) -> None:
    """Print an API error and exit with its code."""
    click.echo(f"ccd: {exc}", err=True)
    sys.exit(exc.code or EXIT_ERROR)


def api(config: Config, method: str, params: dict[str, Any] | None = None) -> Any:
    """Call the daemon, turning failures into a clear message and exit code."""
    try:
        return call_sync(config, method, params)
    except ApiError as exc:
        fail(exc)
    except OSError as exc:
        fail(ApiError(f"cannot reach the daemon: {exc}", code=3))


@cli.command()
@pass_ctx
def run(ctx: Ctx) -> None:
    """Run the daemon: AMI link, live model, store, control API. Stops on SIGTERM.

    Exits 2 before starting anything if the panel's ``[web] host:port`` cannot be bound
    (unless ``[web] optional = true``: then it warns and runs without the panel)."""
    cfg = ctx.config
    logs.setup(cfg.log.level, cfg.log.format)
    from ccd.ivr.flow import FlowError
    from ccd.prompts import PromptError
    from ccd.service import run_daemon
    from ccd.web.server import PanelPortError

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_daemon(cfg))
    except (PanelPortError, PromptError, FlowError) as exc:
        click.echo(f"ccd: {exc}", err=True)
        sys.exit(EXIT_USAGE)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status(ctx: Ctx, as_json: bool) -> None:
    """Link state, event rate and calls in progress of the running daemon."""
    st = api(ctx.config, "status")
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    a, e = st["ami"], st["events"]
    t = Table(show_header=False, title="ccd status")
    t.add_column("what", style="bold")
    t.add_column("value")
    colour = "green" if a["state"] == "connected" else "red"
    t.add_row("AMI link", f"[{colour}]{a['state']}[/] {a['host']} {a['banner']}")
    t.add_row("reconnects", f"{a['connects']} connects, {a['disconnects']} drops"
              + (f" (last: {a['last_error']})" if a["last_error"] else ""))
    if a.get("ping_rtt_ms") is not None:
        t.add_row("ping", f"{a['ping_rtt_ms']} ms, {a['ping_timeouts']} timeouts")
    t.add_row("events", f"{e['rate_per_s']}/s, {e['total']} total, {e['malformed']} malformed,"
              f" {e['handler_errors']} handler errors"
              + (f", {e['bad_timestamps']} bad timestamps replaced"
                 if e.get("bad_timestamps") else ""))
    t.add_row("calls in progress", str(st["calls_in_progress"]))
    t.add_row("waiting in queue", str(st["waiting_in_queue"]))
    t.add_row("agents known", str(st["agents"]))
    t.add_row("resyncs", str(st["resyncs"]))
    if st.get("database"):
        t.add_row("database", st["database"])
    if st.get("agi"):
        g = st["agi"]
        t.add_row("FastAGI", f"port {g['port']}: {g['active']} active, {g['completed']} done, "
                  f"{g['fallbacks']} sent to fallback, {g['rejected']} rejected")
    if st.get("store"):
        t.add_row("store", " ".join(f"{k}={v}" for k, v in st["store"].items()))
    t.add_row("uptime", f"{st['uptime']} s")
    Console().print(t)
