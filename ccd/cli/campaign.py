"""``ccd campaign ...`` (outbound campaigns, do-not-call lists) and ``ccd report surveys``.

Set-up, import, reports and do-not-call work on the database directly; ``start``,
``pause``, ``stop`` go through the running daemon (it dials); ``status`` asks the daemon
and falls back to the database's figures when it is not running.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import psycopg
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ccd.api import ApiError, call_sync
from ccd.campaigns import rules
from ccd.campaigns import store as db
from ccd.campaigns.importer import ContactRow, ImportFormatError, Rejected, read_contacts
from ccd.campaigns.model import Campaign, CampaignError, validate
from ccd.campaigns.pacer import PacerStats
from ccd.campaigns.windows import WindowError, zone
from ccd.cli.admin import _integrity, fail
from ccd.cli.admin import report as report_group
from ccd.cli.daemon_cmds import api
from ccd.cli.dbctx import open_db, rows, tenant_id
from ccd.cli.main import (
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Ctx,
    cli,
    pass_ctx,
)
from ccd.cli.output import ok, show
from ccd.ivr.phone import to_e164


def _find(conn: psycopg.Connection[Any], ident: str, tenant: str | None) -> dict[str, Any]:
    found = db.sync_rows(conn, db.FIND_CAMPAIGN, {"ident": ident,
                                                  "tenant": tenant_id(conn, tenant)})
    if not found:
        fail(f"no campaign {ident!r} (`ccd campaign` lists them)", EXIT_NOT_FOUND)
    if len(found) > 1:
        fail(f"{ident!r} names campaigns of several tenants: add --tenant", EXIT_USAGE)
    return found[0]


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        lang, sep, sound = v.partition("=")
        if not sep or not lang or not sound:
            fail(f"{what} {v!r}: use LANG=SOUND, e.g. en=custom/reminder-en", EXIT_USAGE)
        out[lang.strip()] = sound.strip()
    return out


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{text!r} is not an ISO time like 2030-01-07T09:00:00+01:00", EXIT_USAGE)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# ------------------------------------------------------------------ campaigns


@cli.group(invoke_without_command=True)
@click.option("--tenant", help="Only this tenant (slug).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def campaign(click_ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """Outbound campaigns (`ccd campaign create` to make one)."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Ctx = click_ctx.obj
    with open_db(ctx.config) as conn:
        tid = tenant_id(conn, tenant)
        data = rows(conn, "SELECT c.id, t.slug AS tenant, c.name, c.kind, c.dial_mode AS mode, "
                    "c.state, c.queue, (SELECT count(*) FROM campaign_contacts x WHERE "
                    "x.campaign_id = c.id) AS contacts, (SELECT count(*) FROM campaign_contacts "
                    "x WHERE x.campaign_id = c.id AND x.status IN ('pending', 'dialing', "
                    "'preview')) AS open FROM campaigns c JOIN tenants t ON t.id = c.tenant_id "
                    "WHERE (%s::bigint IS NULL OR c.tenant_id = %s::bigint) ORDER BY c.id",
                    tid, tid)
    show(data, [("id", "id"), ("tenant", "tenant"), ("name", "name"), ("kind", "kind"),
                ("mode", "mode"), ("state", "state"), ("queue", "queue"),
                ("contacts", "contacts"), ("open", "to call")], title="Campaigns",
         as_json=as_json)


@campaign.command("create")
@click.argument("name")
@click.option("--tenant", default="default", show_default=True)
@click.option("--kind", type=click.Choice(["agents", "notify"]), default="agents",
              show_default=True, help="notify: recorded message, no agents.")
@click.option("--mode", type=click.Choice(["preview", "progressive", "predictive"]),
              default="progressive", show_default=True, help="Dial mode (agent campaigns).")
@click.option("--queue", default="", help="The agents' queue (agent campaigns; notifications: "
              "where 2 = talk to an agent goes).")
@click.option("--caller-id", default="", help="Number presented to the contact (digits).")
@click.option("--caller-name", default="")
@click.option("--dial-template", default="PJSIP/{e164}@trunk", show_default=True,
              help="Originate channel; {e164} = +15551234567, {digits} = 15551234567.")
