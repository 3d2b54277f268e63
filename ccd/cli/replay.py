"""``ccd replay FILE``: explain calls from a saved AMI stream."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ccd.ami.capture import timed_chunks
from ccd.ami.ingest import Ingest
from ccd.cli.main import EXIT_NOT_FOUND, EXIT_UNAVAILABLE, Ctx, cli, pass_ctx
from ccd.model.domain import CallEnded, DomainEvent
from ccd.model.live import LiveModel


def replay_file(path: Path, model: LiveModel) -> tuple[list[DomainEvent], Ingest]:
    """Run a recorded AMI stream through the real ingest path; flush wrap-ups at the end."""
    return replay_bytes(path.read_bytes(), model)


def replay_bytes(data: bytes, model: LiveModel) -> tuple[list[DomainEvent], Ingest]:
    """:func:`replay_file` for a capture already in memory."""
    ingest = Ingest(model)
    events: list[DomainEvent] = []
    for now, chunk in timed_chunks(data):
        events.extend(ingest.feed(chunk, now))
    tail = ingest.splitter.close()
    if tail:
        events.extend(ingest.frame(tail))
    events.extend(model.tick(model.last_ts + 3600))
    return events, ingest


def _t(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


def _secs(v: float | None) -> str:
    return "?" if v is None else f"{v:.3f}"  # None: the end of the call is not known


def _summary(e: dict[str, Any]) -> str:
    skip = {"kind", "ts", "call_id", "record"}
    return " ".join(f"{k}={v}" for k, v in e.items() if k not in skip and v not in ("", None, []))


def _replay_and_store(ctx: Ctx, file: Path, model: LiveModel
                      ) -> tuple[list[DomainEvent], Ingest, dict[str, int]]:
    """Replay with the database's queue wrap-up times (as the daemon's model has them),
    then write the events into it; exit 3 if it is unreachable."""
    import logging

    from ccd.store import migrate
    from ccd.store.backfill import configure, store_events_sync
    from ccd.store.db import DatabaseUnavailable
    from ccd.store.embedded import database_url

    config = ctx.config
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        with database_url(config) as url:
            migrate.upgrade(url)
            configure(model, url)
            events, ingest = replay_file(file, model)
            res = store_events_sync(config, url, events)
    except (DatabaseUnavailable, TimeoutError, OSError) as exc:
        click.echo(f"ccd replay: the events could not be stored: {exc or 'timed out'}\n"
                   "nothing is half-done: run the same command again when the database is "
                   "reachable (events already stored are skipped)", err=True)
        sys.exit(EXIT_UNAVAILABLE)
    return events, ingest, {"written": res.written, "already_stored": res.duplicates,
                            "refused": res.rejected}


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--agents/--no-agents", default=True, help="Include agent state changes.")
@click.option("--store", "store", is_flag=True,
              help="Also write what is derived into the configured database (backfill; "
                   "idempotent: events already stored are skipped).")
@pass_ctx
def replay(ctx: Ctx, file: Path, as_json: bool, agents: bool, store: bool) -> None:
    """Replay a recorded AMI stream and show the domain events and call records.

    FILE holds raw AMI frames as Asterisk sent them; lines starting with '#'
    (the captures' comments) are ignored. With --store the events go through the
    daemon's writer into the database, so `ccd report` shows them.
    """
    if not file.exists():
        click.echo(f"ccd replay: {file}: no such file", err=True)
        sys.exit(EXIT_NOT_FOUND)
    model = LiveModel(ctx.config.model_config_obj())
    stored: dict[str, int] | None = None
    if store:
        events, ingest, stored = _replay_and_store(ctx, file, model)
    else:
        events, ingest = replay_file(file, model)
    if not agents:
        events = [e for e in events if e.kind != "agent_state"]
    calls = [e.record for e in events if isinstance(e, CallEnded)]
    if as_json:
        out = {
            "events": [{k: v for k, v in e.to_dict().items() if k != "record"} for e in events],
            "calls": [c.to_dict() for c in calls],
            "stats": {"frames": ingest.stats.frames, "events": ingest.stats.events,
                      "malformed": ingest.stats.malformed,
                      "model_errors": ingest.stats.model_errors,
                      "open_calls": len(model.calls)},
        }
        if stored is not None:
            out["stored"] = stored
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    console = Console()
    t = Table(title=f"Domain events ({file.name})", show_lines=False)
    for col in ("time", "call", "event", "details"):
        t.add_column(col, overflow="fold")
    for e in events:
        d = e.to_dict()
        t.add_row(_t(e.ts), d.get("call_id", d.get("agent", "")), e.kind, _summary(d))
    console.print(t)
    c = Table(title="Call records")
    for col in ("call", "dir", "DID", "caller", "queue", "wait s", "agent", "outcome",
                "hangup by", "talk s", "total s", "recording"):
        c.add_column(col, overflow="fold")
    for r in calls:
        caller = f"{r.caller_name} <{r.caller_num}>" if r.caller_name else r.caller_num
        c.add_row(r.call_id, r.direction, r.did, caller, r.queue,
                  "" if r.queue_wait is None else f"{r.queue_wait:.3f}", r.agent, r.outcome,
                  r.hangup_by, _secs(r.talk_seconds), _secs(r.total_seconds),
                  "\n".join(Path(x).name for x in r.recordings))
    console.print(c)
    if stored is not None:
        console.print(f"stored {stored['written']} events ({stored['already_stored']} were "
                      f"already stored, {stored['refused']} refused)")
    if ingest.stats.malformed or model.calls:
        console.print(f"[yellow]{ingest.stats.malformed} malformed frames skipped, "
                      f"{len(model.calls)} calls still open at the end of the stream[/]")
