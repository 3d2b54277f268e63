"""Numbered SQL migrations: ``sql/NNN_name.sql`` applied in order, each exactly once.

* Each file runs in its own transaction together with its row in ``schema_migrations``
  (version, name, sha256 checksum, applied_at): a migration is applied entirely or not
  at all. (So ``CREATE INDEX CONCURRENTLY`` cannot be used in a migration.)
* A PostgreSQL advisory lock (:data:`LOCK_KEY`) serialises migrators: a second ccd
  starting at the same time waits, then finds nothing left to do.
* Running it again is a no-op. A file changed after it was applied is reported as
  :class:`ChecksumMismatch` and nothing is applied: never edit an applied migration,
  add a new one. The checksum ignores CR/LF differences (checkouts on Windows).
* A migration numbered lower than one already applied (another team's range) is
  still applied, with a warning.

Where ``sql/`` is found (:func:`sql_dir`): ``$CCD_SQL_DIR`` if set; else ``sql/`` at
the root of the source checkout (``ccd/store/../../sql``); else ``ccd/sql`` inside the
installed package; else ``<sys.prefix>/share/ccd/sql``. When none exists a
:class:`MigrationError` lists the places searched.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg

from ccd.config import redact_url
from ccd.store.db import DatabaseUnavailable, connect, describe_error

log = logging.getLogger(__name__)

#: pg_advisory_lock(classid, objid) key of the migrator ("ccd" = 0x0CCD, 1 = migrations).
#: Other ccd locks use the same classid with another objid.
LOCK_KEY = (0x0CCD, 1)

FILE_RE = re.compile(r"^(?P<version>\d{3,})_(?P<name>[A-Za-z0-9_\-]+)\.sql$")

BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL DEFAULT 0
)
"""


class MigrationError(Exception):
    """Migrations cannot be applied; the message says which file and why."""


class ChecksumMismatch(MigrationError):
    """An applied migration's file has changed since."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One ``sql/NNN_name.sql`` file."""

    version: int
    name: str
    path: Path
    checksum: str

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(frozen=True, slots=True)
class Applied:
    """A row of ``schema_migrations``."""

    version: int
    name: str
    checksum: str
    applied_at: datetime
    duration_ms: int


