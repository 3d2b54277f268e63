"""The retention job: delete recordings and call data older than each tenant's period.

A file that is already gone is reported (``files_missing``), not an error; a file that
cannot be deleted (permissions) keeps its row so the next run retries it. Only a regular
file inside the tenant's directory ``<recording.dir>/<slug>/``, reached without following
a symbolic link, is ever deleted (:func:`ccd.recfiles.remove_recording`); any other path is
refused (``files_refused``): logged with its call, the file left alone, the row kept (and
with it the call) for an operator to look at. Each run is recorded in ``retention_runs``
and logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from ccd.recfiles import Refused, real_root, remove_recording
from ccd.store.db import connect

log = logging.getLogger(__name__)


def run_retention(url: str, now: datetime | None = None, dry_run: bool = False,
                  recording_dir: Path | str | None = None) -> dict[str, Any]:
    """Apply every tenant's retention period once; return what was (or would be) done.

    ``recording_dir`` is ``recording.dir``: recordings are deleted only inside
    ``<recording_dir>/<tenant slug>/`` (without it, none is).
    """
    now = now or datetime.now(UTC)
    root = real_root(recording_dir) if recording_dir is not None else None
    total: dict[str, Any] = {"files_deleted": 0, "files_missing": 0, "files_refused": 0,
                             "rows_deleted": 0, "bytes_freed": 0, "errors": 0, "tenants": {},
                             "dry_run": dry_run}
    with connect(url, application_name="ccd-retention") as conn:
        tenants = conn.execute("SELECT id, slug, retention_days FROM tenants ORDER BY id"
                               ).fetchall()
        for tenant_id, slug, days in tenants:
            cutoff = now - timedelta(days=days)
            t = {"cutoff": cutoff.isoformat(), "files_deleted": 0, "files_missing": 0,
                 "files_refused": 0, "errors": 0, "rows_deleted": 0, "missing": [],
                 "failed": [], "refused": []}
            recs = conn.execute(
                "SELECT r.id, r.path, r.call_id FROM recordings r JOIN calls c "
                "ON c.call_id = r.call_id WHERE r.tenant_id = %s "
                "AND COALESCE(r.started_at, c.started_at) < %s ORDER BY r.id",
                (tenant_id, cutoff)).fetchall()
            gone: list[int] = []
            for rec_id, path, call_id in recs:
                try:
                    if root is None:
                        raise Refused("no recording directory (recording.dir) given")
                    size = remove_recording(path, root, slug, dry_run)
                    t["files_deleted"] += 1
                    total["bytes_freed"] += size
                    gone.append(rec_id)
                except Refused as exc:
                    t["files_refused"] += 1
                    t["refused"].append(f"{path}: {exc.reason}")
                    log.warning("retention: recording %s of call %s refused, file left alone: %s",
                                path, call_id, exc.reason)
                except FileNotFoundError:
                    t["files_missing"] += 1
                    t["missing"].append(path)
                    gone.append(rec_id)
                except OSError as exc:
                    t["errors"] += 1
                    t["failed"].append(f"{path}: {exc.strerror or exc}")
                    log.error("retention: cannot delete %s: %s", path, exc)
            if not dry_run:
                with conn.transaction():
                    if gone:
                        conn.execute("DELETE FROM recordings WHERE id = ANY(%s)", (gone,))
                    cur = conn.execute(
                        "DELETE FROM calls c WHERE c.tenant_id = %s AND c.started_at < %s "
                        "AND NOT c.open AND NOT EXISTS (SELECT 1 FROM recordings r "
                        "WHERE r.call_id = c.call_id)", (tenant_id, cutoff))
                    rows = cur.rowcount
                    rows += conn.execute("DELETE FROM agent_states WHERE tenant_id = %s AND "
                                         "ended_at < %s", (tenant_id, cutoff)).rowcount
                    t["rows_deleted"] = rows
            else:
                row = conn.execute("SELECT count(*) FROM calls WHERE tenant_id = %s AND "
                                   "started_at < %s AND NOT open", (tenant_id, cutoff)).fetchone()
                t["rows_deleted"] = row[0] if row else 0
            keys = ("files_deleted", "files_missing", "files_refused", "errors", "rows_deleted")
            for k in keys:
                total[k] += t[k]
            total["tenants"][slug] = t
            if any(t[k] for k in keys):
                log.info("retention %s (older than %s): %d files deleted, %d already missing, "
                         "%d refused, %d errors, %d rows deleted%s", slug, cutoff.date(),
                         t["files_deleted"], t["files_missing"], t["files_refused"],
                         t["errors"], t["rows_deleted"], " (dry run)" if dry_run else "")
        if not dry_run:
            conn.execute("INSERT INTO retention_runs (files_deleted, files_missing, "
                         "files_refused, rows_deleted, bytes_freed, errors, detail) VALUES "
                         "(%s, %s, %s, %s, %s, %s, %s)",
                         (total["files_deleted"], total["files_missing"], total["files_refused"],
                          total["rows_deleted"], total["bytes_freed"], total["errors"],
                          Jsonb(total["tenants"])))
            conn.commit()
    return total
