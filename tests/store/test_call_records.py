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
from ccd.store.backfill import queue_wrapups, store_events

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
        model.config.wrapup.update(queue_wrapups(db_url))
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
