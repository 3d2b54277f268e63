"""Recording paths are confined to the tenant's directory, <recording.dir>/<slug>/.

Hostile names arrive the way Asterisk sends them, as AMI ``VarSet`` of
``MIXMONITOR_FILENAME`` in a real capture, and go through the real parser, model and
writer; files and symbolic links are real files on disk.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ccd.ami.capture import rewrite_variable
from ccd.cli.replay import replay_bytes
from ccd.config import Config
from ccd.model.domain import (
    CallEnded,
    CallQueued,
    CallRecord,
    CallStarted,
    DomainEvent,
    RecordingStarted,
)
from ccd.model.live import LiveModel
from ccd.recfiles import Refused, ensure_dirs, locate, open_recording, remove_recording
from ccd.store.db import open_async_pool
from ccd.store.writer import EventWriter

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"


def q(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


async def write(url: str, tmp_path: Path, events: list[DomainEvent],
                recording_dir: Path | None) -> None:
    pool = await open_async_pool(url, name="test")
    w = EventWriter(pool, tmp_path / "spool", flush_interval=0.02, recording_dir=recording_dir)
    await w.start()
    try:
        for e in events:
            w.submit(e)
        await w.flush(30)
        assert w.stats.rejected == 0
    finally:
        await w.close()
        await pool.close()


def tenants(url: str, *slugs: str, did: str = "5551000") -> dict[str, int]:
    """Tenants by slug; the first gets the capture's DID and queue (its calls)."""
    ids = {}
    with psycopg.connect(url) as conn:
        for i, slug in enumerate(slugs):
            (tid,) = conn.execute("INSERT INTO tenants (slug, name) VALUES (%s, %s) RETURNING id",
                                  (slug, slug.title())).fetchone()  # type: ignore[misc]
            ids[slug] = tid
            if i == 0:
                conn.execute("INSERT INTO dids (number, tenant_id) VALUES (%s, %s)", (did, tid))
                conn.execute("INSERT INTO queues (tenant_id, name) VALUES (%s, 'support')",
                             (tid,))
    return ids


def replay(name: str, move: Callable[[str], str]) -> list[DomainEvent]:
    """A capture with its MIXMONITOR_FILENAME values replaced by ``move(value)``."""
    (path,) = CAPTURES.rglob(f"{name}*.ami")
    data = rewrite_variable(path.read_bytes(), "MIXMONITOR_FILENAME", move)
    events, _ = replay_bytes(data, LiveModel(Config().model_config_obj()))
    return events


def started(events: list[DomainEvent]) -> dict[str, str]:
    """file -> call id of every recording the model saw start."""
    return {e.file: e.call_id for e in events if isinstance(e, RecordingStarted)}


# ------------------------------------------------------------------ through AMI


