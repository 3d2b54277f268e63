"""``ccd campaign ...`` and ``ccd report surveys`` against a real PostgreSQL; the live
commands against a daemon's control API serving the campaign methods."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from click.testing import CliRunner, Result

import ccd.cli.campaign  # noqa: F401  (registers `ccd campaign` and `ccd report surveys`)
from ccd.campaigns.service import CampaignService
from ccd.cli.main import cli
from ccd.config import Config
from ccd.daemon import Daemon
from ccd.store.db import open_async_pool

pytestmark = pytest.mark.timeout(120)

CONTACTS = """phone;name;timezone;language;account
+1 (555) 010-0001;Ann;America/Chicago;en;A1
555 010 0002;Ben;;es;A2
5550100001;Dup;;;A3
nope;Bad;;;A4
+15550100003;Tz;Moon/Base;;A5
+19005550000;Premium;;;A6
"""


def run(db_url: str, tmp: Path, *args: str) -> Result:
    env = {"CCD_DATABASE_URL": db_url, "CCD_DATA_DIR": str(tmp), "CCD_CONFIG": ""}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_create_import_dnc_status_report(db, db_url: str, tmp_path: Path) -> None:
    tid = db.seed()
    db.q("UPDATE tenants SET dial_patterns = ARRAY['^\\+1[2-8][0-9]{9}$'] WHERE id = %s", tid)
    base = ["campaign", "create", "spring", "--tenant", "acme", "--queue", "outbound",
            "--caller-id", "5551000", "--dial-template", "PJSIP/{digits}"]
    r = run(db_url, tmp_path, *base, "--mode", "predictive")
    assert r.exit_code == 2 and "--abandon-message" in r.output
    r = run(db_url, tmp_path, *base, "--ring-timeout", "10")
    assert r.exit_code == 2
    r = run(db_url, tmp_path, *base, "--retry", "abandoned=1h", "--abandon-message", "x")
    assert r.exit_code == 2 and "72 h" in r.output
    r = run(db_url, tmp_path, "campaign", "create", "x", "--tenant", "acme", "--queue", "nope",
            "--abandon-message", "m")
    assert r.exit_code == 4
    r = run(db_url, tmp_path, *base, "--mode", "predictive", "--abandon-message",
            "custom/acme-abandon", "--window", "mon-fri 07:00-22:00", "--retry",
            "busy=10m*1.5/5", "--max-abandon", "2.5", "--start-at", "2030-01-07T14:00:00Z")
    assert r.exit_code == 0, r.output
    assert "narrowed to the legal hours" in r.output
    r = run(db_url, tmp_path, *base, "--abandon-message", "m")
    assert r.exit_code == 2 and "already exists" in r.output
    (c,) = db.q("SELECT * FROM campaigns WHERE name = 'spring'")
    assert (c["dial_mode"], float(c["max_abandon_pct"]), c["retry"]["busy"]) == \
        ("predictive", 2.5, {"delay": 600.0, "backoff": 1.5, "max": 5})
    assert db.q("SELECT action FROM campaign_schedule") == [{"action": "start"}]

    f = tmp_path / "contacts.csv"
    f.write_text(CONTACTS)
    rej = tmp_path / "rejects.csv"
    r = run(db_url, tmp_path, "campaign", "import", "spring", str(f), "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["imported"] == 0 and not db.q("SELECT 1 FROM campaign_contacts")
    r = run(db_url, tmp_path, "campaign", "import", "spring", str(f), "--rejects", str(rej))
    assert r.exit_code == 0, r.output
    assert "imported 2 contacts, rejected 4" in r.output
    got = db.q("SELECT e164, name, timezone, language, data, line_no FROM campaign_contacts "
               "ORDER BY id")
    assert got == [
        {"e164": "+15550100001", "name": "Ann", "timezone": "America/Chicago",
         "language": "en", "data": {"account": "A1"}, "line_no": 2},
        {"e164": "+15550100002", "name": "Ben", "timezone": None, "language": "es",
         "data": {"account": "A2"}, "line_no": 3}]
    with rej.open() as fh:
        reasons = {int(row["line"]): row["reason"] for row in csv.DictReader(fh)}
    assert sorted(reasons) == [4, 5, 6, 7]
    assert "dial patterns" in reasons[7] and "time zone" in reasons[6]
    r = run(db_url, tmp_path, "campaign", "import", "spring", str(f), "--json")
    assert r.exit_code == 2  # nothing new: every row rejected
    assert json.loads(r.output)["rejected"] == 6
    bad = tmp_path / "bad.csv"
    bad.write_text("name,email\nx,y\n")
    assert run(db_url, tmp_path, "campaign", "import", "spring", str(bad)).exit_code == 2

    r = run(db_url, tmp_path, "campaign", "dnc", "add", "555-010-0002", "--tenant", "acme",
            "--note", "asked")
    assert r.exit_code == 0, r.output
    assert run(db_url, tmp_path, "campaign", "dnc", "add", "+15550109999").exit_code == 2
    assert run(db_url, tmp_path, "campaign", "dnc", "add", "+15550109999",
               "--global").exit_code == 0
    r = run(db_url, tmp_path, "campaign", "dnc", "--tenant", "acme", "--json")
    assert {(d["e164"], d["list"]) for d in json.loads(r.output)} == \
        {("+15550100002", "acme"), ("+15550109999", "(global)")}
    r = run(db_url, tmp_path, "campaign", "dnc", "remove", "+15550109999", "--global")
    assert r.exit_code == 0
    assert run(db_url, tmp_path, "campaign", "dnc", "remove", "+15550109999",
               "--global").exit_code == 4

    r = run(db_url, tmp_path, "campaign", "--json")
    assert [(x["name"], x["contacts"], x["open"]) for x in json.loads(r.output)] == \
        [("spring", 2, 2)]
    # without a daemon, status comes from the database
    r = run(db_url, tmp_path, "campaign", "status", "spring", "--json")
    assert r.exit_code == 0, r.output
    (st,) = json.loads(r.output)
    assert (st["state"], st["contacts"]["pending"], st["abandonment"]["limit_pct"]) == \
        ("draft", 2, 2.5)
    r = run(db_url, tmp_path, "campaign", "status")
    assert r.exit_code == 0 and "spring" in r.output
    assert run(db_url, tmp_path, "campaign", "status", "nope").exit_code == 4
    # live control needs the daemon
    r = run(db_url, tmp_path, "campaign", "start", "spring")
    assert r.exit_code == 3 and "daemon" in r.output

    # a report of stored attempts
    cid = c["id"]
    contacts = db.q("SELECT id, e164 FROM campaign_contacts ORDER BY id")
    for (ct, outcome, agent, talk) in ((contacts[0], "answered", "PJSIP/1001", 60),
                                       (contacts[1], "busy", "", None),
                                       (contacts[1], "abandoned", "", None)):
        db.q("INSERT INTO campaign_attempts (tenant_id, campaign_id, contact_id, attempt_no, "
             "e164, mode, created_at, ended_at, state, outcome, agent, talk_seconds, "
             "disposition) VALUES (%s, %s, %s, 1, %s, 'predictive', "
             "'2030-01-07T15:00:00Z', '2030-01-07T15:01:00Z', 'done', %s, %s, %s, %s)",
             tid, cid, ct["id"], ct["e164"], outcome, agent, talk,
             "sale" if outcome == "answered" else "")
    r = run(db_url, tmp_path, "campaign", "report", "spring", "--json")
    rep = json.loads(r.output)
    assert rep["summary"]["live"] == 2 and rep["summary"]["abandon_pct"] == 50.0
    assert rep["days"][0]["day"] == "2030-01-07"
    assert rep["agents"] == [{"agent": "PJSIP/1001", "calls": 1, "talk_seconds": "60.0",
                              "avg_talk": "60.0"}]
    assert rep["dispositions"] == [{"disposition": "sale", "n": 1}]
    r = run(db_url, tmp_path, "campaign", "report", "spring", "--attempts", "--csv")
    lines = list(csv.reader(r.output.splitlines()))
    assert lines[0][:2] == ["id", "e164"] and len(lines) == 4
    r = run(db_url, tmp_path, "campaign", "report", "spring")
    assert r.exit_code == 0 and "Per day" in r.output


def test_report_surveys(db, db_url: str, tmp_path: Path) -> None:
    tid = db.seed()
    alice = db.q("SELECT id FROM agents WHERE interface = 'PJSIP/1001'")[0]["id"]
    for i, (agent, rating, status) in enumerate((("PJSIP/1001", 5, "completed"),
                                                 ("PJSIP/1001", 3, "completed"),
                                                 ("PJSIP/1002", None, "hangup"),
                                                 ("PJSIP/1002", 4, "completed"))):
        db.q("INSERT INTO survey_results (tenant_id, call_id, queue, agent, agent_id, rating, "
             "status, comment_file, created_at) VALUES (%s, %s, 'support', %s, %s, %s, %s, "
             "%s, '2030-01-07T15:00:00Z')", tid, f"c{i}", agent,
             alice if agent == "PJSIP/1001" else None, rating, status,
             "/rec/x.wav" if i == 0 else "")
    args = ["report", "surveys", "--from", "2030-01-07T00:00:00Z", "--to", "2030-01-08T00:00:00Z"]
    r = run(db_url, tmp_path, *args, "--json")
    assert r.exit_code == 0, r.output
    by = {x["key"]: x for x in json.loads(r.output)}
    assert (by["PJSIP/1001"]["surveys"], by["PJSIP/1001"]["avg"], by["PJSIP/1001"]["csat_pct"],
            by["PJSIP/1001"]["comments"]) == (2, "4.00", "50.0", 1)
    assert (by["PJSIP/1002"]["surveys"], by["PJSIP/1002"]["rated"]) == (2, 1)
    r = run(db_url, tmp_path, *args, "--by", "queue", "--csv")
    assert r.output.splitlines()[1].startswith("support,4,3,4.00,66.7")
    r = run(db_url, tmp_path, *args, "--list", "--agent", "PJSIP/1001", "--json")
    assert [x["rating"] for x in json.loads(r.output)] == [5, 3]
    assert json.loads(r.output)[0]["agent_name"] == "Alice"
    assert run(db_url, tmp_path, "report", "surveys", "--from", "2030-01-08",
               "--to", "2030-01-07").exit_code == 2


async def test_live_commands_through_the_daemon(db, db_url: str, tmp_path: Path,
                                                clock: Any) -> None:
    tid = db.seed()
    db.campaign(tid)
    data = tmp_path / "d"
    cfg = Config.model_validate({"data_dir": str(data)})
    daemon = Daemon(cfg, db_url)
    daemon.pool = await open_async_pool(db_url, max_size=4, name="live")
    scheduler = AsyncIOScheduler(timezone="UTC")
    svc = CampaignService(cfg, daemon, db_url, scheduler, clock=clock, tick=0.2, name="live")
    for name, fn in svc.methods().items():
        daemon.api.register(name, fn)
    await daemon.api.start()
    await svc.start()
    scheduler.start()

    async def ccd(*args: str) -> Result:
        return await asyncio.to_thread(run, db_url, data, *args)

    try:
        r = await ccd("campaign", "start", "spring")
        assert r.exit_code == 0 and "draft -> running" in r.output, r.output
        r = await ccd("campaign", "pause", "spring", "--tenant", "acme")
        assert r.exit_code == 0 and "running -> paused" in r.output
        r = await ccd("campaign", "pause", "nope")
        assert r.exit_code == 4
        r = await ccd("campaign", "stop", "spring", "--at", "2030-01-07T18:00:00Z")
        assert r.exit_code == 0 and "stop scheduled at 2030-01-07T18:00:00+00:00" in r.output
        r = await ccd("campaign", "status", "--json")
        (st,) = json.loads(r.output)
        assert (st["name"], st["state"], st["dialer"]) == ("spring", "paused", "live")
        r = await ccd("campaign", "status")
        assert r.exit_code == 0 and "paused" in r.output
    finally:
        await svc.stop()
        scheduler.shutdown(wait=False)
        await daemon.api.stop()
        await daemon.pool.close()
