"""Connections and pools to PostgreSQL (psycopg 3, psycopg_pool).

The daemon is asyncio: its writer uses an :class:`AsyncConnectionPool`
(:func:`open_async_pool`). The CLI uses plain blocking connections (:func:`connect`)
or a :class:`ConnectionPool` (:func:`open_pool`).

Every log line that mentions a URL passes it through :func:`ccd.config.redact_url`;
passwords are never logged. libpq's own error messages name host, port and user,
never the password.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from ccd.config import redact_url

log = logging.getLogger(__name__)

#: seconds to wait for a TCP connection / authentication before giving up
CONNECT_TIMEOUT = 5.0


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached (or refuses the connection); the message says where."""


def connect_kwargs(application_name: str = "ccd",
                   connect_timeout: float = CONNECT_TIMEOUT) -> dict[str, Any]:
    """libpq parameters ccd adds to every connection.

    Keep-alives and ``tcp_user_timeout`` make a connection to a server that vanished
    (cable cut, VM frozen) fail within ~30 s instead of TCP's ~15 minutes; libpq
    ignores them on Unix-domain sockets.
    """
    return {
        "application_name": application_name,
        "connect_timeout": max(1, round(connect_timeout)),
        "keepalives": 1,
        "keepalives_idle": 15,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": 30_000,
    }


def describe_error(exc: BaseException) -> str:
    """One line out of a (often multi-line) libpq error message."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def log_notice(diag: psycopg.errors.Diagnostic) -> None:
    """Log a server WARNING (``RAISE WARNING``: e.g. a refused recording path); the
    server's NOTICE/INFO chatter is left out."""
    if (diag.severity_nonlocalized or diag.severity or "") == "WARNING":
        log.warning("database: %s", diag.message_primary)


def connect(url: str, *, autocommit: bool = False, application_name: str = "ccd",
            connect_timeout: float = CONNECT_TIMEOUT) -> psycopg.Connection[Any]:
    """A blocking connection; raises :class:`DatabaseUnavailable` if it cannot be made."""
    try:
        conn = psycopg.connect(url, autocommit=autocommit,
                               **connect_kwargs(application_name, connect_timeout))
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to {redact_url(url)}: {describe_error(exc)}") from exc
    conn.add_notice_handler(log_notice)
    return conn


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.add_notice_handler(log_notice)


async def _configure_async(conn: psycopg.AsyncConnection[Any]) -> None:
    conn.add_notice_handler(log_notice)


def open_pool(url: str, *, min_size: int = 1, max_size: int = 4, name: str = "ccd",
              timeout: float = 10.0) -> ConnectionPool:
    """An opened blocking pool (CLI, jobs); waits for the first connection.

    Raises :class:`DatabaseUnavailable` when no connection arrives within ``timeout``.
    """
    pool: ConnectionPool = ConnectionPool(
        url, min_size=min_size, max_size=max(min_size, max_size), name=name, open=False,
        kwargs=connect_kwargs(name), check=ConnectionPool.check_connection, timeout=timeout,
        configure=_configure)
    try:
        pool.open(wait=True, timeout=timeout)
    except Exception as exc:
        pool.close()
        raise DatabaseUnavailable(
            f"no connection to {redact_url(url)} within {timeout:g} s: {describe_error(exc)}"
        ) from exc
    log.info("connection pool %r open on %s", name, redact_url(url))
    return pool


async def open_async_pool(url: str, *, min_size: int = 1, max_size: int = 2,
                          name: str = "ccd-writer", reconnect_timeout: float = 10.0,
                          connect_timeout: float = CONNECT_TIMEOUT) -> AsyncConnectionPool:
    """An opened asyncio pool that does not wait for the database.

    The pool keeps trying to connect in the background; ``reconnect_timeout`` bounds
    its exponential back-off so that, once PostgreSQL is back, the next request gets a
    connection within that many seconds. Connections are checked before use, so one
    broken while idle (server restart) is replaced, not handed out.
    """
    pool: AsyncConnectionPool = AsyncConnectionPool(
        url, min_size=min_size, max_size=max(min_size, max_size), name=name, open=False,
        kwargs=connect_kwargs(name, connect_timeout),
        check=AsyncConnectionPool.check_connection, reconnect_timeout=reconnect_timeout,
        configure=_configure_async)
    await pool.open(wait=False)
    log.info("connection pool %r opening on %s", name, redact_url(url))
    return pool


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at database ``dbname``.

    Works for ``postgresql://u:p@host:5432/db?x=y`` and for socket URLs such as
    ``postgresql://postgres:@/postgres?host=/tmp/pg``.
    """
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))


def server_version(conn: psycopg.Connection[Any]) -> str:
    """``"16.2"`` for a PostgreSQL 16.2 server."""
    v = conn.info.server_version
    return f"{v // 10000}.{v % 10000}" if v >= 100000 else f"{v // 10000}.{v // 100 % 100}"
