"""``ccd db upgrade`` and ``ccd db status``: the database schema.

Exit codes: 0 ok, 1 error (a migration failed, a file changed after it was applied),
3 the database cannot be reached.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from ccd.cli.main import EXIT_ERROR, EXIT_OK, EXIT_UNAVAILABLE, cli, pass_ctx
from ccd.config import Config, redact_url
from ccd.store import migrate
from ccd.store.db import DatabaseUnavailable
from ccd.store.embedded import EmbeddedError, database_url


def _unavailable(config: Config, exc: DatabaseUnavailable) -> NoReturn:
    if isinstance(exc, EmbeddedError) or not config.database.url:
        hint = ("database.url is empty, so ccd uses its embedded PostgreSQL under "
                f"{config.data_dir / 'pgdata'}; check that directory and its log, or set "
                "database.url (CCD_DATABASE_URL) to a PostgreSQL server.")
    else:
        hint = ("Check that PostgreSQL is running and reachable, and database.url "
                "(CCD_DATABASE_URL) in the configuration; leave it empty to use the "
                "embedded server.")
    click.echo(f"ccd db: {exc}\n{hint}", err=True)
    sys.exit(EXIT_UNAVAILABLE)


def _fail(exc: Exception) -> NoReturn:
    click.echo(f"ccd db: {exc}", err=True)
    sys.exit(EXIT_ERROR)


def _quiet_logs() -> None:
    """Show our progress lines (unless logging is configured), not pgserver's chatter."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("pgserver").setLevel(logging.WARNING)


@cli.group()
def db() -> None:
    """Database schema: apply and inspect migrations (sql/NNN_*.sql)."""


@db.command()
@pass_ctx
def upgrade(ctx) -> None:
    """Apply pending migrations, in order, each in its own transaction.

    Safe to run at any time and from several hosts at once (an advisory lock
    serialises them); with nothing pending it changes nothing.
    """
    config: Config = ctx.config
    _quiet_logs()
    try:
        with database_url(config) as url:
            applied = migrate.upgrade(url)
    except DatabaseUnavailable as exc:
        _unavailable(config, exc)
    except migrate.MigrationError as exc:
        _fail(exc)
    where = redact_url(url)
    if applied:
        for m in applied:
            click.echo(f"applied {m.filename}")
        click.echo(f"{where}: {len(applied)} migration(s) applied, schema up to date")
    else:
        click.echo(f"{where}: schema up to date, nothing to apply")
    sys.exit(EXIT_OK)


@db.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status(ctx, as_json: bool) -> None:
    """Show applied and pending migrations.

    Exits 1 when an applied migration's file has changed since it was applied.
    """
    config: Config = ctx.config
    _quiet_logs()
    try:
        with database_url(config) as url:
            st = migrate.status(url)
    except DatabaseUnavailable as exc:
        _unavailable(config, exc)
    except migrate.MigrationError as exc:
        _fail(exc)
    code = EXIT_ERROR if st.changed else EXIT_OK
    if as_json:
        click.echo(json.dumps({"database": redact_url(url), **st.to_dict()}, indent=2))
        sys.exit(code)
    changed = {m.version: m for m, _ in st.changed}
    unknown = {a.version for a in st.unknown}
    t = Table(title=f"Migrations ({redact_url(url)})")
    for col in ("version", "name", "state", "applied at", "sha256"):
        t.add_column(col)
    rows = [(a.version, a.name, "[red]changed[/]" if a.version in changed else
             "[yellow]applied, no file[/]" if a.version in unknown else "[green]applied[/]",
             f"{a.applied_at:%Y-%m-%d %H:%M:%S}", a.checksum[:12]) for a in st.applied]
    rows += [(m.version, m.name, "[yellow]pending[/]", "", m.checksum[:12]) for m in st.pending]
    for version, name, state, at, digest in sorted(rows, key=lambda r: r[0]):
        t.add_row(f"{version:03d}", name, state, at, digest)
    console = Console()
    console.print(t)
    if st.changed:
        console.print(f"[red]{st.describe_changes()}[/]")
    elif st.pending:
        console.print(f"{len(st.pending)} pending: run [bold]ccd db upgrade[/]")
    else:
        console.print("schema up to date")
    sys.exit(code)
