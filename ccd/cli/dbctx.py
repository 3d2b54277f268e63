"""Database access for CLI commands that work on the database directly (set-up,
recordings, reports): the configured PostgreSQL or the embedded one."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

import click
import psycopg

from ccd.cli.main import EXIT_UNAVAILABLE
from ccd.config import Config
from ccd.store import migrate
from ccd.store.db import DatabaseUnavailable, connect
from ccd.store.embedded import database_url


@contextlib.contextmanager
def open_db(config: Config) -> Iterator[psycopg.Connection[Any]]:
    """A connection with the schema up to date; exits 3 with advice if unreachable."""
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        with database_url(config) as url:
            migrate.upgrade(url)
            with connect(url, application_name="ccd-cli") as conn:
                yield conn
    except DatabaseUnavailable as exc:
        hint = ("set database.url (CCD_DATABASE_URL) to a reachable PostgreSQL"
                if config.database.url else
                f"the embedded PostgreSQL under {config.data_dir / 'pgdata'} did not start")
        click.echo(f"ccd: {exc}\n{hint}", err=True)
        sys.exit(EXIT_UNAVAILABLE)


def rows(conn: psycopg.Connection[Any], sql: str, *params: Any) -> list[dict[str, Any]]:
    """Run a parameterised query and return dict rows."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    cur.execute(sql, params)  # type: ignore[arg-type]
    return cur.fetchall()


def tenant_id(conn: psycopg.Connection[Any], slug: str | None) -> int | None:
    """The id of a tenant slug (``None`` for all tenants); exits 4 if it does not exist."""
    if slug is None:
        return None
    r = conn.execute("SELECT id FROM tenants WHERE slug = %s", (slug,)).fetchone()
    if r is None:
        click.echo(f"ccd: no tenant {slug!r} (`ccd tenants` lists them)", err=True)
        sys.exit(4)
    return int(r[0])
