"""``ccd prompts``: install the sounds ccd's call flows play, and check that they exist."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.progress import Progress

from ccd import prompts as p
from ccd.cli.main import EXIT_ERROR, EXIT_USAGE, Ctx, cli, pass_ctx
from ccd.cli.output import ok


def _data_dir(ctx: Ctx, given: str | None) -> Path:
    return Path(given) if given else ctx.config.asterisk.data_dir


def needed(ctx: Ctx) -> p.Needed:
    """What ccd plays with this configuration: its flows, dialplan, surveys, notifications."""
    from ccd.ivr.flow import BUILTIN_FLOWS, FlowError, load_flows

    try:
        flows = load_flows(ctx.config.ivr.flows_dir or BUILTIN_FLOWS)
    except FlowError as exc:
        click.echo(f"ccd: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    return p.needed_by_ccd(flows)


@cli.group()
def prompts() -> None:
    """The IVR's, dialplan's, surveys' and notifications' sounds (install, check, list)."""


@prompts.command("install")
@click.option("--data-dir", help="Asterisk's data directory (astdatadir); default "
              "[asterisk] data_dir.")
@click.option("--force", is_flag=True, help="Rewrite files that exist (your recordings too).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def install(ctx: Ctx, data_dir: str | None, force: bool, as_json: bool) -> None:
    """Synthesise the missing prompts (espeak-ng + sox, 8 kHz WAV) where Asterisk looks."""
    target = _data_dir(ctx, data_dir)
    total = len(p.catalogue())
    try:
        if as_json:
            report = p.install(target, force=force)
        else:
            with Progress(transient=True) as bar:
                task = bar.add_task(f"prompts -> {target}", total=total)
                report = p.install(target, force=force,
                                   progress=lambda _s, _w: bar.advance(task))
    except p.PromptError as exc:
        click.echo(f"ccd: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    ok(f"{len(report.written)} prompts written, {len(report.kept)} kept, under {target}")


@prompts.command("check")
@click.option("--data-dir", help="Asterisk's data directory (astdatadir).")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def check(ctx: Ctx, data_dir: str | None, as_json: bool) -> None:
    """Every sound ccd plays, checked the way Asterisk looks for it; exit 1 if one is missing."""
    target = _data_dir(ctx, data_dir)
    missing = p.check(target / "sounds", needed(ctx))
    if as_json:
        click.echo(json.dumps({"sounds_dir": str(target / "sounds"), "missing": missing},
                              indent=2))
    elif missing:
        click.echo(f"{len(missing)} prompts missing under {target / 'sounds'}:")
        for line in missing:
            click.echo(f"  {line}")
        click.echo("install them with: ccd prompts install")
    else:
        ok(f"every prompt ccd plays is under {target / 'sounds'}")
    if missing:
        sys.exit(EXIT_ERROR)


@prompts.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json: bool) -> None:
    """The prompts ccd ships (path under sounds/ or moh/, what it says)."""
    rows = [{"path": s.path, "kind": s.kind, "text": s.text} for s in p.catalogue()]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for r in rows:
        click.echo(f"{r['path']:<32} {r['kind']:<7} {r['text']}")
