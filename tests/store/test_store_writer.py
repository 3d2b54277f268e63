"""EventWriter against a real PostgreSQL: rows from real captures, outages through a
cuttable TCP proxy, kill -9 of a writer process, replays, rejected events, the spool."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ccd.model.domain import CallEnded, CallQueued, CallStarted, DomainEvent
from ccd.store import migrate
from ccd.store.db import open_async_pool
from ccd.store.writer import EventWriter, Spool, SpoolLocked, WriterClosed, uuid7

pytestmark = pytest.mark.timeout(120)

S01_CALL = "1795465016.0"
S01_FILE = "20261123-201702-support-1795465016.0.wav"  # the dialplan's safety-net recording


@contextlib.asynccontextmanager
async def writer(url: str, spool: Path, **options: Any) -> AsyncIterator[EventWriter]:
    """A started writer with test-friendly (short) timings, closed at the end."""
    reconnect = options.pop("reconnect_timeout", 1.0)
    opts: dict[str, Any] = {"batch_size": 50, "flush_interval": 0.02, "retry_interval": 0.05,
                            "acquire_timeout": 0.5, "max_backoff": 0.2}
    opts.update(options)
    pool = await open_async_pool(url, reconnect_timeout=reconnect, connect_timeout=2)
    w = EventWriter(pool, spool, **opts)
    await w.start()
    try:
        yield w
    finally:
        await w.close(timeout=5)
        await pool.close()


async def eventually(pred: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def q(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def event_ids(url: str) -> list[str]:
    return [str(r[0]) for r in q(url, "SELECT event_id FROM call_events ORDER BY seq")]


def count(url: str) -> int:
    return q(url, "SELECT count(*) FROM call_events")[0][0]


def spool_ids(spool: Path) -> list[str]:
    out = []
    for seg in sorted(spool.glob("events-*.jsonl")):
        out += [json.loads(line)["id"] for line in seg.read_bytes().splitlines() if line]
    return out


async def write_reference(url: str, spool: Path, events: list[DomainEvent],
                          **options: Any) -> None:
    async with writer(url, spool, **options) as w:
        for e in events:
            w.submit(e)
        await w.flush(20)


# ------------------------------------------------------------------ rows


async def test_scenario01_stores_one_complete_call(db_url: str, tmp_path: Path,
                                                   capture: Callable[[str], list[DomainEvent]]
                                                   ) -> None:
    rec = tmp_path / "rec"  # recording.dir; the recording is in the default tenant's directory
    events = capture("scenario01", rec)
    s01_recording = f"{rec}/default/{S01_FILE}"
    async with writer(db_url, tmp_path / "spool", recording_dir=rec) as w:
        ids = [w.submit(e) for e in events]
        await w.flush(10)
        st = w.stats
    assert (st.written, st.duplicates, st.rejected, st.spooled_pending) == (len(ids), 0, 0, 0)

    (call,) = q(db_url, """SELECT call_id, direction, did, caller_num, caller_name, queue,
        queue_position, outcome, agent, agent_name, hangup_by, hangup_cause, open,
        talk_seconds, total_seconds, variables->>'CUSTOMER_ID', record->'recordings',
        answered_at IS NOT NULL, ended_at > started_at, tenant_id = ccd_default_tenant()
        FROM calls""")
    assert call == (S01_CALL, "inbound", "5551000", "5557770001", "Customer Carol", "support",
                    1, "answered", "PJSIP/1001", "Agent Alice", "caller", 16, False,
                    Decimal("6.011"), Decimal("11.894"), "C770001", [s01_recording],
                    True, True, True)
    assert q(db_url, "SELECT call_id, path, channel, started_at < stopped_at FROM recordings") \
        == [(S01_CALL, s01_recording, "PJSIP/2000-00000000", True)]
    assert q(db_url, "SELECT uniqueid, channel FROM call_legs ORDER BY uniqueid") == [
        ("1795465016.0", "PJSIP/2000-00000000"), ("1795465022.1", "PJSIP/1001-00000001")]

    # every event once, in submission order, with its kind; call_ended without the record
    assert event_ids(db_url) == ids
    assert [k for (k,) in q(db_url, "SELECT kind FROM call_events ORDER BY seq")] \
        == [e.kind for e in events]
    assert q(db_url, "SELECT data ? 'record', data->>'hangup_by' FROM call_events "
                     "WHERE kind = 'call_ended'") == [(False, "caller")]
    assert q(db_url, "SELECT count(*) FROM call_events WHERE call_id = %s", (S01_CALL,))[0][0] \
        == sum(1 for e in events if getattr(e, "call_id", "") == S01_CALL)

    # agent state intervals: each closed by the next one, to the millisecond
    states = q(db_url, "SELECT state, started_at, ended_at, seconds FROM agent_states "
                       "WHERE agent = 'PJSIP/1001' ORDER BY started_at, id")
    expected = [e.state for e in events if e.kind == "agent_state" and e.agent == "PJSIP/1001"]
    assert [s[0] for s in states] == expected
    for (_, start, end, secs), (_, nxt, _, _) in itertools.pairwise(states):
        assert end == nxt
        assert secs == round(Decimal((end - start).total_seconds()), 3)
    assert states[-1][2] is None and states[-1][3] is None
    total = sum(s[3] for s in states[:-1])
    assert math.isclose(float(total), (states[-1][1] - states[0][1]).total_seconds(),
                        abs_tol=0.001 * len(states))


async def test_burst_is_written_in_batches(db_url: str, tmp_path: Path,
                                           capture: Callable[[str], list[DomainEvent]]) -> None:
    events = capture("scenario08", tmp_path / "rec")
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert len(ended) == 20
    async with writer(db_url, tmp_path / "spool", batch_size=16,
                      recording_dir=tmp_path / "rec") as w:
        ids = [w.submit(e) for e in events]
        await w.flush(20)
        st = w.stats
    assert st.batches >= math.ceil(len(events) / 16)
    assert st.written == len(events) and event_ids(db_url) == ids
    assert q(db_url, "SELECT count(*) FILTER (WHERE open) FROM calls") == [(0,)]
    assert sorted(q(db_url, "SELECT call_id, agent, outcome, hangup_by FROM calls")) \
        == sorted((e.call_id, e.record.agent, e.record.outcome, e.hangup_by) for e in ended)
    assert q(db_url, "SELECT count(*) FROM recordings")[0][0] \
        == sum(len(e.record.recordings) for e in ended)
    # one open interval per agent at most
    assert q(db_url, "SELECT max(n) FROM (SELECT count(*) n FROM agent_states "
                     "WHERE ended_at IS NULL GROUP BY agent) x") == [(1,)]


async def test_tenant_by_did_then_by_queue(make_db: Callable[..., str], tmp_path: Path,
                                           capture: Callable[..., list[DomainEvent]]) -> None:
    rec = tmp_path / "rec"  # each call's recording is in its own tenant's directory
    by_did, by_queue = make_db(), make_db()
    with psycopg.connect(by_did) as conn:
        acme = conn.execute("INSERT INTO tenants (slug, name) VALUES ('acme', 'Acme') "
                            "RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO dids (number, tenant_id) VALUES ('5551000', %s)", (acme,))
    with psycopg.connect(by_queue) as conn:
        beta = conn.execute("INSERT INTO tenants (slug, name) VALUES ('beta', 'Beta') "
                            "RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO queues (tenant_id, name) VALUES (%s, 'support')", (beta,))
        conn.execute("INSERT INTO agents (tenant_id, name, interface) "
                     "VALUES (%s, 'Alice', 'PJSIP/1001')", (beta,))
    await write_reference(by_did, tmp_path / "s1", capture("scenario01", rec, "acme"),
                          recording_dir=rec)
    await write_reference(by_queue, tmp_path / "s2", capture("scenario01", rec, "beta"),
                          recording_dir=rec)
    for url, tenant in ((by_did, acme), (by_queue, beta)):
        # the call, and everything hanging off it, belongs to the tenant
        for table in ("calls", "call_legs", "recordings"):
            assert q(url, f"SELECT DISTINCT tenant_id FROM {table}") == [(tenant,)], table
        assert q(url, "SELECT DISTINCT tenant_id FROM call_events WHERE call_id = %s",
                 (S01_CALL,)) == [(tenant,)]
    # the queue was learnt after call_started: the events written before moved with the call
    assert q(by_queue, "SELECT DISTINCT tenant_id FROM call_events WHERE kind = 'call_started'") \
        == [(beta,)]
    assert q(by_queue, "SELECT DISTINCT tenant_id FROM agent_states") == [(beta,)]


async def test_customer_found_by_phone_in_e164(db_url: str, tmp_path: Path,
                                                  capture: Callable[[str], list[DomainEvent]]
                                                  ) -> None:
    with psycopg.connect(db_url) as conn:
        # scenario01's CUSTOMER_ID "C770001" is not a customers.id: never an account match
        conn.execute("INSERT INTO customers (tenant_id, name, account_no) "
                     "VALUES (ccd_default_tenant(), 'Not Carol', 'C770001')")
        cust = conn.execute("INSERT INTO customers (tenant_id, name) "
                            "VALUES (ccd_default_tenant(), 'Carol') RETURNING id").fetchone()[0]
        # the caller ID 5557770001 is +15557770001 in the tenant's country (US)
        conn.execute("INSERT INTO customer_phones (tenant_id, customer_id, e164) "
                     "VALUES (ccd_default_tenant(), %s, '+15557770001')", (cust,))
    started = CallStarted(ts=1795465000.0, call_id="1795465000.9", direction="inbound",
                          did="5551000", caller_num="+15557770002", caller_name="Dave",
                          channel="PJSIP/2000-00000009", uniqueid="1795465000.9")
    with psycopg.connect(db_url) as conn:
        other = conn.execute("INSERT INTO customers (tenant_id, name) "
                             "VALUES (ccd_default_tenant(), 'Dave') RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO customer_phones (tenant_id, customer_id, e164) "
                     "VALUES (ccd_default_tenant(), %s, '+15557770002')", (other,))
    async with writer(db_url, tmp_path / "spool") as w:
        for e in [*capture("scenario01"), started]:
            w.submit(e)
        await w.flush(10)
    assert dict(q(db_url, "SELECT call_id, customer_id FROM calls")) \
        == {S01_CALL: cust, "1795465000.9": other}


# ------------------------------------------------------------------ refusals


async def test_refused_events_do_not_block_the_others(db_url: str, tmp_path: Path,
                                                      capture: Callable[[str], list[DomainEvent]]
                                                      ) -> None:
    events = capture("scenario01")
    # refused by PostgreSQL (integer out of range) and by Python (year out of range)
    db_bad = CallQueued(ts=events[3].ts, call_id=S01_CALL, queue="support", position=2**40,
                        count=1, caller_num="", caller_name="")
    py_bad = CallStarted(ts=1e20, call_id="x", direction="inbound", did="", caller_num="",
                         caller_name="", channel="", uniqueid="")
    mixed = [*events[:3], db_bad, *events[3:6], py_bad, *events[6:]]
    async with writer(db_url, tmp_path / "spool", batch_size=500, flush_interval=0.05) as w:
        ids = [w.submit(e) for e in mixed]
        await w.flush(10)
        st = w.stats
    bad = {ids[3], ids[7]}
    assert (st.written, st.rejected, st.errors) == (len(events), 2, 2)
    assert event_ids(db_url) == [i for i in ids if i not in bad]
    rejected = [json.loads(line) for line in
                (tmp_path / "spool" / "rejected.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rejected} == bad
    assert any("out of range" in r["error"] for r in rejected)
    assert q(db_url, "SELECT queue_position, open FROM calls") == [(1, False)]


async def test_missing_schema_is_retried_not_refused(empty_db_url: str, tmp_path: Path,
                                                     capture: Callable[[str], list[DomainEvent]]
                                                     ) -> None:
    events = capture("scenario01")
    async with writer(empty_db_url, tmp_path / "spool") as w:
        ids = [w.submit(e) for e in events]
        await eventually(lambda: w.stats.retries >= 3)
        st = w.stats
        assert st.errors >= 1 and st.rejected == 0 and st.spooled_pending == len(ids)
        assert "call_events" in st.last_error
        migrate.upgrade(empty_db_url)  # the operator runs `ccd db upgrade`
        await w.flush(10)
        assert w.stats.written == len(ids)
    assert event_ids(empty_db_url) == ids


# ------------------------------------------------------------------ outage


async def test_outage_events_spooled_then_written_once_in_order(
        db_url: str, make_db: Callable[..., str], pg_proxy: Any, tmp_path: Path,
        capture: Callable[[str], list[DomainEvent]],
        snapshot: Callable[[str], dict[str, Any]]) -> None:
    events = capture("scenario08")
    spool = tmp_path / "spool"
    async with writer(pg_proxy.url(db_url), spool, batch_size=20,
                      segment_bytes=16 * 1024) as w:
        ids = [w.submit(e) for e in events[:60]]
        await w.flush(10)
        assert count(db_url) == 60

        pg_proxy.cut()  # PostgreSQL unreachable: open connections break, new ones refused
        ids += [w.submit(e) for e in events[60:]]
        await eventually(lambda: w.stats.retries >= 3 and not w.stats.database_up)
        assert w.stats.spooled_pending == len(events) - 60
        assert count(db_url) == 60  # checked directly, not through the proxy
        assert spool_ids(spool)[-len(events) + 60:] == ids[60:]
        assert len(list(spool.glob("events-*.jsonl"))) > 2  # rotated while down

        pg_proxy.restore()
        await w.flush(20)
        st = w.stats
    assert event_ids(db_url) == ids  # all, once each, in submission order
    assert (st.written, st.duplicates, st.rejected, st.spooled_pending) == (len(ids), 0, 0, 0)
    assert st.database_up and pg_proxy.connections >= 2
    assert len(list(spool.glob("events-*.jsonl"))) == 1  # written segments deleted
    # the projections are those of an uninterrupted run
    ref = make_db()
    await write_reference(ref, tmp_path / "ref", events)
    assert snapshot(db_url) == snapshot(ref)


async def test_close_while_down_keeps_events_for_next_start(
        db_url: str, pg_proxy: Any, tmp_path: Path,
        capture: Callable[[str], list[DomainEvent]]) -> None:
    events = capture("scenario01")
    spool = tmp_path / "spool"
    pg_proxy.cut()
    async with writer(pg_proxy.url(db_url), spool) as w:
        ids = [w.submit(e) for e in events]
        await eventually(lambda: w.stats.retries >= 1)
        with pytest.raises(TimeoutError):
            await w.flush(0.2)
        # SIGTERM while the database is down (it stays down): close gives up after its
        # timeout instead of waiting for the database; a close that waited would hang here
        await asyncio.wait_for(w.close(timeout=0.5), 30)
        with pytest.raises(WriterClosed):
            w.submit(events[0])
    assert count(db_url) == 0
    async with writer(db_url, spool) as w2:
        assert w2.stats.spooled_pending == len(ids)
        await w2.flush(10)
    assert event_ids(db_url) == ids


async def test_close_writes_what_is_pending(db_url: str, tmp_path: Path,
                                            capture: Callable[[str], list[DomainEvent]]) -> None:
    events = capture("scenario01")
    async with writer(db_url, tmp_path / "spool", batch_size=10_000, flush_interval=3600) as w:
        ids = [w.submit(e) for e in events]
        await asyncio.sleep(0.1)
        assert count(db_url) == 0  # still waiting for a full batch
    assert event_ids(db_url) == ids  # close() wrote them


# ------------------------------------------------------------------ crash and replay


CHILD = r"""
import asyncio, sys
from pathlib import Path
from ccd.cli.replay import replay_file
from ccd.config import Config
from ccd.model.live import LiveModel
from ccd.store.db import open_async_pool
from ccd.store.writer import EventWriter

