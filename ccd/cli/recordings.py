"""``ccd recordings``: list, export, refused paths, retention (on the database directly).

Every file is reached through :mod:`ccd.recfiles`: only a regular file inside its tenant's
directory ``<recording.dir>/<slug>/``, without following a symbolic link, is ever read or
deleted; anything else is *refused*, logged with its call and left alone.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import click
import psycopg

from ccd.cli.admin import _range, fail
from ccd.cli.dbctx import open_db, rows, tenant_id
from ccd.cli.main import EXIT_ERROR, EXIT_NOT_FOUND, Ctx, cli, pass_ctx
from ccd.cli.output import ok, show
from ccd.recfiles import DIR_MODE, FILE_MODE, Refused, content, open_recording, real_root

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
MANIFEST = ["recording_id", "call_id", "tenant", "started_at", "stopped_at", "agent",
            "queue", "caller", "file", "bytes", "status", "detail", "source"]


@cli.group()
def recordings() -> None:
    """Call recordings: list, export, refused, retention."""


def _recording_rows(conn: psycopg.Connection[Any], start: Any, end: Any,
                    tenant: str | None, call_id: str | None) -> list[dict[str, Any]]:
    tid = tenant_id(conn, tenant)
    return rows(conn, "SELECT r.id, t.slug AS tenant, r.call_id, r.path, r.started_at, "
                "r.stopped_at, c.caller_num, c.agent, c.queue, (SELECT count(*) FROM "
                "recording_pauses p WHERE p.call_id = r.call_id) AS pauses FROM recordings r "
                "JOIN calls c ON c.call_id = r.call_id JOIN tenants t ON t.id = r.tenant_id "
                "WHERE (%s::text IS NULL OR r.call_id = %s::text) AND (%s::text IS NOT NULL "
                "OR COALESCE(r.started_at, c.started_at) BETWEEN %s AND %s) AND "
                "(%s::bigint IS NULL OR r.tenant_id = %s::bigint) "
                "ORDER BY COALESCE(r.started_at, c.started_at), r.id",
                call_id, call_id, call_id, start, end, tid, tid)


def file_status(path: str, root: Path, slug: str) -> tuple[str, str, int | None]:
    """``(status, detail, bytes)`` of an indexed recording: ``audio``, ``header-only``,
    ``empty``, ``missing`` or ``refused``."""
    try:
        fd, st = open_recording(path, root, slug)
    except Refused as exc:
        return "refused", exc.reason, None
    except FileNotFoundError:
        return "missing", "no such file", None
    except OSError as exc:
        return "error", exc.strerror or str(exc), None
    try:
        return content(fd, st.st_size), "", st.st_size
    finally:
        os.close(fd)


@recordings.command("list")
@click.option("--from", "since", help="Start (ISO date/time, UTC; default: 24 h ago).")
@click.option("--to", "until", help="End (default: now).")
@click.option("--tenant", help="Only this tenant (slug).")
@click.option("--call", "call_id", help="Only this call.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def recordings_list(ctx: Ctx, since: str | None, until: str | None, tenant: str | None,
                    call_id: str | None, as_json: bool) -> None:
    """Recordings indexed with their calls (file: audio, header-only, empty, missing or
    refused)."""
    start, end = _range(since, until)
    root = real_root(ctx.config.recording.dir)
    with open_db(ctx.config) as conn:
        data = _recording_rows(conn, start, end, tenant, call_id)
    for r in data:
        r["file"], r["file_detail"], r["bytes"] = file_status(r["path"], root, r["tenant"])
        r["exists"] = r["file"] in ("audio", "header-only", "empty")
    show(data, [("call_id", "call"), ("tenant", "tenant"), ("started_at", "started"),
                ("agent", "agent"), ("queue", "queue"), ("caller_num", "caller"),
                ("pauses", "pauses"), ("file", "file"), ("bytes", "bytes"), ("path", "path")],
         title="Recordings", as_json=as_json, empty="no recordings in that range")


def _exclusive(dest: Path, name: str) -> int:
    """A new file ``dest/name`` (mode 0640) opened for writing; FileExistsError if any
    file (or link) of that name is there: nothing in DEST is ever overwritten."""
    return os.open(dest / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                   | os.O_CLOEXEC, FILE_MODE)


def _manifest(dest: Path) -> tuple[Path, Any]:
    for n in range(1000):
        name = "manifest.csv" if n == 0 else f"manifest-{n}.csv"
        try:
            fd = _exclusive(dest, name)
        except FileExistsError:
            continue
        os.fchmod(fd, FILE_MODE)
        return dest / name, os.fdopen(fd, "w", newline="", encoding="utf-8")
    fail(f"{dest} already holds manifest.csv ... manifest-999.csv")
    raise AssertionError  # unreachable


def export_name(r: dict[str, Any]) -> str:
    """``<tenant>-<call id>-<recording id><ext>``: unique per recording (a call may have
    several), made only of safe characters."""
    suffix = Path(r["path"]).suffix
    suffix = suffix if _SUFFIX.fullmatch(suffix) else ".wav"
    return f"{r['tenant']}-{_UNSAFE.sub('_', r['call_id'])}-{r['id']}{suffix}"


def export_one(r: dict[str, Any], root: Path, dest: Path) -> tuple[str, str, str, int | None]:
    """Copy one recording into ``dest``: ``(status, exported name, detail, bytes)``.

    status: ``copied`` (audio), ``header-only`` / ``empty`` (copied, but no audio),
    ``missing``, ``refused`` (not copied: outside the tenant's directory, a link, not a
    regular file ...), ``exists`` (a file of that name is already in DEST: not
    overwritten) or ``error``.
    """
    name = export_name(r)
    try:
        src, st = open_recording(r["path"], root, r["tenant"])
    except Refused as exc:
        log.warning("export: recording %s of call %s refused: %s", r["path"], r["call_id"],
                    exc.reason)
        return "refused", "", exc.reason, None
    except FileNotFoundError:
        return "missing", "", "no such file", None
    except OSError as exc:
        return "error", "", exc.strerror or str(exc), None
    try:
        kind = content(src, st.st_size)
        try:
            dst = _exclusive(dest, name)
        except FileExistsError:
            return ("exists", name, "a file of that name is already there: not overwritten",
                    st.st_size)
        try:
            size = _copy(src, dst, st)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(dest / name)
            return "error", "", f"copy failed: {exc.strerror or exc}", st.st_size
        finally:
            os.close(dst)
    finally:
        os.close(src)
    if size != st.st_size:
        return "error", name, f"the file changed while copying ({size} of {st.st_size} " \
            "bytes copied)", size
    if kind == "audio":
        return "copied", name, "", size
    what = "a WAV header only, no audio" if kind == "header-only" else "an empty file"
    return kind, name, f"copied, but it is {what} ({size} bytes)", size


def _copy(src: int, dst: int, st: os.stat_result) -> int:
    os.fchmod(dst, FILE_MODE)
    offset = 0
    while offset < st.st_size:
        sent = os.sendfile(dst, src, offset, st.st_size - offset)
        if sent == 0:
            break
        offset += sent
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    return offset


@recordings.command("export")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--from", "since")
@click.option("--to", "until")
@click.option("--tenant")
@click.option("--call", "call_id")
@pass_ctx
def recordings_export(ctx: Ctx, dest: Path, since: str | None, until: str | None,
                      tenant: str | None, call_id: str | None) -> None:
    """Copy recordings to DEST with a manifest.csv that tells, per recording, what happened
    (copied, header-only, empty, missing, refused, exists). Nothing in DEST is overwritten.
    Exit 1 if a recording was refused or failed, 4 if none could be copied."""
    start, end = _range(since, until)
    root = real_root(ctx.config.recording.dir)
    with open_db(ctx.config) as conn:
        data = _recording_rows(conn, start, end, tenant, call_id)
    if not data:
        fail("no recordings match", EXIT_NOT_FOUND)
    dest.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    counts: dict[str, int] = {}
    manifest, f = _manifest(dest)
    with f:
        w = csv.writer(f)
        w.writerow(MANIFEST)
        with click.progressbar(data, label="exporting", file=sys.stderr) as bar:
            for r in bar:
                status, name, detail, size = export_one(r, root, dest)
                counts[status] = counts.get(status, 0) + 1
                w.writerow([r["id"], r["call_id"], r["tenant"], r["started_at"] or "",
                            r["stopped_at"] or "", r["agent"], r["queue"], r["caller_num"],
                            name, "" if size is None else size, status, detail, r["path"]])
    copied = sum(counts.get(k, 0) for k in ("copied", "header-only", "empty"))
    others = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()) if k != "copied")
    ok(f"exported {copied} of {len(data)} recordings to {dest}"
       + (f" ({others})" if others else "") + f"; see {manifest.name}")
    if counts.get("refused") or counts.get("error"):
        sys.exit(EXIT_ERROR)
    if not copied and not counts.get("exists"):
        sys.exit(EXIT_NOT_FOUND)


@recordings.command("refused")
@click.option("--from", "since", help="Start (ISO date/time, UTC; default: 24 h ago).")
@click.option("--to", "until", help="End (default: now).")
@click.option("--tenant", help="Only this tenant (slug).")
@click.option("--call", "call_id", help="Only this call.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def recordings_refused(ctx: Ctx, since: str | None, until: str | None, tenant: str | None,
                       call_id: str | None, as_json: bool) -> None:
    """Recording paths that were not indexed because they are outside their tenant's
    directory (<recording.dir>/<tenant>/)."""
    start, end = _range(since, until)
    with open_db(ctx.config) as conn:
        tid = tenant_id(conn, tenant)
        data = rows(conn, "SELECT f.refused_at, t.slug AS tenant, f.call_id, f.path, f.reason "
                    "FROM recording_refusals f JOIN tenants t ON t.id = f.tenant_id "
                    "WHERE (%s::text IS NULL OR f.call_id = %s::text) AND (%s::text IS NOT "
                    "NULL OR f.refused_at BETWEEN %s AND %s) AND (%s::bigint IS NULL OR "
                    "f.tenant_id = %s::bigint) ORDER BY f.refused_at, f.id",
                    call_id, call_id, call_id, start, end, tid, tid)
    show(data, [("refused_at", "refused"), ("tenant", "tenant"), ("call_id", "call"),
                ("path", "path"), ("reason", "reason")], title="Refused recording paths",
         as_json=as_json, empty="no refused recording paths in that range")


@recordings.command("retention")
@click.option("--dry-run", is_flag=True, help="Only report what would be deleted.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def recordings_retention(ctx: Ctx, dry_run: bool, as_json: bool) -> None:
    """Delete recordings and call data older than each tenant's retention period now
    (only files inside the tenant's directory; others are refused and left alone)."""
    from ccd.jobs.retention import run_retention
    from ccd.store.embedded import database_url

    with open_db(ctx.config):
        pass  # schema up to date, database reachable
    with database_url(ctx.config) as url:
        result = run_retention(url, dry_run=dry_run, recording_dir=ctx.config.recording.dir)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    skip = ("missing", "failed", "refused")
    rows_out = [{"tenant": slug, **{k: v for k, v in t.items() if k not in skip}}
                for slug, t in result["tenants"].items()]
    show(rows_out, [("tenant", "tenant"), ("cutoff", "older than"),
                    ("files_deleted", "files deleted"), ("files_missing", "already missing"),
                    ("files_refused", "refused"), ("errors", "errors"),
                    ("rows_deleted", "rows")],
         title="Retention" + (" (dry run)" if dry_run else ""))
    for t in result["tenants"].values():
        for p in t["missing"]:
            click.echo(f"missing file (row removed): {p}", err=True)
        for p in t["refused"]:
            click.echo(f"refused (outside the tenant's directory, left alone): {p}", err=True)
        for p in t["failed"]:
            click.echo(f"could not delete: {p}", err=True)
    if result["errors"] or result["files_refused"]:
        sys.exit(EXIT_ERROR)