async def test_hostile_names_from_ami_varsets_are_refused(
        db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rec, outside = tmp_path / "rec", tmp_path / "outside"
    day = rec / "demo" / "2026" / "11" / "23"
    for d in (day, rec / "other" / "2026", outside):
        d.mkdir(parents=True)
    secret = outside / "secret.wav"
    secret.write_bytes(b"RIFF" + b"s" * 100)
    (day / "ok.wav").write_bytes(b"RIFF" + b"a" * 100)
    (day / "target.wav").write_bytes(b"RIFF" + b"t" * 100)
    (rec / "other" / "2026" / "x.wav").write_bytes(b"RIFF" + b"o" * 100)
    (rec / "demo" / "inner.wav").symlink_to(day / "target.wav")  # a link inside: resolved
    (rec / "demo" / "link.wav").symlink_to(secret)  # a link out of the tenant's directory
    (rec / "demo" / "dirlink").symlink_to(outside, target_is_directory=True)
    tenants(db_url, "demo", "other")

    good = {f"{day}/ok.wav": f"{day}/ok.wav",
            f"{day}/later.wav": f"{day}/later.wav",  # Asterisk has not created it yet
            f"{rec}/demo/inner.wav": f"{day}/target.wav",
            f"{day}/录音.wav": f"{day}/录音.wav"}
    hostile = {"/etc/passwd": "outside recording.dir",
               f"{rec}/demo/../../outside/secret.wav": "outside recording.dir",
               f"{rec}/demo/link.wav": "after resolving links",
               f"{rec}/demo/dirlink/secret.wav": "after resolving links",
               f"{rec}/other/2026/x.wav": "in the directory of tenant other",
               f"{rec}/demo/../other/y.wav": "in the directory of tenant other",
               f"{rec}/x.wav": "not inside a tenant's directory",
               f"{rec}/demo": "not inside a tenant's directory",
               f"{rec}/Demo/x.wav": "is not a tenant's directory",
               "relative/x.wav": "not an absolute path",
               f"{day}/a\tb.wav": "control characters",
               f"{day}/{'a' * 5000}.wav": "longer than 4096"}
    names = iter([*good, *hostile])
    moved: dict[str, str] = {}

    def move(original: str) -> str:  # scenario08: 20 calls, one recording each
        moved[original] = next(names, f"{day}/spare-{len(moved)}.wav")
        return moved[original]

    events = replay("scenario08", move)
    calls = started(events)
    assert set(good) | set(hostile) <= set(calls)  # every name reached the model as sent
    with caplog.at_level(logging.WARNING):
        await write(db_url, tmp_path, events, rec)

    indexed = {p for (p,) in q(db_url, "SELECT path FROM recordings")}
    spares = {p for p in moved.values() if "/spare-" in p}
    assert indexed == set(good.values()) | spares
    refused = {(c, p): r for c, p, r in q(db_url, "SELECT call_id, path, reason "
                                                  "FROM recording_refusals")}
    assert {p for _, p in refused} == {p[:4200] for p in hostile}
    for path, why in hostile.items():
        call = calls[path]
        assert why in refused[(call, path[:4200])], (path, refused[(call, path[:4200])])
        # logged with the call id; the call itself is stored as usual
        assert any(f"recording of call {call} refused" in r.getMessage()
                   for r in caplog.records), path
        assert q(db_url, "SELECT NOT open FROM calls WHERE call_id = %s", (call,)) == [(True,)]
    # a refusal is logged once per call, not for every event that repeats the path
    assert len(q(db_url, "SELECT 1 FROM recording_refusals")) == len(hostile)


async def test_safety_net_recording_inside_the_tenant_is_indexed_outside_refused(
        make_db: Callable[..., str], tmp_path: Path) -> None:
    """F4b: an on-demand recording by ccd, then the ccd-outbound safety net of the
    transfer. Where the dialplan used to write it (flat in the monitor directory) it is
    refused; under <recording dir>/<tenant slug>/ it is indexed with the call."""
    rec = tmp_path / "rec"
    monitor = "/var/spool/asterisk/monitor/"
    call = "1796696283.9"

    def into_tenant(p: str) -> str:
        return p.replace(monitor + "ccd/", f"{rec}/").replace(monitor, f"{rec}/demo/2026/12/08/")

    def as_captured(p: str) -> str:  # ccd's recording.dir was <monitor>/ccd
        return p.replace(monitor + "ccd/", f"{rec}/")

    moved, flat = make_db(), make_db()
    for url in (moved, flat):
        tenants(url, "demo")
    await write(moved, tmp_path / "a", replay("F4b", into_tenant), rec)
    await write(flat, tmp_path / "b", replay("F4b", as_captured), rec)
    own = f"{rec}/demo/2026/12/08/{call}.wav"
    net = f"{rec}/demo/2026/12/08/20261208-021829-out-{call}.wav"
    assert q(moved, "SELECT call_id, path FROM recordings ORDER BY started_at") == [
        (call, own), (call, net)]
    assert q(moved, "SELECT count(*) FROM recording_refusals") == [(0,)]
    assert q(flat, "SELECT call_id, path FROM recordings") == [(call, own)]
    [(path, reason)] = q(flat, "SELECT path, reason FROM recording_refusals WHERE call_id = %s",
                         (call,))
    assert path == f"{monitor}20261208-021829-out-{call}.wav"
    assert "outside recording.dir" in reason


async def test_recordings_follow_the_call_into_its_final_tenant(db_url: str,
                                                                tmp_path: Path) -> None:
    """A recording accepted while the call was the default tenant's (the safety net starts
    before the queue is known) leaves the index at call_ended when the call turned out to
    be another tenant's: it is not in that tenant's directory."""
    rec = tmp_path / "rec"
    ids = tenants(db_url, "beta")  # owns queue support, not the DID below
    early, own = f"{rec}/default/net.wav", f"{rec}/beta/own.wav"
    record = CallRecord(call_id="c1", direction="inbound", did="5559999", start=100.0,
                        end=130.0, queue="support", recordings=[early, own])
    events: list[DomainEvent] = [
        CallStarted(100.0, "c1", "inbound", "5559999", "5557770001", "Carol", "PJSIP/2000-1",
                    "c1"),
        RecordingStarted(101.0, "c1", "PJSIP/2000-1", early),
        CallQueued(102.0, "c1", "support", 1, 1, "5557770001", "Carol"),
        RecordingStarted(110.0, "c1", "PJSIP/2000-1", own),
        CallEnded(130.0, "c1", "caller", 16, "Normal Clearing", 10.0, 30.0, record)]
    await write(db_url, tmp_path, events, rec)
    assert q(db_url, "SELECT tenant_id, path FROM recordings") == [(ids["beta"], own)]
    [(path, reason)] = q(db_url, "SELECT path, reason FROM recording_refusals")
    assert path == early and f"not in {rec}/beta/" in reason


async def test_a_writer_without_a_recording_dir_indexes_nothing(db_url: str,
                                                                tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    tenants(db_url, "demo")
    await write(db_url, tmp_path, replay("F4b", lambda p: p.replace(
        "/var/spool/asterisk/monitor/ccd/", f"{rec}/")), None)
    assert q(db_url, "SELECT count(*) FROM recordings") == [(0,)]
    assert {r for (r,) in q(db_url, "SELECT reason FROM recording_refusals")} == \
        {"the writer has no recording directory (recording.dir)"}


# ------------------------------------------------------------------ files on disk


def test_locate_resolves_links_and_dots(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    (root / "acme").mkdir(parents=True)
    (root / "acme" / "up").symlink_to(root, target_is_directory=True)
    assert locate(f"{root}/acme/2026/x.wav", root) == (f"{root}/acme/2026/x.wav", "acme")
    assert locate(f"{root}/acme/../acme/x.wav", root) == (f"{root}/acme/x.wav", "acme")
    # a link that stays in recording.dir but lands in another tenant's directory
    assert locate(f"{root}/acme/up/beta/x.wav", root) == (f"{root}/beta/x.wav", "beta")
    for bad in (f"{root}/../x.wav", f"{root}/acme/up/x.wav", "x.wav", "", None, 42):
        with pytest.raises(Refused):
            locate(bad, root)


def test_use_time_checks_refuse_links_planted_after_indexing(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    day = root / "acme" / "2026"
    day.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.wav").write_bytes(b"precious")
    (day / "a.wav").write_bytes(b"RIFF" + b"\0" * 40)
    fd, st = open_recording(f"{day}/a.wav", root, "acme")
    os.close(fd)
    assert st.st_size == 44
    # the indexed path belongs to acme: another tenant's name for it is refused
    with pytest.raises(Refused, match="not inside tenant beta"):
        open_recording(f"{day}/a.wav", root, "beta")
    with pytest.raises(Refused, match=r"'\.\.'"):
        open_recording(f"{day}/../2026/a.wav", root, "acme")
    # the file replaced by a link to a file outside
    (day / "a.wav").unlink()
    (day / "a.wav").symlink_to(outside / "victim.wav")
    with pytest.raises(Refused, match="symbolic link"):
        open_recording(f"{day}/a.wav", root, "acme")
    with pytest.raises(Refused, match="symbolic link"):
        remove_recording(f"{day}/a.wav", root, "acme")
    # a directory on the way replaced by a link
    (day / "a.wav").unlink()
    day.rmdir()
    day.symlink_to(outside, target_is_directory=True)
    with pytest.raises(Refused, match="symbolic link or not a directory"):
        remove_recording(f"{day}/victim.wav", root, "acme")
    with pytest.raises(Refused, match="symbolic link or not a directory"):
        open_recording(f"{day}/victim.wav", root, "acme")
    assert (outside / "victim.wav").read_bytes() == b"precious"
    # not a regular file; a second hard link
    day.unlink()
    day.mkdir()
    os.mkfifo(day / "fifo.wav")
    with pytest.raises(Refused, match="not a regular file"):
        open_recording(f"{day}/fifo.wav", root, "acme")
    (day / "b.wav").write_bytes(b"x")
    os.link(day / "b.wav", day / "c.wav")
    with pytest.raises(Refused, match="2 hard links"):
        open_recording(f"{day}/c.wav", root, "acme")
    with pytest.raises(FileNotFoundError):
        remove_recording(f"{day}/gone.wav", root, "acme")
    assert remove_recording(f"{day}/c.wav", root, "acme", dry_run=True) == 1
    assert (day / "c.wav").exists()
    assert remove_recording(f"{day}/c.wav", root, "acme") == 1
    assert not (day / "c.wav").exists() and (day / "b.wav").exists()


@pytest.mark.parametrize("mode", [0o750, 0o2770])
def test_directories_are_created_with_the_mode_whatever_the_umask(tmp_path: Path,
                                                                   mode: int) -> None:
    root = tmp_path / "rec"
    old = os.umask(0)
    try:
        made = ensure_dirs(root, root / "acme" / "2026" / "12" / "08", mode)
    finally:
        os.umask(old)
    assert [p.relative_to(tmp_path).as_posix() for p in made] == \
        ["rec", "rec/acme", "rec/acme/2026", "rec/acme/2026/12", "rec/acme/2026/12/08"]
    for p in made:
        assert stat.S_IMODE(p.stat().st_mode) == mode, p
    # existing directories are not changed; nothing outside recording.dir is created
    os.chmod(root / "acme", 0o700)
    assert ensure_dirs(root, root / "acme" / "2026") == []
    assert stat.S_IMODE((root / "acme").stat().st_mode) == 0o700
    with pytest.raises(Refused):
        ensure_dirs(root, tmp_path / "elsewhere")
    assert not re.search("elsewhere", " ".join(os.listdir(tmp_path)))
