"""``ccd tenants dial-patterns SLUG``: which numbers a tenant's agents may dial, and the
explicit choices that allow more (see :mod:`ccd.services.dialing`)."""

from __future__ import annotations

import getpass
import json
import logging
import sys
from typing import Any

import click
import psycopg

from ccd.cli.admin import fail, tenants
from ccd.cli.dbctx import open_db
from ccd.cli.main import EXIT_NOT_FOUND, EXIT_USAGE, Ctx, pass_ctx
from ccd.cli.output import console, ok
from ccd.services.dialing import INTERNATIONAL, compile_patterns, describe

log = logging.getLogger(__name__)


def _national(conn: psycopg.Connection[Any], country: str) -> list[str]:
    row = conn.execute("SELECT ccd_national_dial_patterns(%s)", (country,)).fetchone()
    return list(row[0]) if row and row[0] else []


def _show(slug: str, patterns: list[str], country: str, as_json: bool) -> None:
    a = describe(patterns, country)
    if as_json:
        click.echo(json.dumps({"tenant": slug, **a.to_dict()}, indent=2, ensure_ascii=False))
        return
    console.print(f"[bold]dial patterns of {slug}[/] (country {country}; matched against "
                  "E.164):", markup=True, highlight=False)
    for p in patterns or ["(none)"]:
        click.echo(f"  {p}")
    for line in a.lines():
        style = "yellow" if line.startswith("WIDER") else ""
        console.print(f"  [{style}]{line}[/]" if style else f"  {line}", markup=bool(style),
                      highlight=False)


@tenants.command("dial-patterns")
@click.argument("slug")
@click.option("--national", is_flag=True,
              help="Back to the national-only default of the tenant's country (premium-rate "
                   "ranges excluded); drops every other pattern.")
@click.option("--allow-country", "countries", multiple=True, metavar="CC",
              help="Also the national numbers of country CC (international calls to it, its "
                   "premium-rate ranges still excluded).")
@click.option("--allow-international", is_flag=True,
              help="Also EVERY number in E.164: every country, premium-rate and satellite "
                   f"numbers included ({INTERNATIONAL}).")
@click.option("--add-pattern", "add", multiple=True, metavar="REGEX",
              help="A pattern of your own (full match against E.164); needs --confirm when it "
                   "allows more than national numbers.")
@click.option("--remove-pattern", "remove", multiple=True, metavar="REGEX")
@click.option("--confirm", is_flag=True, help="Yes, --add-pattern may allow more.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def dial_patterns(ctx: Ctx, slug: str, national: bool, countries: tuple[str, ...],
                  allow_international: bool, add: tuple[str, ...], remove: tuple[str, ...],
                  confirm: bool, as_json: bool) -> None:
    """Show (or change) the numbers tenant SLUG may dial: click-to-dial, transfers to
    numbers and campaign contacts. Every change is recorded in dial_pattern_changes."""
    with open_db(ctx.config) as conn:
        row = conn.execute("SELECT id, default_country, dial_patterns FROM tenants "
                           "WHERE slug = %s", (slug,)).fetchone()
        if row is None:
            fail(f"no tenant {slug!r} (`ccd tenants` lists them)", EXIT_NOT_FOUND)
        tid, country, current = row[0], row[1], list(row[2] or [])
        if not (national or countries or allow_international or add or remove):
            _show(slug, current, country, as_json)
            return
        new = _national(conn, country) if national else list(current)
        why = ["--national: national numbers of " + country] if national else []
        for cc in (c.upper() for c in countries):
            pats = _national(conn, cc)
            if not pats:
                fail(f"ccd has no number plan for country {cc!r}; use --add-pattern",
                     EXIT_USAGE)
            new += [p for p in pats if p not in new]
            why.append(f"--allow-country {cc}: national numbers of {cc}")
        if allow_international and INTERNATIONAL not in new:
            new.append(INTERNATIONAL)
        if allow_international:
            why.append("--allow-international: every E.164 number, premium-rate and "
                       "satellite included")
        _, bad = compile_patterns(list(add))
        if bad:
            fail(f"not a valid regular expression: {', '.join(bad)}", EXIT_USAGE)
        before_custom = describe(new, country)
        new += [p for p in add if p not in new]
        if add:
            why.append("--add-pattern " + " ".join(add))
        missing = [p for p in remove if p not in new]
        if missing:
            fail(f"tenant {slug} has no pattern {', '.join(missing)}", EXIT_USAGE)
        new = [p for p in new if p not in remove]
        if remove:
            why.append("--remove-pattern " + " ".join(remove))
        after = describe(new, country)
        widened = {what: [x for x in getattr(after, key) if x not in getattr(before_custom, key)]
                   for key, what in (("countries", "international calls to"),
                                     ("premium", "premium-rate / special numbers"),
                                     ("far", "satellite / far international numbers"),
                                     ("short", "short codes sent to the trunk"))}
        if add and any(widened.values()) and not confirm:
            click.echo(f"ccd: --add-pattern would let {slug} dial more than national numbers:",
                       err=True)
            for what, items in widened.items():
                if items:
                    click.echo(f"  {what}: {'; '.join(items)}", err=True)
            click.echo("run again with --confirm if that is what you want", err=True)
            sys.exit(EXIT_USAGE)
        reason = "; ".join(why)
        actor = f"ccd tenants dial-patterns ({getpass.getuser()})"
        with conn.transaction():
            conn.execute("SELECT set_config('ccd.dial_reason', %s, true), "
                         "set_config('ccd.dial_actor', %s, true)", (reason, actor))
            conn.execute("UPDATE tenants SET dial_patterns = %s WHERE id = %s", (new, tid))
    level = logging.WARNING if after.wider_than_national else logging.INFO
    log.log(level, "tenant %s dial patterns changed by %s (%s): %s -> %s", slug, actor, reason,
            current, new)
    if not as_json:
        ok(f"dial patterns of {slug} changed ({reason})")
    _show(slug, new, country, as_json)
