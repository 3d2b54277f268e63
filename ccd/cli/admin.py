"""Set-up and data commands that work on the database directly: tenants, users, agents,
queues, recordings, reports. They work whether or not the daemon is running."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import click
import psycopg

from ccd.cli.dbctx import open_db, rows, tenant_id
from ccd.cli.main import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_USAGE, Ctx, cli, pass_ctx
from ccd.cli.ops import agents as agents_group
from ccd.cli.ops import queues as queues_group
from ccd.cli.output import ok, show
from ccd.security import hash_password
from ccd.services.dialing import describe


def fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(f"ccd: {message}", err=True)
    sys.exit(code)


def _integrity(exc: psycopg.Error) -> None:
    diag = exc.diag.message_primary if exc.diag else str(exc)
    fail(f"refused by the database: {diag}", EXIT_USAGE)


# ------------------------------------------------------------------ tenants


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def tenants(click_ctx: click.Context, as_json: bool) -> None:
    """Customer companies on this platform (`ccd tenants add` to create one)."""
    if click_ctx.invoked_subcommand is None:
        ctx: Ctx = click_ctx.obj
        with open_db(ctx.config) as conn:
            data = rows(conn, "SELECT t.id, t.slug, t.name, t.timezone, t.default_country, "
                        "t.retention_days, (SELECT string_agg(number, ',' ORDER BY number) "
                        "FROM dids d WHERE d.tenant_id = t.id) AS dids FROM tenants t "
                        "ORDER BY t.id")
        show(data, [("id", "id"), ("slug", "slug"), ("name", "name"), ("timezone", "tz"),
                    ("default_country", "country"), ("retention_days", "retention d"),
                    ("dids", "DIDs")], title="Tenants", as_json=as_json)


@tenants.command("add")
@click.argument("slug")
@click.option("--name", required=True)
@click.option("--timezone", default="UTC", show_default=True)
@click.option("--country", default="US", show_default=True, help="Default country (ISO).")
@click.option("--retention-days", default=365, show_default=True, type=click.IntRange(1))
@click.option("--did", "dids", multiple=True, help="A dialled number routed to this tenant.")
@pass_ctx
def tenants_add(ctx: Ctx, slug: str, name: str, timezone: str, country: str,
                retention_days: int, dids: tuple[str, ...]) -> None:
    """Create a tenant (SLUG: lower-case letters, digits, - and _)."""
    with open_db(ctx.config) as conn:
        try:
            with conn.transaction():
                (tid,) = conn.execute(
                    "INSERT INTO tenants (slug, name, timezone, default_country, retention_days)"
                    " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                    (slug, name, timezone, country.upper(), retention_days)).fetchone() or (0,)
                for did in dids:
                    conn.execute("INSERT INTO dids (number, tenant_id) VALUES (%s, %s)",
                                 (did, tid))
        except psycopg.errors.UniqueViolation:
            fail(f"tenant {slug!r} or one of its DIDs already exists", EXIT_USAGE)
        except psycopg.Error as exc:
            _integrity(exc)
        (patterns,) = conn.execute("SELECT dial_patterns FROM tenants WHERE id = %s",
                                   (tid,)).fetchone() or ([],)
    ok(f"tenant {slug} created (id {tid})")
    dials = "; ".join(describe(list(patterns), country.upper()).lines())
    click.echo(f"  dialling: {dials} (`ccd tenants dial-patterns {slug}` to change)")


# ------------------------------------------------------------------ users


@cli.group(invoke_without_command=True)
@click.option("--tenant", help="Only this tenant (slug).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def users(click_ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """People who log in to the panel (`ccd users add` to create one)."""
    if click_ctx.invoked_subcommand is None:
        ctx: Ctx = click_ctx.obj
        with open_db(ctx.config) as conn:
            tid = tenant_id(conn, tenant)
            data = rows(conn, "SELECT u.id, u.username, t.slug AS tenant, u.role, "
                        "a.interface AS agent, u.language, CASE WHEN lt.locked_until > now() "
                        "THEN lt.locked_until END AS locked_until FROM users u "
                        "JOIN tenants t ON t.id = u.tenant_id LEFT JOIN agents a "
                        "ON a.id = u.agent_id LEFT JOIN login_throttle lt ON lt.username = "
                        "u.username WHERE (%s::bigint IS NULL OR u.tenant_id = "
                        "%s::bigint) ORDER BY u.id", tid, tid)
        show(data, [("id", "id"), ("username", "username"), ("tenant", "tenant"),
                    ("role", "role"), ("agent", "agent"), ("language", "lang"),
                    ("locked_until", "locked until")], title="Users", as_json=as_json)


@users.command("add")
@click.argument("username")
@click.option("--tenant", default="default", show_default=True)
@click.option("--role", type=click.Choice(["agent", "supervisor", "admin"]), default="agent",
              show_default=True)
@click.option("--agent", "agent_ident", help="The agent (interface or extension) this user is.")
@click.option("--language", type=click.Choice(["en", "zh-CN"]), default="en",
              show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              envvar="CCD_NEW_PASSWORD", help="Prompted for when not given.")
@pass_ctx
def users_add(ctx: Ctx, username: str, tenant: str, role: str, agent_ident: str | None,
              language: str, password: str) -> None:
    """Create a user; the password is stored as an argon2 hash only."""
    try:
        pw_hash = hash_password(password)
    except ValueError as exc:
        fail(str(exc), EXIT_USAGE)
    with open_db(ctx.config) as conn:
        tid = tenant_id(conn, tenant)
        agent_id = None
        if agent_ident:
            r = conn.execute("SELECT id FROM agents WHERE tenant_id = %s AND (interface = %s "
                             "OR extension = %s OR id::text = %s)",
                             (tid, agent_ident, agent_ident, agent_ident)).fetchone()
            if r is None:
                fail(f"no agent {agent_ident!r} in tenant {tenant}", EXIT_NOT_FOUND)
            agent_id = r[0]
        try:
            with conn.transaction():
                conn.execute("INSERT INTO users (tenant_id, username, password_hash, role, "
                             "agent_id, language) VALUES (%s, %s, %s, %s, %s, %s)",
                             (tid, username, pw_hash, role, agent_id, language))
        except psycopg.errors.UniqueViolation:
            fail(f"user {username!r} already exists", EXIT_USAGE)
        except psycopg.Error as exc:
            _integrity(exc)
    ok(f"user {username} ({role}) created in tenant {tenant}")


# ------------------------------------------------------------------ agents, queues


@agents_group.command("add")
@click.argument("name")
@click.option("--interface", required=True, help="The phone it sits at, e.g. PJSIP/1001.")
@click.option("--extension", default="", help="Its extension (default: from the interface).")
@click.option("--tenant", default="default", show_default=True)
@click.option("--role", type=click.Choice(["agent", "supervisor", "admin"]), default="agent")
@click.option("--queue", "skills", multiple=True, metavar="NAME[:PENALTY]",
              help="A queue the agent serves (repeat); lower penalty = called first.")
@pass_ctx
def agents_add(ctx: Ctx, name: str, interface: str, extension: str, tenant: str, role: str,
               skills: tuple[str, ...]) -> None:
    """Create an agent with its queues (skills)."""
    ext = extension or interface.split("/", 1)[-1]
    with open_db(ctx.config) as conn:
        tid = tenant_id(conn, tenant)
        try:
            with conn.transaction():
                (aid,) = conn.execute(
                    "INSERT INTO agents (tenant_id, name, interface, extension, role) VALUES "
                    "(%s, %s, %s, %s, %s) RETURNING id",
                    (tid, name, interface, ext, role)).fetchone() or (0,)
                for s in skills:
                    qname, _, pen = s.partition(":")
                    q = conn.execute("SELECT id FROM queues WHERE name = %s AND tenant_id = %s",
                                     (qname, tid)).fetchone()
                    if q is None:
                        raise click.UsageError(f"no queue {qname!r} in tenant {tenant} "
                                               "(`ccd queues add` first)")
                    conn.execute("INSERT INTO agent_skills (tenant_id, agent_id, queue_id, "
                                 "penalty) VALUES (%s, %s, %s, %s)",
                                 (tid, aid, q[0], int(pen or 0)))
        except psycopg.errors.UniqueViolation:
            fail(f"an agent with interface {interface} already exists", EXIT_USAGE)
        except (psycopg.Error, ValueError) as exc:
            if isinstance(exc, psycopg.Error):
                _integrity(exc)
            fail(f"bad --queue value: {exc}", EXIT_USAGE)
    ok(f"agent {name} ({interface}) created with id {aid}")


@queues_group.command("add")
@click.argument("name")
@click.option("--tenant", default="default", show_default=True)
@click.option("--display-name", default="")
@click.option("--wrapup", "wrapup_seconds", default=0, type=click.IntRange(0),
              help="Wrap-up seconds after each call (match queues.conf wrapuptime).")
@click.option("--sl", "sl_threshold", default=20, type=click.IntRange(1),
              help="Service-level threshold in seconds.")
@click.option("--recording", type=click.Choice(["always", "never", "on_demand"]),
              default="always", show_default=True)
@click.option("--surveys/--no-surveys", default=False)
@pass_ctx
def queues_add(ctx: Ctx, name: str, tenant: str, display_name: str, wrapup_seconds: int,
               sl_threshold: int, recording: str, surveys: bool) -> None:
    """Register an Asterisk queue (defined in queues.conf) with ccd."""
    with open_db(ctx.config) as conn:
        tid = tenant_id(conn, tenant)
        try:
            with conn.transaction():
                conn.execute("INSERT INTO queues (tenant_id, name, display_name, wrapup_seconds,"
                             " sl_threshold_seconds, recording_policy, surveys) VALUES "
                             "(%s, %s, %s, %s, %s, %s, %s)",
                             (tid, name, display_name, wrapup_seconds, sl_threshold, recording,
                              surveys))
        except psycopg.errors.UniqueViolation:
            fail(f"queue {name!r} already exists", EXIT_USAGE)
        except psycopg.Error as exc:
            _integrity(exc)
    ok(f"queue {name} added to tenant {tenant}")


# ------------------------------------------------------------------ date ranges
# (the recordings commands are in ccd/cli/recordings.py)


def _range(since: str | None, until: str | None) -> tuple[datetime, datetime]:
    def parse(v: str) -> datetime:
        try:
            d = datetime.fromisoformat(v)
        except ValueError:
            fail(f"not a date/time: {v!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)", EXIT_USAGE)
        return d if d.tzinfo else d.replace(tzinfo=UTC)

    end = parse(until) if until else datetime.now(UTC)
    start = parse(since) if since else end - timedelta(days=1)
    if start >= end:
        fail("--from must be before --to", EXIT_USAGE)
    return start, end


# ------------------------------------------------------------------ reports

QUEUE_REPORT = [("queue", "queue"), ("interval", "interval"), ("offered", "offered"),
                ("answered", "answered"), ("abandoned", "abandoned"), ("exited", "exited"),
                ("answered_in_sl", "in SL"), ("service_level", "SL %"), ("asa", "ASA s"),
                ("avg_wait", "avg wait s"), ("longest_wait", "longest s"),
                ("avg_abandon_wait", "abandon wait s"), ("aht", "AHT s")]
AGENT_REPORT = [("agent", "agent"), ("interval", "interval"), ("answered", "calls"),
                ("staffed", "staffed s"), ("busy", "busy s"), ("occupancy", "occupancy %"),
                ("paused", "paused s"), ("wrapup", "wrap-up s")]


@cli.group()
def report() -> None:
    """Statistics per 15-minute interval from the stored call events (see README)."""


def _report(ctx: Ctx, kind: str, since: str | None, until: str | None, tenant: str | None,
            as_csv: bool, as_json: bool, total: bool) -> None:
    from ccd.jobs.stats import compute

    start, end = _range(since, until)
    with open_db(ctx.config) as conn:
        st = compute(conn, start, end, tenant_id(conn, tenant))
    if kind == "queues":
        data = st.queue_rows()
        if total:
            names = sorted({r["queue"] for r in data})
            data = [{**st.totals(n).to_dict(), "interval": "total"} for n in names]
        cols = QUEUE_REPORT
    else:
        data = st.agent_rows()
        for r in data:
            r["paused"] = r["seconds"].get("paused", 0.0)
            r["wrapup"] = r["seconds"].get("wrapup", 0.0)
        cols = AGENT_REPORT
    for r in data:
        if r.get("interval") != "total":
            r["interval"] = datetime.fromtimestamp(r["start"], UTC).strftime("%Y-%m-%d %H:%M")
    show(data, cols, title=f"{kind.capitalize()} {start:%Y-%m-%d %H:%M} - {end:%Y-%m-%d %H:%M}"
         " UTC", as_json=as_json, as_csv=as_csv, empty="no activity in that range")


for _kind in ("queues", "agents"):
    def _mk(kind: str):
        @click.option("--from", "since", help="Start (ISO, UTC; default 24 h ago).")
        @click.option("--to", "until", help="End (default now).")
        @click.option("--tenant", help="Only this tenant (slug).")
        @click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout.")
        @click.option("--json", "as_json", is_flag=True)
        @click.option("--total", is_flag=True, help="One line per queue for the whole range.")
        @pass_ctx
        def cmd(ctx: Ctx, since: str | None, until: str | None, tenant: str | None,
                as_csv: bool, as_json: bool, total: bool) -> None:
            _report(ctx, kind, since, until, tenant, as_csv, as_json, total)

        cmd.__doc__ = f"{kind.capitalize()} statistics per interval."
        return cmd

    report.command(_kind)(_mk(_kind))


# commands of this module's groups that live in their own modules (imported last: they
# use the helpers and groups above)
from ccd.cli import dialing as _dialing  # noqa: E402,F401
from ccd.cli import recordings as _recordings  # noqa: E402,F401
