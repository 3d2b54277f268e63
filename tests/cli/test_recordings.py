"""``ccd recordings list|export|refused`` and the retention job against a real PostgreSQL,
with real files: only a tenant's own directory is ever read or deleted, every recording
of a call is exported under its own name, the manifest says what happened to each file.

The calls are real captures (real-3 F4/F4b: an on-demand recording by ccd, then the
ccd-outbound safety net of a transfer: two recordings per call) through the real
parser, model and writer.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner

from ccd.ami.capture import rewrite_variable
from ccd.cli.main import cli
from ccd.cli.replay import replay_bytes
from ccd.config import Config
from ccd.jobs.retention import run_retention
from ccd.model.live import LiveModel
from ccd.sim.recording import wav_header, write_wav
from ccd.store.db import open_async_pool
from ccd.store.writer import EventWriter

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"
MONITOR = "/var/spool/asterisk/monitor/"
F4, F4B = "1796696178.5", "1796696283.9"  # the calls of real-3 F4 and F4b
DAY = "2026/12/08"


def run(db_url: str, tmp_path: Path, rec: Path, *args: str):
    env = {"CCD_DATABASE_URL": db_url, "CCD_DATA_DIR": str(tmp_path), "CCD_CONFIG": "",
           "CCD_RECORDING_DIR": str(rec)}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def into_tenant(rec: Path) -> Callable[[str], str]:
    """The captures' recordings where ccd and the dialplan now put them: ccd's own under
    <rec>/<slug>/ (the captures' recording.dir was <monitor>/ccd), the safety net's under
    <rec>/demo/<date>/ instead of flat in the monitor directory."""
    def move(p: str) -> str:
        if p.startswith(MONITOR + "ccd/"):
            return f"{rec}/{p[len(MONITOR) + 4:]}"
        return f"{rec}/demo/{DAY}/{p[len(MONITOR):]}" if p.startswith(MONITOR) else p
    return move


def store(db_url: str, tmp_path: Path, rec: Path, names: tuple[str, ...],
          move: Callable[[str], str]) -> None:
    """Tenant demo (DID 5551000, queue support); the captures through the real writer."""
    with psycopg.connect(db_url) as conn:
        (tid,) = conn.execute("INSERT INTO tenants (slug, name) VALUES ('demo', 'Demo') "
                              "RETURNING id").fetchone()  # type: ignore[misc]
        conn.execute("INSERT INTO dids (number, tenant_id) VALUES ('5551000', %s)", (tid,))
        conn.execute("INSERT INTO queues (tenant_id, name) VALUES (%s, 'support')", (tid,))

    async def go() -> None:
        pool = await open_async_pool(db_url, name="test")
        writer = EventWriter(pool, tmp_path / "spool", flush_interval=0.05, recording_dir=rec)
        await writer.start()
        for name in names:
            (path,) = CAPTURES.rglob(f"{name}-*.ami")
            data = rewrite_variable(path.read_bytes(), "MIXMONITOR_FILENAME", move)
            events, _ = replay_bytes(data, LiveModel(Config().model_config_obj()))
            for e in events:
                writer.submit(e)
        await writer.flush(30)
        await writer.close()
        await pool.close()

    asyncio.run(go())


def recordings_on_disk(rec: Path) -> dict[str, Path]:
    """The files Asterisk wrote for F4 and F4b (F4's transfer failed: its safety net is
    a 44-byte header, as MixMonitor b leaves it for a channel never bridged again)."""
    day = rec / "demo" / DAY
    files = {"f4": day / f"{F4}.wav", "f4-net": day / f"20261208-021645-out-{F4}.wav",
             "f4b": day / f"{F4B}.wav", "f4b-net": day / f"20261208-021829-out-{F4B}.wav"}
    day.mkdir(parents=True, exist_ok=True)
    write_wav(files["f4"], 3.0, [(0.0, 3.0)])
    files["f4-net"].write_bytes(wav_header(0))
    write_wav(files["f4b"], 2.0, [(0.0, 2.0)])
    write_wav(files["f4b-net"], 5.0, [(0.0, 5.0)])
    return files


def manifest(path: Path) -> dict[str, dict[str, Any]]:
    """Manifest rows by source path."""
    with path.open(newline="") as f:
        return {r["source"]: r for r in csv.DictReader(f)}


def test_export_gives_each_recording_its_own_file_and_a_true_manifest(
        db_url: str, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    store(db_url, tmp_path, rec, ("F4", "F4b"), into_tenant(rec))
    files = recordings_on_disk(rec)
    out = tmp_path / "export"
    r = run(db_url, tmp_path, rec, "recordings", "export", str(out), "--from", "2026-12-08",
            "--to", "2026-12-09")
    assert r.exit_code == 0, r.output
    m = manifest(out / "manifest.csv")
    assert {k: (m[str(p)]["call_id"], m[str(p)]["status"], int(m[str(p)]["bytes"]))
            for k, p in files.items()} == {
        "f4": (F4, "copied", files["f4"].stat().st_size),
        "f4-net": (F4, "header-only", 44),
        "f4b": (F4B, "copied", files["f4b"].stat().st_size),
        "f4b-net": (F4B, "copied", files["f4b-net"].stat().st_size)}
    assert "no audio" in m[str(files["f4-net"])]["detail"]
    # four files, one per recording, each the recording it names
    names = [m[str(p)]["file"] for p in files.values()]
    assert len(set(names)) == 4
    assert sorted(os.listdir(out)) == sorted([*names, "manifest.csv"])
    for p in files.values():
        exported = out / m[str(p)]["file"]
        assert exported.read_bytes() == p.read_bytes()
        assert stat.S_IMODE(exported.stat().st_mode) == 0o640
        assert exported.name.startswith(f"demo-{m[str(p)]['call_id']}-")
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert "exported 4 of 4" in r.output and "1 header-only" in r.output

    # exporting again into the same directory overwrites nothing, the manifest says so
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    again = run(db_url, tmp_path, rec, "recordings", "export", str(out), "--from",
                "2026-12-08", "--to", "2026-12-09")
    assert again.exit_code == 0, again.output
    assert {n: (out / n).read_bytes() for n in before} == before
    m2 = manifest(out / "manifest-1.csv")
    assert {r["status"] for r in m2.values()} == {"exists"}
    assert "not overwritten" in next(iter(m2.values()))["detail"]


def test_export_never_overwrites_and_tells_missing_and_refused_files(
        db_url: str, tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    store(db_url, tmp_path, rec, ("F4b",), into_tenant(rec))
    files = recordings_on_disk(rec)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(b"not this tenant's")
    files["f4b"].unlink()  # missing
    files["f4b-net"].unlink()  # replaced by a link out of the tenant's directory
    files["f4b-net"].symlink_to(outside / "secret.wav")
    with psycopg.connect(db_url) as conn:  # indexed before ccd confined paths
        conn.execute("INSERT INTO recordings (tenant_id, call_id, path) SELECT tenant_id, "
                     "call_id, %s FROM calls WHERE call_id = %s",
                     (str(outside / "secret.wav"), F4B))
    out = tmp_path / "export"
    out.mkdir()
    r = run(db_url, tmp_path, rec, "recordings", "export", str(out), "--call", F4B)
    assert r.exit_code == 1, r.output  # refused files need a look
    m = manifest(out / "manifest.csv")
    assert m[str(files["f4b"])]["status"] == "missing"
    assert m[str(files["f4b-net"])]["status"] == "refused"
    assert "symbolic link" in m[str(files["f4b-net"])]["detail"]
    legacy = m[str(outside / "secret.wav")]
    assert legacy["status"] == "refused" and "not inside tenant demo" in legacy["detail"]
    assert sorted(os.listdir(out)) == ["manifest.csv"]  # nothing of the outside copied

    # a file already in DEST with the name an export would take is left alone
    write_wav(files["f4b"], 1.0, [(0.0, 1.0)])
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "manifest.csv").write_text("someone else's\n")
    first = run(db_url, tmp_path, rec, "recordings", "export", str(tmp_path / "probe"),
                "--call", F4B)
    name = manifest(tmp_path / "probe" / "manifest.csv")[str(files["f4b"])]["file"]
    (dest / name).write_bytes(b"mine")
    r = run(db_url, tmp_path, rec, "recordings", "export", str(dest), "--call", F4B)
    assert first.exit_code == r.exit_code == 1
    assert (dest / name).read_bytes() == b"mine"
    assert (dest / "manifest.csv").read_text() == "someone else's\n"
    assert manifest(dest / "manifest-1.csv")[str(files["f4b"])]["status"] == "exists"


def test_list_and_refused_tell_where_each_path_stands(db_url: str, tmp_path: Path) -> None:
    rec = tmp_path / "rec"

    def as_captured(p: str) -> str:  # the safety net still flat in the monitor directory
        return p.replace(MONITOR + "ccd/", f"{rec}/")

    store(db_url, tmp_path, rec, ("F4", "F4b"), as_captured)
    day = rec / "demo" / DAY
    day.mkdir(parents=True)
    write_wav(day / f"{F4}.wav", 1.0, [(0.0, 1.0)])
    r = run(db_url, tmp_path, rec, "recordings", "list", "--from", "2026-12-08", "--to",
            "2026-12-09", "--json")
    listed = {x["call_id"]: (x["path"], x["file"], x["exists"]) for x in json.loads(r.output)}
    assert listed == {F4: (str(day / f"{F4}.wav"), "audio", True),
                      F4B: (str(day / f"{F4B}.wav"), "missing", False)}
    r = run(db_url, tmp_path, rec, "recordings", "refused", "--from", "2000-01-01", "--json")
    refused = {(x["call_id"], x["path"]) for x in json.loads(r.output)}
    assert refused == {(F4, f"{MONITOR}20261208-021645-out-{F4}.wav"),
                       (F4B, f"{MONITOR}20261208-021829-out-{F4B}.wav")}


def test_retention_deletes_only_inside_the_tenant_directory(db_url: str,
                                                            tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    store(db_url, tmp_path, rec, ("F4b",), into_tenant(rec))
    files = recordings_on_disk(rec)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim, legacy = outside / "victim.wav", outside / "legacy.wav"
    victim.write_bytes(b"precious")
    legacy.write_bytes(b"an old flat recording")
    sneaky = rec / "demo" / DAY / "sneaky.wav"
    sneaky.symlink_to(victim)
    with psycopg.connect(db_url) as conn:  # rows no writer would index any more
        for p in (legacy, sneaky):
            conn.execute("INSERT INTO recordings (tenant_id, call_id, path) SELECT "
                         "tenant_id, call_id, %s FROM calls WHERE call_id = %s", (str(p), F4B))
    later = datetime(2026, 12, 8, tzinfo=UTC) + timedelta(days=400)
    dry = run_retention(db_url, later, dry_run=True, recording_dir=rec)
    assert (dry["files_deleted"], dry["files_refused"]) == (2, 2)
    assert all(p.exists() for p in files.values() if "f4b" in str(p))
    done = run_retention(db_url, later, recording_dir=rec)
    t = done["tenants"]["demo"]
    assert (done["files_deleted"], done["files_refused"], done["errors"]) == (2, 2, 0)
    assert not files["f4b"].exists() and not files["f4b-net"].exists()
    assert victim.read_bytes() == b"precious" and legacy.exists() and sneaky.is_symlink()
    assert sorted(x.split(": ", 1)[0] for x in t["refused"]) == sorted([str(legacy),
                                                                        str(sneaky)])
    with psycopg.connect(db_url) as conn:
        # the refused rows stay (and with them the call) for an operator to look at
        assert sorted(p for (p,) in conn.execute("SELECT path FROM recordings")) == \
            sorted([str(legacy), str(sneaky)])
        assert conn.execute("SELECT count(*) FROM calls WHERE call_id = %s",
                            (F4B,)).fetchone() == (1,)
        assert conn.execute("SELECT files_deleted, files_refused FROM retention_runs ORDER "
                            "BY id DESC LIMIT 1").fetchone() == (2, 2)
    # without a recording directory nothing is deleted at all
    none = run_retention(db_url, later, recording_dir=None)
    assert (none["files_deleted"], none["files_refused"]) == (0, 2)
