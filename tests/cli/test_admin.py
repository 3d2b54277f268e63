"""Set-up, recordings and report commands against a real PostgreSQL (no daemon needed)."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from ccd.cli.main import cli
from ccd.cli.replay import replay_file
from ccd.model.live import LiveModel, ModelConfig
from ccd.security import verify_password
from ccd.store.db import open_async_pool
from ccd.store.writer import EventWriter

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"


def run(db_url: str, tmp_path: Path, *args: str, input: str | None = None,
        env: dict[str, str] | None = None):
    runner = CliRunner()
    e = {"CCD_DATABASE_URL": db_url, "CCD_DATA_DIR": str(tmp_path), "CCD_CONFIG": "",
         **(env or {})}
    return runner.invoke(cli, list(args), env=e, input=input, catch_exceptions=False)


def store(db_url: str, tmp_path: Path, *names: str) -> None:
    """Replay captures and persist their domain events through the real writer."""
    async def go() -> None:
        pool = await open_async_pool(db_url, name="test")
        writer = EventWriter(pool, tmp_path / "spool", flush_interval=0.05)
        await writer.start()
        for name in names:
            model = LiveModel(ModelConfig(wrapup={"support": 2.0}))
            events, _ = replay_file(next(CAPTURES.glob(name + "*.ami")), model)
            for e in events:
                writer.submit(e)
        await writer.flush(30)
        await writer.close()
        await pool.close()

    asyncio.run(go())


def test_tenants_queues_agents_users(db_url: str, tmp_path: Path) -> None:
    r = run(db_url, tmp_path, "tenants", "add", "acme", "--name", "ACME Ltd",
            "--timezone", "Asia/Shanghai", "--country", "cn", "--did", "5551000")
    assert r.exit_code == 0, r.output
    r = run(db_url, tmp_path, "tenants", "add", "acme", "--name", "again")
    assert r.exit_code == 2 and "already exists" in r.output
    r = run(db_url, tmp_path, "tenants", "add", "bad", "--name", "x", "--timezone", "Mars/Base")
    assert r.exit_code == 2 and "time zone" in r.output
    data = json.loads(run(db_url, tmp_path, "tenants", "--json").output)
    acme = next(t for t in data if t["slug"] == "acme")
    assert acme["timezone"] == "Asia/Shanghai" and acme["default_country"] == "CN"
    assert acme["dids"] == "5551000"

    assert run(db_url, tmp_path, "queues", "add", "support", "--tenant", "acme", "--wrapup", "5",
               "--recording", "on_demand").exit_code == 0
    r = run(db_url, tmp_path, "agents", "add", "Agent Alice", "--interface", "PJSIP/1001",
            "--tenant", "acme", "--queue", "support:1")
    assert r.exit_code == 0, r.output
    r = run(db_url, tmp_path, "agents", "add", "Bob", "--interface", "PJSIP/1002",
            "--tenant", "acme", "--queue", "nosuch")
    assert r.exit_code == 2 and "no queue 'nosuch'" in r.output

    r = run(db_url, tmp_path, "users", "add", "alice", "--tenant", "acme", "--agent", "1001",
            input="correct horse\ncorrect horse\n")
    assert r.exit_code == 0, r.output
    r = run(db_url, tmp_path, "users", "add", "eve", env={"CCD_NEW_PASSWORD": "short"})
    assert r.exit_code == 2 and "at least 8" in r.output
    users = json.loads(run(db_url, tmp_path, "users", "--json").output)
    assert [(u["username"], u["tenant"], u["agent"]) for u in users] == \
        [("alice", "acme", "PJSIP/1001")]
    assert "password" not in json.dumps(users)
    with psycopg.connect(db_url) as conn:
        (h,) = conn.execute("SELECT password_hash FROM users").fetchone()  # type: ignore[misc]
    assert h.startswith("$argon2id$") and verify_password(h, "correct horse")
    assert not verify_password(h, "wrong")


def test_report_queues_from_stored_events(db_url: str, tmp_path: Path) -> None:
    store(db_url, tmp_path, "scenario08")
    r = run(db_url, tmp_path, "report", "queues", "--from", "2026-11-23T20:00",
            "--to", "2026-11-23T21:00", "--json")
    assert r.exit_code == 0, r.output
    [row] = json.loads(r.output)
    # hand-computed from the capture (see tests/model/test_stats.py): 20 offered,
    # 18 answered, 2 abandoned before 20 s, 12 answered within 20 s
    assert (row["offered"], row["answered"], row["abandoned"]) == (20, 18, 2)
    assert row["service_level"] == pytest.approx(66.67, abs=0.01)
    assert row["interval"] == "2026-11-23 20:15"
    r = run(db_url, tmp_path, "report", "queues", "--from", "2026-11-23T20:00",
            "--to", "2026-11-23T21:00", "--csv")
    lines = list(csv.reader(r.output.splitlines()))
    assert lines[0][:3] == ["queue", "interval", "offered"] and lines[1][:3] == \
        ["support", "2026-11-23 20:15", "20"]
    r = run(db_url, tmp_path, "report", "agents", "--from", "2026-11-23T20:00",
            "--to", "2026-11-23T21:00", "--json")
    rows = json.loads(r.output)
    assert sum(a["answered"] for a in rows) == 18  # AgentConnect x18
    first = [a for a in rows if a["start"] == row["start"]]
    assert {a["agent"] for a in first} == {"PJSIP/1001", "PJSIP/1002", "PJSIP/1004"}
    assert all(0 < a["occupancy"] <= 100 for a in first)
    human = run(db_url, tmp_path, "report", "queues", "--from", "2026-11-23T20:00",
                "--to", "2026-11-23T21:00")
    assert "support" in human.output and "66.7" in human.output
    bad = run(db_url, tmp_path, "report", "queues", "--from", "yesterday")
    assert bad.exit_code == 2 and "not a date" in bad.output