async def main(url, spool, capture, batch, interval, pace):
    events, _ = replay_file(Path(capture), LiveModel(Config().model_config_obj()))
    pool = await open_async_pool(url)
    w = EventWriter(pool, Path(spool), batch_size=batch, flush_interval=interval)
    await w.start()
    for e in events:
        print(w.submit(e), flush=True)
        if pace:
            await asyncio.sleep(pace)
    print("done", flush=True)
    await asyncio.sleep(3600)

url, spool, capture, batch, interval, pace = sys.argv[1:]
asyncio.run(main(url, spool, capture, int(batch), float(interval), float(pace)))
"""


def start_child(db_url: str, spool: Path, capture_path: Path, batch: int, interval: float,
                pace: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, db_url, str(spool), str(capture_path),
                             str(batch), str(interval), str(pace)],
                            stdout=subprocess.PIPE, text=True)


def capture_path(prefix: str) -> Path:
    from ccd.cli import replay

    base = Path("/work/shared/asterisk-captures")
    if not base.exists():
        base = Path(replay.__file__).resolve().parents[3] / "shared" / "asterisk-captures"
    (path,) = base.glob(f"{prefix}*.ami")
    return path


async def test_kill9_after_submit_before_flush_loses_nothing(
        db_url: str, make_db: Callable[..., str], tmp_path: Path,
        capture: Callable[[str], list[DomainEvent]],
        snapshot: Callable[[str], dict[str, Any]]) -> None:
    events = capture("scenario01")
    spool = tmp_path / "spool"
    child = start_child(db_url, spool, capture_path("scenario01"), 100_000, 3600, 0)
    try:
        assert child.stdout is not None
        accepted = []
        for line in child.stdout:
            if line.strip() == "done":
                break
            accepted.append(line.strip())
        assert len(accepted) == len(events)
        assert count(db_url) == 0  # nothing flushed yet
    finally:
        child.kill()  # SIGKILL
        child.wait(10)
    assert child.returncode == -9

    async with writer(db_url, spool) as w:
        assert w.stats.spooled_pending == len(events)
        await w.flush(10)
    assert event_ids(db_url) == accepted
    ref = make_db()
    await write_reference(ref, tmp_path / "ref", events)
    assert snapshot(db_url) == snapshot(ref)


async def test_kill9_while_writing_then_recover_exactly_once(
        db_url: str, make_db: Callable[..., str], tmp_path: Path,
        capture: Callable[[str], list[DomainEvent]],
        snapshot: Callable[[str], dict[str, Any]]) -> None:
    events = capture("scenario08")
    spool = tmp_path / "spool"
    # events arrive every 3 ms and are written every 0.1 s: a backlog is always pending
    child = start_child(db_url, spool, capture_path("scenario08"), 50, 0.1, 0.003)
    try:
        deadline = time.monotonic() + 30
        while count(db_url) < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        written_at_kill = count(db_url)
    finally:
        child.kill()
        child.wait(10)
    committed = count(db_url)
    assert child.stdout is not None
    printed = [line.strip() for line in child.stdout.read().splitlines()]
    assert "done" not in printed  # killed in the middle of the stream
    in_spool = spool_ids(spool)
    assert 20 <= written_at_kill <= committed < len(in_spool) <= len(events)
    assert in_spool[:len(printed)] == printed and len(in_spool) - len(printed) <= 1

    async with writer(db_url, spool) as w:
        await w.flush(10)
        st = w.stats
    assert event_ids(db_url) == in_spool  # nothing lost, nothing twice, in order
    assert st.written == len(in_spool) - committed > 0
    assert st.duplicates <= 50  # at most the batch committed but not yet checkpointed
    ref = make_db()
    await write_reference(ref, tmp_path / "ref", events[:len(in_spool)])
    assert snapshot(db_url) == snapshot(ref)


async def test_replay_of_committed_events_changes_nothing(
        db_url: str, tmp_path: Path, capture: Callable[[str], list[DomainEvent]],
        snapshot: Callable[[str], dict[str, Any]]) -> None:
    """The crash between COMMIT and the checkpoint (or a COMMIT whose answer was lost)."""
    events = capture("scenario08")
    spool = tmp_path / "spool"
    async with writer(db_url, spool, batch_size=25) as w:
        for e in events[:100]:
            w.submit(e)
        await w.flush(10)
        shutil.copy(spool / "checkpoint.json", tmp_path / "old-checkpoint.json")
        for e in events[100:]:
            w.submit(e)
        await w.flush(10)
    before = snapshot(db_url)

    shutil.copy(tmp_path / "old-checkpoint.json", spool / "checkpoint.json")
    async with writer(db_url, spool, batch_size=25) as w:
        assert w.stats.spooled_pending == len(events) - 100
        await w.flush(10)
        st = w.stats
    assert (st.written, st.duplicates) == (0, len(events) - 100)
    assert snapshot(db_url) == before

    (spool / "checkpoint.json").write_text("{not json")  # unreadable: replay everything
    async with writer(db_url, spool) as w:
        await w.flush(10)
        st = w.stats
    assert (st.written, st.duplicates) == (0, len(events))
    assert snapshot(db_url) == before


# ------------------------------------------------------------------ spool and API


def test_spool_cuts_a_torn_last_line_and_continues_numbering(tmp_path: Path) -> None:
    sp = Spool(tmp_path)
    sp.open()
    for i in range(3):
        assert sp.append(f"id-{i}", {"kind": "pbx", "ts": float(i)}) == i + 1
    sp.close()
    (seg,) = tmp_path.glob("events-*.jsonl")
    good = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(b'{"seq":4,"id":"id-3","ev')  # the process died inside write()
    sp = Spool(tmp_path)
    sp.open()
    assert seg.stat().st_size == good
    assert (sp.last_seq, sp.committed_seq, sp.pending) == (3, 0, 3)
    assert sp.append("id-4", {"kind": "pbx", "ts": 4.0}) == 4
    recs = sp.read(10)
    assert [(r.seq, r.event_id) for r in recs] == [(1, "id-0"), (2, "id-1"), (3, "id-2"),
                                                   (4, "id-4")]
    sp.commit(recs[1])
    sp.close()
    sp = Spool(tmp_path)
    sp.open()
    assert (sp.committed_seq, sp.pending) == (2, 2)
    assert [r.event_id for r in sp.read(10)] == ["id-2", "id-4"]
    sp.close()


async def test_one_process_per_spool(db_url: str, tmp_path: Path) -> None:
    async with writer(db_url, tmp_path / "spool"):
        pool = await open_async_pool(db_url)
        try:
            with pytest.raises(SpoolLocked):
                await EventWriter(pool, tmp_path / "spool").start()
        finally:
            await pool.close()


async def test_submit_rules_and_other_threads(db_url: str, tmp_path: Path,
                                              capture: Callable[[str], list[DomainEvent]]
                                              ) -> None:
    events = capture("scenario01")
    pool = await open_async_pool(db_url)
    w = EventWriter(pool, tmp_path / "spool", flush_interval=0.02)
    with pytest.raises(WriterClosed):
        w.submit(events[0])
    await w.start()
    ids = await asyncio.to_thread(lambda: [w.submit(e) for e in events])
    await w.flush(10)
    await w.close()
    await pool.close()
    assert event_ids(db_url) == ids


def test_uuid7_is_time_ordered() -> None:
    a = uuid7()
    time.sleep(0.002)
    b = uuid7()
    for u in (uuid.UUID(a), uuid.UUID(b)):
        assert u.version == 7 and u.variant == uuid.RFC_4122
    assert a[:13] < b[:13]
    assert len({uuid7() for _ in range(1000)}) == 1000