@dataclass(slots=True)
class Status:
    """What :func:`status` found: applied, pending, changed and unknown migrations."""

    applied: list[Applied] = field(default_factory=list)
    pending: list[Migration] = field(default_factory=list)
    #: applied, but the file now has another checksum: (file, row)
    changed: list[tuple[Migration, Applied]] = field(default_factory=list)
    #: applied, but no such file here (the database is newer than this ccd)
    unknown: list[Applied] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.changed

    def describe_changes(self) -> str:
        """What changed in applied migrations, and what to do about it."""
        lines = [f"{m.filename} was changed after it was applied on "
                 f"{a.applied_at:%Y-%m-%d %H:%M} (applied sha256 {a.checksum[:12]}..., "
                 f"file now {m.checksum[:12]}...)" for m, a in self.changed]
        return ("; ".join(lines) + ". Restore the applied version of the file and put the "
                "change in a new migration.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``ccd db status --json``)."""
        files = {m.version: m for m, _ in self.changed}
        return {
            "up_to_date": self.up_to_date,
            "applied": [{"version": a.version, "name": a.name, "checksum": a.checksum,
                         "applied_at": a.applied_at.isoformat(),
                         "duration_ms": a.duration_ms,
                         "state": ("changed" if a.version in files else
                                   "unknown" if a in self.unknown else "applied")}
                        for a in self.applied],
            "pending": [{"version": m.version, "name": m.name, "file": m.filename,
                         "checksum": m.checksum} for m in self.pending],
            "changed": [{"version": m.version, "file": m.filename, "applied": a.checksum,
                         "now": m.checksum} for m, a in self.changed],
            "unknown": [{"version": a.version, "name": a.name} for a in self.unknown],
        }


def checksum(data: bytes) -> str:
    """sha256 (hex) of a migration file, ignoring CR/LF differences."""
    return hashlib.sha256(data.replace(b"\r\n", b"\n")).hexdigest()


def sql_dir() -> Path:
    """The directory holding the migrations (see the module docstring for the search order)."""
    env = os.environ.get("CCD_SQL_DIR")
    if env:  # explicit: no fallback
        if Path(env).is_dir() and any(Path(env).glob("*.sql")):
            return Path(env)
        raise MigrationError(f"CCD_SQL_DIR={env} is not a directory holding NNN_*.sql files")
    candidates = [Path(__file__).resolve().parents[2] / "sql"]
    with contextlib.suppress(ModuleNotFoundError, TypeError):  # zip imports
        candidates.append(Path(str(resources.files("ccd") / "sql")))
    candidates.append(Path(sys.prefix) / "share" / "ccd" / "sql")
    for c in candidates:
        if c.is_dir() and any(c.glob("*.sql")):
            return c
    raise MigrationError("no migrations found; looked in " + ", ".join(map(str, candidates))
                         + " (set CCD_SQL_DIR to the directory holding sql/NNN_*.sql)")


def discover(directory: Path | None = None) -> list[Migration]:
    """The migration files of ``directory`` (default :func:`sql_dir`), by version."""
    directory = directory or sql_dir()
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = FILE_RE.match(path.name)
        if not m:
            raise MigrationError(f"{path}: migration files must be named NNN_name.sql")
        version = int(m["version"])
        if version in found:
            raise MigrationError(f"{path.name} and {found[version].filename} "
                                 f"share version {version}")
        found[version] = Migration(version, m["name"], path, checksum(path.read_bytes()))
    return [found[v] for v in sorted(found)]


def _applied(conn: psycopg.Connection[Any]) -> list[Applied]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute("SELECT version, name, checksum, applied_at, duration_ms "
                        "FROM schema_migrations ORDER BY version").fetchall()
    return [Applied(*r) for r in rows]


def _compare(files: list[Migration], applied: list[Applied]) -> Status:
    by_version = {a.version: a for a in applied}
    known = {m.version for m in files}
    st = Status(applied=applied)
    for m in files:
        a = by_version.get(m.version)
        if a is None:
            st.pending.append(m)
        elif a.checksum != m.checksum:
            st.changed.append((m, a))
    st.unknown = [a for a in applied if a.version not in known]
    return st


def status(url: str, directory: Path | None = None) -> Status:
    """Applied and pending migrations of the database at ``url`` (reads only)."""
    files = discover(directory)
    with connect(url, autocommit=True, application_name="ccd-migrate") as conn:
        try:
            return _compare(files, _applied(conn))
        except psycopg.OperationalError as exc:
            raise _lost(url, conn, exc, "reading the applied migrations") from exc


def _lost(url: str, conn: psycopg.Connection[Any], exc: psycopg.Error, doing: str
          ) -> Exception:
    if conn.broken or conn.closed:
        return DatabaseUnavailable(f"lost the connection to {redact_url(url)} while {doing}: "
                                   f"{describe_error(exc)}")
    return MigrationError(f"{doing} failed: {describe_error(exc)}")


def _lock(conn: psycopg.Connection[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = False
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEY).fetchone()
        if row and row[0]:
            return
        if not waiting:
            log.info("another ccd is migrating this database; waiting up to %g s", timeout)
            waiting = True
        if time.monotonic() >= deadline:
            raise MigrationError(f"could not take the migration lock within {timeout:g} s "
                                 "(another ccd is still migrating this database)")
        time.sleep(0.2)


def _apply(conn: psycopg.Connection[Any], m: Migration) -> int:
    """Run one migration and record it, in one transaction; return its duration in ms."""
    started = time.monotonic()
    try:
        with conn.transaction():
            script = m.path.read_bytes()
            if checksum(script) != m.checksum:
                raise MigrationError(f"{m.filename} changed while it was being applied")
            conn.execute(script)
            ms = round((time.monotonic() - started) * 1000)
            conn.execute("INSERT INTO schema_migrations (version, name, checksum, duration_ms) "
                         "VALUES (%s, %s, %s, %s)", (m.version, m.name, m.checksum, ms))
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raise
        diag = exc.diag
        where = f" at {' '.join(diag.context.split())}" if diag and diag.context else ""
        raise MigrationError(f"{m.filename} failed and was rolled back: "
                             f"{describe_error(exc)}{where}") from exc
    return ms


def upgrade(url: str, directory: Path | None = None, *, lock_timeout: float = 120.0
            ) -> list[Migration]:
    """Apply every pending migration in version order; return those applied now.

    Raises :class:`ChecksumMismatch` (before applying anything) when an applied file
    changed, :class:`MigrationError` when a migration fails (that migration is rolled
    back; the ones before it stay applied), and
    :class:`~ccd.store.db.DatabaseUnavailable` when the database cannot be reached.
    """
    files = discover(directory)
    done: list[Migration] = []
    with connect(url, autocommit=True, application_name="ccd-migrate") as conn:
        doing = "taking the migration lock"
        try:
            _lock(conn, lock_timeout)
            doing = "reading the applied migrations"
            conn.execute(BOOTSTRAP)
            st = _compare(files, _applied(conn))
            if st.changed:
                raise ChecksumMismatch(st.describe_changes())
            for a in st.unknown:
                log.warning("migration %03d_%s is applied but this ccd has no such file "
                            "(the database is newer than this ccd)", a.version, a.name)
            top = max((a.version for a in st.applied), default=0)
            for m in st.pending:
                if m.version < top:
                    log.warning("applying %s after newer migration %03d", m.filename, top)
                log.info("applying migration %s", m.filename)
                doing = f"applying {m.filename}"
                ms = _apply(conn, m)
                log.info("applied %s in %d ms", m.filename, ms)
                done.append(m)
        except psycopg.Error as exc:
            raise _lost(url, conn, exc, doing) from exc
        finally:
            if not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", LOCK_KEY)
    if not done:
        log.info("database %s is up to date", redact_url(url))
    return done
