"""An embedded PostgreSQL for when ``database.url`` is empty (``make run``, demos, tests).

The ``pgserver`` wheel ships PostgreSQL binaries; :class:`EmbeddedPostgres` runs them on
``<data_dir>/pgdata`` listening on a Unix socket only (no TCP port), with trust
authentication limited to that socket, and creates a ``ccd`` database in it.

* Running as root: PostgreSQL refuses to run as root, so pgserver creates a system
  user ``pgserver`` (``useradd``), gives it the data directory and makes the parent
  directories traversable (``chmod o+rx``).
* Several ccd processes may share the server (daemon + CLI): it is stopped when the
  last one that started or attached to it calls :meth:`EmbeddedPostgres.stop` or exits.
  Handles left by processes that died without stopping (``kill -9``) are pruned at start.
* Logs: ``<data_dir>/pgdata/log``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from psycopg import sql

from ccd.config import Config, redact_url
from ccd.store.db import DatabaseUnavailable, connect, with_database

log = logging.getLogger(__name__)

DATABASE = "ccd"


class EmbeddedError(DatabaseUnavailable):
    """The embedded PostgreSQL could not be started."""


def _pgserver() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (daemons, containers) and
        # falls back to /tmp/runtime-<uid>, which is what we want.
        warnings.simplefilter("ignore")
        import pgserver
    quiet = logging.getLogger("pgserver")
    if quiet.level == logging.NOTSET:  # it logs every command line at INFO
        quiet.setLevel(logging.WARNING)
    return pgserver


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedPostgres:
    """PostgreSQL under ``<data_dir>/pgdata``; :meth:`start` returns its URL."""

    def __init__(self, data_dir: Path, database: str = DATABASE) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.database = database
        self.url = ""
        self._server: Any = None

    def _prune_handles(self) -> None:
        """Forget processes that attached to the server and died without detaching."""
        handles = self.pgdata / ".handle_pids.json"
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            return
        alive = [p for p in pids if isinstance(p, int) and _alive(p)]
        if alive != pids:
            handles.write_text(json.dumps(alive))

    def start(self) -> str:
        """Start (or attach to) the server, create the database; return its URL."""
        if self._server is not None:
            return self.url
        pgserver = _pgserver()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prune_handles()
        if os.name == "posix" and os.geteuid() == 0:
            log.info("running as root: the embedded PostgreSQL runs as system user 'pgserver'")
        try:
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise EmbeddedError(f"the embedded PostgreSQL under {self.pgdata} did not start "
                                f"({exc}); see {self.pgdata / 'log'}") from exc
        base = self._server.get_uri()
        with connect(base, autocommit=True, application_name="ccd-embedded") as conn:
            row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                               (self.database,)).fetchone()
            if row is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
                log.info("created database %s in the embedded PostgreSQL", self.database)
        self.url = with_database(base, self.database)
        log.info("embedded PostgreSQL: data %s, log %s, url %s",
                 self.pgdata, self.pgdata / "log", redact_url(self.url))
        return self.url

    def stop(self) -> None:
        """Detach; the server stops when no other ccd process uses it."""
        if self._server is None:
            return
        server, self._server = self._server, None
        try:
            server.cleanup()
        except Exception as exc:  # stopping must not mask the reason we are exiting
            log.warning("stopping the embedded PostgreSQL under %s: %s", self.pgdata, exc)
        else:
            log.info("detached from the embedded PostgreSQL under %s", self.pgdata)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def database_url(config: Config) -> Iterator[str]:
    """The configured ``database.url``; if empty, an embedded server's for the duration."""
    if config.database.url:
        yield config.database.url
        return
    server = EmbeddedPostgres(config.data_dir)
    try:
        yield server.start()
    finally:
        server.stop()
