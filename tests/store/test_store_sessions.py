"""agent_sessions and recording_pauses are projected from domain events by the writer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg

from ccd.model import domain as d
from ccd.store.db import open_async_pool
from ccd.store.writer import EventWriter


def write(db_url: str, spool: Path, events: list[d.DomainEvent]) -> None:
    async def go() -> None:
        pool = await open_async_pool(db_url, name="test")
        w = EventWriter(pool, spool, flush_interval=0.05)
        await w.start()
        for e in events:
            w.submit(e)
        await w.flush(20)
        await w.close()
        await pool.close()

    asyncio.run(go())


def state(ts: float, st: str, paused: bool = False, reason: str = "",
          source: str = "") -> d.AgentStateChanged:
    return d.AgentStateChanged(ts, "PJSIP/1001", "Alice", st, "", reason, "", ["support"],
                               paused, source)


def session(db_url: str) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT logout_at IS NULL, paused, pause_reason FROM agent_sessions "
                            "ORDER BY id").fetchall()


def test_sessions_follow_agent_states(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO agents (tenant_id, name, interface) "
                     "VALUES (ccd_default_tenant(), 'Alice', 'PJSIP/1001')")
    t = 1_800_000_000.0
    write(db_url, tmp_path / "s1", [state(t, "available"),
                                    state(t + 10, "paused", True, "lunch")])
    assert session(db_url) == [(True, True, "lunch")]
    # Asterisk restarted: the resync sees the member gone; the session stays for re-login
    write(db_url, tmp_path / "s2", [state(t + 20, "logged_out", source="resync")])
    assert session(db_url) == [(True, True, "lunch")]
    write(db_url, tmp_path / "s3", [state(t + 30, "paused", True, "lunch"),
                                    state(t + 40, "on_call", True, "lunch"),
                                    state(t + 50, "available")])
    assert session(db_url) == [(True, False, "")]
    write(db_url, tmp_path / "s4", [state(t + 60, "logged_out"), state(t + 70, "available")])
    assert session(db_url) == [(False, False, ""), (True, False, "")]


def test_recording_pauses(db_url: str, tmp_path: Path) -> None:
    t = 1_800_000_000.0
    rec = d.CallRecord(call_id="c1", start=t)
    write(db_url, tmp_path / "s", [
        d.CallStarted(t, "c1", "inbound", "5551000", "1", "x", "PJSIP/2000-1", "c1"),
        d.RecordingMuted(t + 5, "c1", "PJSIP/2000-1", True),
        d.RecordingMuted(t + 9, "c1", "PJSIP/2000-1", False),
        d.CallEnded(t + 20, "c1", "caller", 16, "", 0, 20, rec)])
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT extract(epoch FROM resumed_at - paused_at) "
                            "FROM recording_pauses").fetchall()
    assert [float(r[0]) for r in rows] == [4.0]