@click.option("--context", default="", help="Dialplan context (default: ccd-campaign, "
              "ccd-campaign-preview or ccd-notify).")
@click.option("--ring-timeout", type=click.IntRange(15, 120), default=20, show_default=True,
              help="Seconds a call rings (15 at least: FTC safe harbour).")
@click.option("--max-attempts", type=click.IntRange(1, 50), default=3, show_default=True)
@click.option("--retry", "retries", multiple=True,
              help="OUTCOME=DELAY[*BACKOFF][/MAX], e.g. busy=10m*1.5/5 (busy, no_answer, "
                   "failed, congestion, machine, abandoned, dropped, unknown).")
@click.option("--window", "windows", multiple=True,
              help="Calling window in the contact's time, e.g. 'mon-fri 09:00-20:00'.")
@click.option("--timezone", default=None, help="Zone of contacts without one (default: "
              "the tenant's).")
@click.option("--legal-hours", default="08:00-21:00", show_default=True,
              help="Windows are always cut to these local hours (US TSR: 8 a.m.-9 p.m.).")
@click.option("--max-abandon", type=click.FloatRange(0.1, 3.0), default=3.0,
              show_default=True, help="Abandoned calls, % of live-answered (at most 3).")
@click.option("--abandon-window", type=click.IntRange(1, 720), default=24, show_default=True,
              help="Rolling window of the abandonment rate, hours (Ofcom: 24).")
@click.option("--max-channels", type=click.IntRange(1, 2000), default=30, show_default=True)
@click.option("--amd", is_flag=True, help="Answering machine detection in the dialplan.")
@click.option("--abandon-message", default="",
              help="Sound played when no agent is free within 2 s (seller's name and number).")
@click.option("--message", "messages", multiple=True,
              help="Notification recording per language: LANG=SOUND (repeatable).")
@click.option("--thanks", "thanks", multiple=True, help="Notification: LANG=SOUND after a 1.")
@click.option("--confirm", is_flag=True, help="Notification: 1 = confirm, 2 = agent.")
@click.option("--language", default="en", show_default=True)
@click.option("--start-at", default=None, help="Start at this time (ISO 8601).")
@click.option("--stop-at", default=None, help="Stop at this time (ISO 8601).")
@pass_ctx
def campaign_create(ctx: Ctx, name: str, tenant: str, kind: str, mode: str, queue: str,
                    caller_id: str, caller_name: str, dial_template: str, context: str,
                    ring_timeout: int, max_attempts: int, retries: tuple[str, ...],
                    windows: tuple[str, ...], timezone: str | None, legal_hours: str,
                    max_abandon: float, abandon_window: int, max_channels: int, amd: bool,
                    abandon_message: str, messages: tuple[str, ...], thanks: tuple[str, ...],
                    confirm: bool, language: str, start_at: str | None,
                    stop_at: str | None) -> None:
    """Create a campaign (then `ccd campaign import` its contacts and `start` it)."""
    dial_mode = "notify" if kind == "notify" else mode
    wins = list(windows) or ["mon-fri 09:00-20:00", "sat 10:00-18:00"]
    try:
        warnings = validate(kind, dial_mode, queue, dial_template, ring_timeout, wins,
                            abandon_message, legal_hours, max_abandon, caller_id, name)
        policy = dict(rule for rule in (rules.parse_rule(r) for r in retries))
        if timezone:
            zone(timezone)
    except (CampaignError, WindowError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)
    prompts: dict[str, Any] = {}
    if messages:
        prompts["message"] = _pairs(messages, "--message")
    if thanks:
        prompts["thanks"] = _pairs(thanks, "--thanks")
    if kind == "notify" and "message" not in prompts:
        fail("a notification campaign needs --message LANG=SOUND", EXIT_USAGE)
    starts, stops = _when(start_at), _when(stop_at)
    with open_db(ctx.config) as conn:
        tid = tenant_id(conn, tenant)
        if queue:
            found = conn.execute("SELECT tenant_id FROM queues WHERE name = %s",
                                 (queue,)).fetchone()
            if found is None:
                fail(f"no queue {queue!r} (`ccd queues add` registers it)", EXIT_NOT_FOUND)
            if found[0] != tid:
                fail(f"queue {queue!r} belongs to another tenant", EXIT_USAGE)
        try:
            with conn.transaction():
                (cid,) = conn.execute(
                    "INSERT INTO campaigns (tenant_id, name, kind, dial_mode, queue, caller_id,"
                    " caller_name, dial_template, context, ring_timeout, max_attempts, retry, "
                    "windows, legal_hours, timezone, max_abandon_pct, abandon_window_hours, "
                    "max_channels, amd, abandon_message, prompts, confirm, language) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                    "%s, %s, %s, %s, %s) RETURNING id",
                    (tid, name, kind, dial_mode, queue, caller_id, caller_name, dial_template,
                     context, ring_timeout, max_attempts, Jsonb(rules.policy_to_json(policy)),
                     Jsonb(wins), legal_hours, timezone, max_abandon, abandon_window,
                     max_channels, amd, abandon_message, Jsonb(prompts), confirm,
                     language)).fetchone() or (0,)
                for action, at in (("start", starts), ("stop", stops)):
                    if at is not None:
                        conn.execute("INSERT INTO campaign_schedule (tenant_id, campaign_id, "
                                     "action, at) VALUES (%s, %s, %s, %s)", (tid, cid, action, at))
        except psycopg.errors.UniqueViolation:
            fail(f"campaign {name!r} already exists in this tenant", EXIT_USAGE)
        except psycopg.Error as exc:
            _integrity(exc)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    ok(f"campaign {name} created (id {cid}, {dial_mode})")


