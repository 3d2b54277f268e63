"""`ccd run` as a real process: AMI over TCP, real PostgreSQL, status, clean SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from ccd.ami.capture import read_capture
from ccd.ami.parser import FrameSplitter

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"


def events_of(name: str) -> bytes:
    data = read_capture(next(CAPTURES.glob(name + "*.ami")))
    return data[data.index(b"Event: SuccessfulAuth"):]


async def wait_for(cond, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.1)


async def wait_for_async(get, cond, timeout: float = 60.0) -> None:
    """Poll ``cond(await get())`` until it holds (real seconds: another process runs)."""
    end = time.monotonic() + timeout
    while not cond(await get()):
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.1)


async def events_total(env: dict[str, str]) -> int:
    """How many AMI events the running daemon has received (``ccd status --json``)."""
    out = await asyncio.to_thread(ccd, env, "status", "--json")
    return int(json.loads(out.stdout)["events"]["total"])


def ccd(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccd", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def row(url: str, sql: str, *params: object) -> tuple | None:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()


async def test_ccd_run_end_to_end(ami, db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "CCD_DATA_DIR": str(tmp_path), "CCD_AMI_PORT": str(ami.port),
           "CCD_AMI_SECRET": "ccdsecret", "CCD_DATABASE_URL": db_url,
           "CCD_STORE_FLUSH_INTERVAL": "0.1", "CCD_LOG_FORMAT": "json",
           "CCD_AGI_PORT": "0", "CCD_WEB_PORT": "0"}
    env.pop("CCD_CONFIG", None)
    log_path = tmp_path / "ccd.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ccd", "run"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        await wait_for(lambda: ami.logins >= 1 and (tmp_path / "ccd.sock").exists())
        st = json.loads((await asyncio.to_thread(ccd, env, "status", "--json")).stdout)
        assert st["ami"]["state"] == "connected"
        assert st["agi"]["port"] > 0  # the FastAGI server runs in the daemon
        await ami.send(events_of("scenario01"))

        def stored() -> bool:
            r = row(db_url, "SELECT open FROM calls WHERE call_id = %s", "1795465016.0")
            return r is not None and r[0] is False

        await wait_for(stored)
        agent, by, rec = row(db_url, "SELECT agent, hangup_by, record->'recordings' FROM calls "
                             "WHERE call_id = %s", "1795465016.0")
        assert (agent, by) == ("PJSIP/1001", "caller")
        assert rec == ["/var/spool/asterisk/monitor/20261123-201702-support-1795465016.0.wav"]
        human = await asyncio.to_thread(ccd, env, "status")
        assert human.returncode == 0 and "connected" in human.stdout
        # events the daemon received just before SIGTERM are flushed, not lost: wait until
        # it has read them all (its event count), however long the machine takes for that
        late = events_of("scenario03")
        n = sum(1 for raw in FrameSplitter().feed(late) if raw.startswith(b"Event: "))
        before = await events_total(env)
        await ami.send(late)
        await wait_for_async(lambda: events_total(env), lambda total: total >= before + n)
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0
        r = row(db_url, "SELECT outcome, hangup_by FROM calls WHERE call_id = %s",
                "1795465052.4")
        assert r == ("abandoned", "caller")
        n = row(db_url, "SELECT count(*) FROM call_events")
        assert n is not None and n[0] > 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert "ccdsecret" not in text  # secrets never logged
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    assert any("AMI link up" in x["msg"] for x in lines)
    assert not (tmp_path / "ccd.sock").exists()


def test_status_without_daemon(tmp_path: Path) -> None:
    env = {**os.environ, "CCD_DATA_DIR": str(tmp_path)}
    env.pop("CCD_CONFIG", None)
    r = ccd(env, "status")
    assert r.returncode == 3
    assert "not running" in r.stderr or "no API token" in r.stderr


def test_bad_configuration_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "ccd.toml"
    cfg.write_text('[ami]\nport = 99999\n[database]\nurl = "mysql://x"\n')
    r = ccd({**os.environ, "CCD_CONFIG": str(cfg)}, "status")
    assert r.returncode == 2
    assert "ami.port" in r.stderr and "database.url" in r.stderr
    r = ccd({**os.environ, "CCD_CONFIG": str(tmp_path / "missing.toml")}, "status")
    assert r.returncode == 2 and "does not exist" in r.stderr
