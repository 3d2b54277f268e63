"""Stored call records of the real captures (real-2/, real-3/ and the first set), written
through the daemon's writer by the backfill path (``ccd replay --store``) into a database
set up as the captures' PBX was (the demo seed), checked against the ground truth."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from ccd.cli.replay import replay_file
from ccd.config import load
from ccd.demo_seed import seed
from ccd.model.live import LiveModel
from ccd.store.backfill import configure, store_events

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"

pytestmark = pytest.mark.timeout(120)


def capture(name: str) -> Path:
    (path,) = [p for p in CAPTURES.glob("**/*.ami") if p.name.startswith(name)]
    return path


def expected(name: str) -> dict[str, Any]:
    path = capture(name)
    return json.loads(path.with_name(path.name[:-4] + ".expected.json").read_text())


def backfill(db_url: str, tmp_path: Path, *names: str) -> None:
    """The demo set-up, then each capture stored as ``ccd replay --store`` does."""
    seed(db_url, tmp_path)
    config = load(None, {"CCD_DATA_DIR": str(tmp_path), "CCD_DATABASE_URL": db_url})
    for name in names:
        model = LiveModel(config.model_config_obj())
        configure(model, db_url)
        events, _ = replay_file(capture(name), model)
        asyncio.run(store_events(config, db_url, events))


def call(db_url: str, call_id: str) -> dict[str, Any]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        row = conn.execute("SELECT c.*, t.slug AS tenant FROM calls c "
                           "JOIN tenants t ON t.id = c.tenant_id WHERE call_id = %s",
                           (call_id,)).fetchone()
    assert row is not None, call_id
    return row


def customer(db_url: str, e164: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT customer_id FROM customer_phones WHERE e164 = %s",
                           (e164,)).fetchone()
    assert row is not None
    return int(row[0])


# ------------------------------------------------------------------ #10 customer


def test_identified_caller_is_the_calls_customer(db_url: str, tmp_path: Path) -> None:
    """T8: the IVR identified Customer Carol (CCD_CUSTOMER_ID is her customers.id)."""
    backfill(db_url, tmp_path, "T8-")
    truth = expected("T8-")["calls"][0]
    row = call(db_url, truth["call_id"])
    assert row["variables"]["CCD_CUSTOMER_ID"] == str(customer(db_url, "+15557770001"))
    assert row["customer_id"] == customer(db_url, "+15557770001")


def test_caller_number_in_e164_finds_the_customer(db_url: str, tmp_path: Path) -> None:
    """scenario01: no ccd IVR (CUSTOMER_ID is the test AGI's "C770001", not an id); the
    caller ID 5557770001 is +15557770001 in the tenant's country (US)."""
    backfill(db_url, tmp_path, "scenario01")
    row = call(db_url, "1795465016.0")
    assert (row["tenant"], row["caller_num"]) == ("demo", "5557770001")
    assert row["customer_id"] == customer(db_url, "+15557770001")


# ------------------------------------------------------------------ #2 statistics


def test_stored_statistics_have_talk_hold_and_an_honest_aht(db_url: str, tmp_path: Path
                                                            ) -> None:
    """T5e stored, then `ccd report`'s computation: the talk (11.443 s, hold included) and
    hold (5.093 s) of expected.json, the demo queue's 10 s wrap-up, AHT = talk + wrap-up."""
    from datetime import UTC, datetime

    from ccd.jobs.stats import compute

    backfill(db_url, tmp_path, "T5e-")
    truth = expected("T5e-")["calls"][0]
    with psycopg.connect(db_url) as conn:
        st = compute(conn, datetime(2026, 12, 8, tzinfo=UTC), datetime(2026, 12, 9, tzinfo=UTC))
    tot = st.totals("support")
    assert tot.answered == 1
    assert tot.talk == pytest.approx(truth["talk_time_s_incl_hold"], abs=0.02)
    assert tot.hold == pytest.approx(truth["hold_time_s"], abs=0.01)
    assert tot.wrapup == pytest.approx(10.0, abs=0.01)
    assert tot.aht == pytest.approx(truth["talk_time_s_incl_hold"] + 10.0, abs=0.03)


# ------------------------------------------------------------------ #1 click-to-dial, spy


def test_click_to_dial_is_stored_as_the_agents_call_in_its_tenant(db_url: str,
                                                                  tmp_path: Path) -> None:
    backfill(db_url, tmp_path, "T6a-", "T6b-")
    ok = call(db_url, expected("T6b-")["asterisk_channels"][0]["linkedid"])
    assert (ok["tenant"], ok["direction"], ok["agent"], ok["agent_name"], ok["dialed"]) == (
        "demo", "outbound", "PJSIP/1001", "Agent Alice", "15557770001")
    assert (ok["outcome"], ok["hangup_by"], ok["caller_num"]) == ("answered", "customer",
                                                                 "5551000")
    assert float(ok["talk_seconds"]) == pytest.approx(
        expected("T6b-")["calls"][0]["talk_time_s"], abs=0.01)
    # the number dialled is Customer Carol's
    assert ok["customer_id"] == customer(db_url, "+15557770001")
    failed = call(db_url, expected("T6a-")["asterisk_channels"][0]["linkedid"])
    assert (failed["tenant"], failed["direction"], failed["agent"], failed["outcome"],
            failed["hangup_by"]) == ("demo", "outbound", "PJSIP/1001", "failed", "system")
    with psycopg.connect(db_url) as conn:
        legs = conn.execute("SELECT uniqueid, channel FROM call_legs WHERE call_id = %s "
                            "ORDER BY uniqueid", (ok["call_id"],)).fetchall()
    assert legs == [(c["uniqueid"], c["channel"]) for c in expected("T6b-")["asterisk_channels"]]


def test_supervisor_legs_are_stored_as_spy_calls_outside_the_statistics(db_url: str,
                                                                        tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from ccd.jobs.stats import compute

    backfill(db_url, tmp_path, "T8-")
    exp = expected("T8-")
    for spy in exp["supervisor_spy_via_panel"]:
        row = call(db_url, spy["asterisk_1005_channel"][0][-1])
        assert (row["tenant"], row["direction"], row["supervisor"], row["agent"],
                row["spy_mode"], row["spied_call_id"], row["hangup_by"], row["queue"]) == (
            "demo", "spy", "PJSIP/1005", "PJSIP/1001", spy["mode"], exp["calls"][0]["call_id"],
            "supervisor", "")
    with psycopg.connect(db_url) as conn:
        st = compute(conn, datetime(2026, 12, 8, tzinfo=UTC), datetime(2026, 12, 9, tzinfo=UTC))
        spied = conn.execute("SELECT count(*) FROM calls WHERE spied_call_id = %s",
                             (exp["calls"][0]["call_id"],)).fetchone()
    assert spied == (3,)  # the dialplan codes' ChanSpy found nobody to listen to
    for code in exp["supervisor_dialplan_codes"]:
        row = call(db_url, code["asterisk_1005_channel"][0][-1])
        assert (row["direction"], row["supervisor"], row["outcome"]) == ("spy", "PJSIP/1005",
                                                                         "failed")
    [(queue, row)] = [(k[0], v) for k, v in st.queues.items()]
    assert (queue, row.offered, row.answered) == ("support", 1, 1)


# ------------------------------------------------------------------ #5 end not seen


def test_a_call_whose_end_ccd_did_not_see_is_stored_with_an_unknown_end(db_url: str,
                                                                        tmp_path: Path) -> None:
    """T7c up to the cut of ccd's AMI link, then a resync that finds no channel and no
    recording length: NULL end and durations, the window, out of talk and AHT."""
    import re
    from datetime import UTC, datetime

    from ccd.ami.capture import rewrite_variable, timed_chunks
    from ccd.ami.ingest import Ingest
    from ccd.jobs.stats import compute
    from ccd.model.live import Snapshot

    seed(db_url, tmp_path)
    rec_dir = tmp_path / "rec"
    config = load(None, {"CCD_DATA_DIR": str(tmp_path), "CCD_DATABASE_URL": db_url,
                         "CCD_RECORDING_DIR": str(rec_dir)})
    truth = expected("T7c-")["calls"][0]
    monitor = "/var/spool/asterisk/monitor/ccd/"  # ccd's recordings: <dir>/<tenant>/...
    text = rewrite_variable(capture("T7c-").read_bytes(), "MIXMONITOR_FILENAME",
                            lambda p: f"{rec_dir}/{p[len(monitor):]}"
                            if p.startswith(monitor) else p)
    cut = float(re.search(rb"# t=([0-9.]+) note driver: proxy-cut", text).group(1))
    model = LiveModel(config.model_config_obj())
    configure(model, db_url)
    ingest, events = Ingest(model), []
    for now, chunk in timed_chunks(text):
        if now >= cut:
            break
        events += ingest.feed(chunk, now)
    events += model.link_lost(cut)
    events += model.reconcile(Snapshot(ts=truth["driver_times"]["proxy_open"] + 0.5))
    asyncio.run(store_events(config, db_url, events))
    row = call(db_url, truth["call_id"])
    assert (row["open"], row["ended_at"], row["talk_seconds"], row["total_seconds"]) == (
        False, None, None, None)
    assert (row["hangup_by"], row["end_reason"], row["outcome"]) == (
        "unknown", "vanished while the AMI link was down", "answered")
    assert row["end_after"].timestamp() <= truth["driver_times"]["caller_hangup"] \
        <= row["end_before"].timestamp()
    with psycopg.connect(db_url) as conn:
        st = compute(conn, datetime(2026, 12, 8, tzinfo=UTC), datetime(2026, 12, 9, tzinfo=UTC))
        stopped = conn.execute("SELECT stopped_at FROM recordings WHERE call_id = %s",
                               (truth["call_id"],)).fetchall()
    tot = st.totals("support")
    assert (tot.answered, tot.talk_unknown, tot.talk, tot.aht) == (1, 1, 0.0, None)
    assert stopped == [(None,)]  # when the recording stopped is not known either


# ------------------------------------------------------------------ #19 ccd restarts


def test_what_ccd_reads_back_of_a_call_left_open(db_url: str, tmp_path: Path) -> None:
    """T5e stored by a ccd killed 1 s after Bob answered: the open call as the next start
    reads it (ccd.store.known), with the facts it had seen to the millisecond."""
    import re

    from ccd.ami.capture import timed_chunks
    from ccd.ami.ingest import Ingest
    from ccd.store.db import open_async_pool
    from ccd.store.known import open_calls

    seed(db_url, tmp_path)
    config = load(None, {"CCD_DATA_DIR": str(tmp_path), "CCD_DATABASE_URL": db_url})
    killed = 1796693812.0
    model = LiveModel(config.model_config_obj())
    ingest, events = Ingest(model), []
    for now, chunk in timed_chunks(capture("T5e-").read_bytes()):
        if now >= killed:
            break
        events += ingest.feed(chunk, now)
    asyncio.run(store_events(config, db_url, events))

    async def read() -> dict[str, Any]:
        pool = await open_async_pool(db_url)
        try:
            return await open_calls(pool)
        finally:
            await pool.close()
    [(call_id, k)] = asyncio.run(read()).items()
    text = capture("T5e-").read_bytes().decode()
    joined = float(re.search(r"Event: QueueCallerJoin\r\n(?:.*\r\n)*?Timestamp: ([0-9.]+)",
                             text).group(1))
    first = float(re.search(r"Event: Newchannel\r\n(?:.*\r\n)*?Timestamp: ([0-9.]+)",
                            text).group(1))
    truth = expected("T5e-")["calls"][0]
    assert call_id == truth["call_id"]
    r = k.record
    assert (r.direction, r.did, r.queue, r.agent, r.outcome) == (
        "inbound", "5551000", "support", truth["agent_answered"], "answered")
    assert r.start == pytest.approx(first, abs=0.001)
    assert k.queued_at is None and r.queue_wait == pytest.approx(
        next(e for e in events if e.kind == "answered").ts - joined, abs=0.002)
    assert list(k.talking_since) == ["PJSIP/1002-00000018"]
    assert k.talking_since["PJSIP/1002-00000018"] == pytest.approx(
        truth["driver_times"]["agent_est"], abs=0.01)
    assert list(k.recordings) == r.recordings and len(r.recordings) == 1
    assert k.last_seen == pytest.approx(max(e.ts for e in events), abs=0.001)