# ------------------------------------------------------------------ import


def _sniff(head: str) -> str:
    try:
        return csv.Sniffer().sniff(head, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


@campaign.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", default=None, help="The campaign's tenant (slug).")
@click.option("--country", default=None, help="Read national numbers as this country "
              "(default: the tenant's).")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the rejected rows (line, number, reason) to this CSV.")
@click.option("--dry-run", is_flag=True, help="Validate only.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def campaign_import(ctx: Ctx, name: str, file: Path, tenant: str | None, country: str | None,
                    rejects: Path | None, dry_run: bool, as_json: bool) -> None:
    """Import contacts from a CSV file (a phone column; name, timezone, language, country
    and any other columns optional). Numbers are normalised to E.164."""
    size = max(1, file.stat().st_size)
    with open_db(ctx.config) as conn:
        camp = _find(conn, name, tenant)
        c = Campaign.from_row(camp)
        existing = {r["e164"] for r in rows(conn, "SELECT e164 FROM campaign_contacts WHERE "
                                            "campaign_id = %s", c.id)}
        good: list[ContactRow] = []
        bad: list[Rejected] = []
        with file.open(encoding="utf-8-sig", newline="") as f:
            delimiter = _sniff(f.read(8192))
            f.seek(0)
            progress = Progress(TextColumn("importing"), BarColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True,
                                disable=as_json or not sys.stderr.isatty())
            with progress:
                task = progress.add_task("rows", total=size)

                def lines() -> Iterator[str]:
                    for line in f:
                        progress.update(task, advance=len(line.encode("utf-8")))
                        yield line

                reader = csv.DictReader(lines(), delimiter=delimiter)
                try:
                    header = list(reader.fieldnames or [])
                    for r in read_contacts(reader, header,
                                           default_country=(country or camp["default_country"]
                                                            or "US").upper(),
                                           allowed=c.number_allowed, existing=existing):
                        (good if isinstance(r, ContactRow) else bad).append(r)
                except (ImportFormatError, KeyError) as exc:
                    fail(f"{file}: {exc}", EXIT_USAGE)
                except (csv.Error, UnicodeDecodeError) as exc:
                    fail(f"{file}: not a readable CSV file ({exc})", EXIT_USAGE)
        on_dnc = 0
        if good:
            on_dnc = conn.execute(
                "SELECT count(*) FROM dnc WHERE e164 = ANY(%s) AND (tenant_id IS NULL OR "
                "tenant_id = %s)", ([g.e164 for g in good], c.tenant_id)).fetchone()[0]
        if good and not dry_run:
            with conn.transaction(), conn.cursor().copy(
                    "COPY campaign_contacts (tenant_id, campaign_id, e164, name, timezone, "
                    "language, data, line_no) FROM STDIN") as cp:
                for g in good:
                    cp.write_row((c.tenant_id, c.id, g.e164, g.name, g.timezone, g.language,
                                  json.dumps(g.data, ensure_ascii=False), g.line))
    if rejects is not None:
        with rejects.open("w", newline="", encoding="utf-8") as out:
            w = csv.writer(out)
            w.writerow(["line", "number", "reason"])
            for b in bad:
                w.writerow([b.line, b.raw, b.reason])
    result = {"campaign": c.name, "imported": 0 if dry_run else len(good), "valid": len(good),
              "rejected": len(bad), "on_dnc": on_dnc, "dry_run": dry_run,
              "rejects": [{"line": b.line, "number": b.raw, "reason": b.reason} for b in bad]}
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        verb = "would import" if dry_run else "imported"
        ok(f"{c.name}: {verb} {len(good)} contacts, rejected {len(bad)}"
           + (f" (listed in {rejects})" if rejects and bad else ""))
        if on_dnc:
            click.echo(f"note: {on_dnc} of them are on a do-not-call list now (checked again "
                       "when each is dialled)")
        if bad:
            show(result["rejects"][:20], [("line", "line"), ("number", "number"),
                                          ("reason", "reason")],
                 title="Rejected rows" + (" (first 20)" if len(bad) > 20 else ""))
    if not good and bad:
        sys.exit(EXIT_USAGE)


# ------------------------------------------------------------------ live control


def _control(ctx: Ctx, action: str, name: str, at: str | None, tenant: str | None) -> None:
    params: dict[str, Any] = {"campaign": name}
    if at:
        params["at"] = at
    if tenant:
        with open_db(ctx.config) as conn:
            params["tenant_id"] = tenant_id(conn, tenant)
    res = api(ctx.config, f"campaign.{action}", params)
    if res.get("scheduled"):
        ok(f"{res['campaign']}: {res['scheduled']} scheduled at {res['at']}")
    else:
        ok(f"{res['campaign']}: {res['previous']} -> {res['state']}")


for _action, _help in (("start", "Start (or resume) dialling."),
                       ("pause", "Pause: no new calls; calls in progress go on."),
                       ("stop", "Stop the campaign (calls in progress go on).")):
    def _mk(action: str, doc: str) -> Any:
        @click.argument("name")
        @click.option("--at", default=None, help="Do it at this time (ISO 8601) instead.")
        @click.option("--tenant", default=None)
        @pass_ctx
        def cmd(ctx: Ctx, name: str, at: str | None, tenant: str | None) -> None:
            _control(ctx, action, name, at, tenant)

        cmd.__doc__ = doc
        return cmd

    campaign.command(_action)(_mk(_action, _help))


STATUS_COLUMNS = [("name", "campaign"), ("tenant", "tenant"), ("mode", "mode"),
                  ("state", "state"), ("dialer_text", "dialer"), ("to_call", "pending/due"),
                  ("done", "done"), ("flight", "ringing/waiting/talking"),
                  ("agents_text", "agents idle/busy"), ("abandon", "abandoned % (campaign/"
                                                                  "window, limit)"),
                  ("live_rate", "live rate")]


def _db_status(conn: psycopg.Connection[Any], row: dict[str, Any], now: float) -> dict[str, Any]:
    c = Campaign.from_row(row)
    s = c.pacer_settings()
    stats = PacerStats(s, now)
    stats.seed(**db.seed_figures_sync(conn, c.id, now, s.window, s.period))
    counts = db.sync_rows(conn, db.CONTACT_COUNTS, {"campaign": c.id, "now": db.ts(now)})
    return {"id": c.id, "name": c.name, "tenant": c.tenant_slug, "kind": c.kind,
            "mode": c.dial_mode, "queue": c.queue, "state": c.state, "dialer": None,
            "dialling": False, "note": "daemon not running: figures from the database",
            "contacts": {"due": sum(int(r["due"]) for r in counts),
                         **{r["status"]: int(r["n"]) for r in counts}},
            "abandonment": stats.rates(now),
            "pacer": {k: v for k, v in stats.to_dict(now).items() if k != "abandonment"}}


@campaign.command("status")
@click.argument("name", required=False)
@click.option("--tenant", default=None)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def campaign_status(ctx: Ctx, name: str | None, tenant: str | None, as_json: bool) -> None:
    """Live status: dialling, calls in flight, agents, abandonment rate (campaign, period,
    rolling window) against the limit."""
    params: dict[str, Any] = {"campaign": name} if name else {}
    data: list[dict[str, Any]]
    try:
        if tenant:
            with open_db(ctx.config) as conn:
                params["tenant_id"] = tenant_id(conn, tenant)
        data = call_sync(ctx.config, "campaigns.status", params)
    except ApiError as exc:
        if exc.code != EXIT_UNAVAILABLE:
            fail(str(exc), exc.code)
        now = time.time()
        with open_db(ctx.config) as conn:
            if name:
                found = [_find(conn, name, tenant)]
            else:
                tid = tenant_id(conn, tenant)
                found = db.sync_rows(conn, f"SELECT {db.CAMPAIGN_COLUMNS} FROM campaigns c "
                                     "JOIN tenants t ON t.id = c.tenant_id WHERE (%(t)s::bigint "
                                     "IS NULL OR c.tenant_id = %(t)s::bigint) ORDER BY c.id",
                                     {"t": tid})
            data = [_db_status(conn, r, now) for r in found]
        if not as_json:
            click.echo("note: the daemon is not running; showing the database's figures",
                       err=True)
    except OSError as exc:
        fail(f"cannot reach the daemon: {exc}", EXIT_UNAVAILABLE)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    table = []
    for s in data:
        ab, ct, fl, ag = (s.get("abandonment") or {}, s.get("contacts") or {},
                          s.get("in_flight") or {}, s.get("agents") or {})
        table.append({
            **s, "dialer_text": ("dialling" if s.get("dialling") else s.get("note") or "-"),
            "to_call": f"{ct.get('pending', 0)}/{ct.get('due', 0)}", "done": ct.get("done", 0),
            "flight": f"{fl.get('ringing', 0)}/{fl.get('waiting', 0)}/{fl.get('connected', 0)}",
            "agents_text": f"{ag.get('idle', '-')}/{ag.get('busy', '-')}",
            "abandon": f"{ab.get('campaign_pct', 0)}/{ab.get('window_pct', 0)} "
                       f"(<= {ab.get('limit_pct', 3.0)})",
            "live_rate": (s.get("pacer") or {}).get("live_rate")})
    show(table, STATUS_COLUMNS, title="Campaigns", empty="no campaign")


# ------------------------------------------------------------------ report


REPORT_DAYS = """
SELECT date_trunc('day', ended_at AT TIME ZONE 'UTC')::date AS day,
       count(*) FILTER (WHERE outcome <> 'not_dialled') AS attempts,
       count(*) FILTER (WHERE outcome IN ('answered', 'abandoned', 'dropped')) AS live,
       count(*) FILTER (WHERE outcome = 'answered') AS answered,
       count(*) FILTER (WHERE outcome IN ('abandoned', 'dropped')) AS abandoned,
       count(*) FILTER (WHERE outcome = 'dropped') AS dropped,
       round(100.0 * count(*) FILTER (WHERE outcome IN ('abandoned', 'dropped')) /
             NULLIF(count(*) FILTER (WHERE outcome IN ('answered', 'abandoned', 'dropped')),
                    0), 2) AS abandon_pct,
       round(avg(ring_seconds) FILTER (WHERE outcome IN ('answered', 'abandoned', 'dropped')),
             1) AS avg_ring,
       round(avg(talk_seconds) FILTER (WHERE outcome = 'answered'), 1) AS avg_talk
FROM campaign_attempts WHERE campaign_id = %s AND state = 'done' GROUP BY 1 ORDER BY 1
"""

ATTEMPT_COLUMNS = [("id", "attempt"), ("e164", "number"), ("attempt_no", "#"),
                   ("created_at", "dialled"), ("outcome", "outcome"), ("reason", "reason"),
                   ("ring_seconds", "ring s"), ("agent", "agent"), ("talk_seconds", "talk s"),
                   ("hangup_cause", "cause"), ("disposition", "disposition"),
                   ("call_id", "call"), ("runner", "dialler"), ("detail", "detail")]


@campaign.command("report")
@click.argument("name")
@click.option("--tenant", default=None)
@click.option("--attempts", "list_attempts", is_flag=True,
              help="Every attempt (the record of compliance) instead of the summary.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout (days, or --attempts).")
@pass_ctx
def campaign_report(ctx: Ctx, name: str, tenant: str | None, list_attempts: bool,
                    as_json: bool, as_csv: bool) -> None:
    """Outcomes, abandonment per day, agents, dispositions, notification results."""
    with open_db(ctx.config) as conn:
        camp = _find(conn, name, tenant)
        cid = camp["id"]
        if list_attempts:
            data = rows(conn, "SELECT * FROM campaign_attempts WHERE campaign_id = %s "
                        "ORDER BY id", cid)
            show(data, ATTEMPT_COLUMNS, title=f"Attempts of {camp['name']}", as_json=as_json,
                 as_csv=as_csv, empty="no attempt yet")
            return
        days = rows(conn, REPORT_DAYS, cid)
        contacts = rows(conn, "SELECT status, count(*) AS n FROM campaign_contacts WHERE "
                        "campaign_id = %s GROUP BY 1 ORDER BY 2 DESC", cid)
        outcomes = rows(conn, "SELECT outcome, count(*) AS n FROM campaign_attempts WHERE "
                        "campaign_id = %s AND state = 'done' GROUP BY 1 ORDER BY 2 DESC", cid)
        agents = rows(conn, "SELECT agent, count(*) AS calls, round(sum(talk_seconds), 1) AS "
                      "talk_seconds, round(avg(talk_seconds), 1) AS avg_talk FROM "
                      "campaign_attempts WHERE campaign_id = %s AND outcome = 'answered' AND "
                      "agent <> '' GROUP BY 1 ORDER BY 2 DESC", cid)
        dispositions = rows(conn, "SELECT disposition, count(*) AS n FROM campaign_attempts "
                            "WHERE campaign_id = %s AND disposition <> '' GROUP BY 1 "
                            "ORDER BY 2 DESC", cid)
        results = rows(conn, "SELECT result, count(*) AS n FROM notification_results WHERE "
                       "campaign_id = %s GROUP BY 1 ORDER BY 2 DESC", cid)
    live = sum(int(d["live"]) for d in days)
    ab = sum(int(d["abandoned"]) for d in days)
    summary = {"campaign": camp["name"], "tenant": camp["tenant_slug"], "mode": camp["dial_mode"],
               "state": camp["state"], "attempts": sum(int(d["attempts"]) for d in days),
               "live": live, "abandoned": ab, "dropped": sum(int(d["dropped"]) for d in days),
               "abandon_pct": round(100.0 * ab / live, 2) if live else 0.0,
               "limit_pct": float(camp["max_abandon_pct"]),
               "worst_day_pct": max((float(d["abandon_pct"] or 0) for d in days), default=0.0)}
    if as_json:
        click.echo(json.dumps({"summary": summary, "contacts": contacts, "outcomes": outcomes,
                               "days": days, "agents": agents, "dispositions": dispositions,
                               "notifications": results}, indent=2, default=str))
        return
    day_cols = [("day", "day (UTC)"), ("attempts", "attempts"), ("live", "live"),
                ("answered", "to agent"), ("abandoned", "abandoned"),
                ("dropped", "of them dropped by the PBX"), ("abandon_pct", "abandoned %"),
                ("avg_ring", "ring s"), ("avg_talk", "talk s")]
    if as_csv:
        show(days, day_cols, title="", as_csv=True)
        return
    show([summary], [("campaign", "campaign"), ("mode", "mode"), ("state", "state"),
                     ("attempts", "attempts"), ("live", "live answered"),
                     ("abandoned", "abandoned"), ("dropped", "of them dropped by the PBX"),
                     ("abandon_pct", "abandoned %"), ("worst_day_pct", "worst day %"),
                     ("limit_pct", "limit %")],
         title=f"Campaign {camp['name']}")
    show(contacts, [("status", "contact status"), ("n", "contacts")], title="Contacts")
    show(outcomes, [("outcome", "outcome"), ("n", "attempts")], title="Outcomes")
    show(days, day_cols, title="Per day", empty="no attempt yet")
    if agents:
        show(agents, [("agent", "agent"), ("calls", "calls"), ("talk_seconds", "talk s"),
                      ("avg_talk", "avg talk s")], title="Agents")
    if dispositions:
        show(dispositions, [("disposition", "disposition"), ("n", "calls")],
             title="Dispositions")
    if results:
        show(results, [("result", "notification result"), ("n", "calls")],
             title="Notifications")


# ------------------------------------------------------------------ do not call


@campaign.group("dnc", invoke_without_command=True)
@click.option("--tenant", default=None, help="This tenant's list (default: every list).")
@click.option("--global", "global_", is_flag=True, help="Only the global list.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def dnc(click_ctx: click.Context, tenant: str | None, global_: bool, as_json: bool) -> None:
    """Do-not-call lists: a tenant's and the global one (checked when each call is made)."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx: Ctx = click_ctx.obj
    with open_db(ctx.config) as conn:
        tid = tenant_id(conn, tenant)
        data = rows(conn, "SELECT d.e164, COALESCE(t.slug, '(global)') AS list, d.source, "
                    "d.note, d.added_at, d.expires_at FROM dnc d LEFT JOIN tenants t ON "
                    "t.id = d.tenant_id WHERE (%s AND d.tenant_id IS NULL) OR (NOT %s AND "
                    "(%s::bigint IS NULL OR d.tenant_id = %s::bigint OR d.tenant_id IS NULL))"
                    " ORDER BY d.e164", global_, global_, tid, tid)
    show(data, [("e164", "number"), ("list", "list"), ("source", "source"), ("note", "note"),
                ("added_at", "added"), ("expires_at", "expires")], title="Do not call",
         as_json=as_json, empty="the list is empty")


def _dnc_numbers(conn: psycopg.Connection[Any], numbers: tuple[str, ...],
                 tid: int | None) -> list[str]:
    country = "US"
    if tid is not None:
        country = conn.execute("SELECT default_country FROM tenants WHERE id = %s",
                               (tid,)).fetchone()[0]
    out = []
    for n in numbers:
        e164 = to_e164(n, country)
        if e164 is None:
            fail(f"{n!r} is not a phone number", EXIT_USAGE)
        out.append(e164)
    return out


@dnc.command("add")
@click.argument("numbers", nargs=-1, required=True)
@click.option("--tenant", default=None, help="The tenant's list.")
@click.option("--global", "global_", is_flag=True, help="The global list (every tenant).")
@click.option("--note", default="")
@click.option("--days", type=click.IntRange(1), default=None, help="Expire after N days.")
@pass_ctx
def dnc_add(ctx: Ctx, numbers: tuple[str, ...], tenant: str | None, global_: bool, note: str,
            days: int | None) -> None:
    """Add numbers to a do-not-call list."""
    if bool(tenant) == global_:
        fail("say which list: --tenant SLUG or --global", EXIT_USAGE)
    with open_db(ctx.config) as conn:
        tid = tenant_id(conn, tenant)
        expires = datetime.now(UTC) + timedelta(days=days) if days else None
        added = 0
        for e164 in _dnc_numbers(conn, numbers, tid):
            cur = conn.execute("INSERT INTO dnc (tenant_id, e164, source, note, expires_at) "
                               "VALUES (%s, %s, 'cli', %s, %s) ON CONFLICT DO NOTHING",
                               (tid, e164, note, expires))
            added += cur.rowcount
        conn.commit()
    ok(f"{added} number(s) added to the {'global' if global_ else tenant} do-not-call list")


@dnc.command("remove")
@click.argument("numbers", nargs=-1, required=True)
@click.option("--tenant", default=None)
@click.option("--global", "global_", is_flag=True)
@pass_ctx
def dnc_remove(ctx: Ctx, numbers: tuple[str, ...], tenant: str | None, global_: bool) -> None:
    """Remove numbers from a do-not-call list."""
    if bool(tenant) == global_:
        fail("say which list: --tenant SLUG or --global", EXIT_USAGE)
    with open_db(ctx.config) as conn:
        tid = tenant_id(conn, tenant)
        cur = conn.execute("DELETE FROM dnc WHERE e164 = ANY(%s) AND tenant_id IS NOT DISTINCT "
                           "FROM %s", (_dnc_numbers(conn, numbers, tid), tid))
        conn.commit()
    if not cur.rowcount:
        fail("none of these numbers is on that list", EXIT_NOT_FOUND)
    ok(f"{cur.rowcount} number(s) removed")


# ------------------------------------------------------------------ surveys


def _range(since: str | None, until: str | None) -> tuple[datetime, datetime]:
    end = _when(until) or datetime.now(UTC)
    start = _when(since) or end - timedelta(days=1)
    if start >= end:
        fail("--from must be before --to", EXIT_USAGE)
    return start, end


@report_group.command("surveys")
@click.option("--from", "since", help="Start (ISO, UTC; default 24 h ago).")
@click.option("--to", "until", help="End (default now).")
@click.option("--tenant", help="Only this tenant (slug).")
@click.option("--queue", default=None)
@click.option("--agent", default=None, help="Agent interface, e.g. PJSIP/1001.")
@click.option("--by", type=click.Choice(["agent", "queue"]), default="agent",
              show_default=True)
@click.option("--list", "listing", is_flag=True, help="Every survey instead of the summary.")
@click.option("--csv", "as_csv", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def report_surveys(ctx: Ctx, since: str | None, until: str | None, tenant: str | None,
                   queue: str | None, agent: str | None, by: str, listing: bool, as_csv: bool,
                   as_json: bool) -> None:
    """Post-call CSAT surveys: ratings per agent or queue (CSAT = % rated 4 or 5)."""
    start, end = _range(since, until)
    with open_db(ctx.config) as conn:
        tid = tenant_id(conn, tenant)
        where = ("s.created_at >= %(start)s AND s.created_at < %(end)s AND (%(t)s::bigint IS "
                 "NULL OR s.tenant_id = %(t)s::bigint) AND (%(q)s::text IS NULL OR s.queue = "
                 "%(q)s) AND (%(a)s::text IS NULL OR s.agent = %(a)s)")
        params = {"start": start, "end": end, "t": tid, "q": queue, "a": agent}
        if listing:
            data = db.sync_rows(conn, "SELECT s.created_at, s.call_id, s.queue, s.agent, "
                                "a.name AS agent_name, s.rating, s.status, s.comment_file, "
                                "s.comment_seconds FROM survey_results s LEFT JOIN agents a "
                                f"ON a.id = s.agent_id WHERE {where} ORDER BY s.created_at",
                                params)
            cols = [("created_at", "time"), ("call_id", "call"), ("queue", "queue"),
                    ("agent", "agent"), ("agent_name", "name"), ("rating", "rating"),
                    ("status", "status"), ("comment_file", "comment"),
                    ("comment_seconds", "comment s")]
        else:
            key = "s.agent" if by == "agent" else "s.queue"
            data = db.sync_rows(conn, f"SELECT {key} AS key, count(*) AS surveys, "
                                "count(s.rating) AS rated, round(avg(s.rating), 2) AS avg, "
                                "round(100.0 * count(*) FILTER (WHERE s.rating >= 4) / "
                                "NULLIF(count(s.rating), 0), 1) AS csat_pct, "
                                + ", ".join(f"count(*) FILTER (WHERE s.rating = {i}) AS r{i}"
                                            for i in range(1, 6))
                                + ", count(*) FILTER (WHERE s.comment_file <> '') AS comments "
                                f"FROM survey_results s WHERE {where} GROUP BY 1 ORDER BY 1",
                                params)
            cols = [("key", by), ("surveys", "surveys"), ("rated", "rated"), ("avg", "avg"),
                    ("csat_pct", "CSAT %"), *((f"r{i}", str(i)) for i in range(1, 6)),
                    ("comments", "comments")]
    show(data, cols, title=f"Surveys {start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M} UTC",
         as_json=as_json, as_csv=as_csv, empty="no survey in that range")

