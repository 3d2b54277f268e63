"""Fixtures shared by the whole suite.

* ``pg_server_url`` (session): ONE ephemeral PostgreSQL per test run, started with the
  ``pgserver`` wheel in a temporary directory (Unix socket only, trust auth), deleted
  at the end. Never the machine's own PostgreSQL service. Set ``CCD_TEST_PG_URL`` to
  a superuser URL to use another server instead.
* ``db_url`` (function): a fresh database on that server with every migration of
  ``sql/`` applied through :mod:`ccd.store.migrate`; dropped after the test.

Hypothesis runs without its per-example deadline and too-slow health check: both measure
the wall clock, so a busy machine would fail a property that holds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from psycopg import sql

settings.register_profile("ccd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ccd")

#: the real-PBX suite needs an installed Asterisk (make test-real sets CCD_ASTERISK)
collect_ignore_glob = [] if os.environ.get("CCD_ASTERISK") else ["real/*"]


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL (database ``postgres``, superuser) of the test run's PostgreSQL server."""
    external = os.environ.get("CCD_TEST_PG_URL")
    if external:
        yield external
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
        import pgserver
    top = Path(tempfile.mkdtemp(prefix="ccd-pg-"))
    server = pgserver.get_server(top / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(top, ignore_errors=True)


def create_database(server_url: str, migrate: bool = True) -> str:
    """A new, uniquely named database on the server; with ``migrate`` all migrations applied."""
    from ccd.store import migrate as migrations
    from ccd.store.db import with_database

    name = f"ccd_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = with_database(server_url, name)
    if migrate:
        migrations.upgrade(url)
    return url


def drop_database(server_url: str, url: str) -> None:
    """Drop a database made by :func:`create_database`, even with sessions still open."""
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                     .format(sql.Identifier(str(name))))


@pytest.fixture
def db_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, fully migrated database for one test."""
    url = create_database(pg_server_url)
    try:
        yield url
    finally:
        drop_database(pg_server_url, url)


@pytest.fixture
def make_db(pg_server_url: str) -> Iterator[Callable[..., str]]:
    """Factory of extra fresh databases (migrated unless ``migrate=False``), dropped after."""
    made: list[str] = []

    def make(migrate: bool = True) -> str:
        url = create_database(pg_server_url, migrate=migrate)
        made.append(url)
        return url

    yield make
    for url in made:
        drop_database(pg_server_url, url)
