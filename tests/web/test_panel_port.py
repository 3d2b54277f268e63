"""`ccd run` when the panel's port is taken, as a real process against a real socket that
holds the port: by default it stops before touching anything (exit 2, a message naming
host:port and ``[web] port``); with ``[web] optional = true`` it warns and runs without the
panel."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from web_support import HERE, wait_until

from ccd.sim.simulator import SimOptions, Simulator

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def held_port() -> Iterator[socket.socket]:
    """Another program's server on 127.0.0.1: bound and listening."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def ami_listener() -> Iterator[socket.socket]:
    """A TCP port where the daemon would find Asterisk (counts who connects)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield s
    finally:
        s.close()


def _env(tmp: Path, ami_port: int, web_port: int, db_url: str, **more: str) -> dict[str, str]:
    env = {**os.environ, "CCD_DATA_DIR": str(tmp), "CCD_AMI_PORT": str(ami_port),
           "CCD_AMI_SECRET": "ccdsecret", "CCD_DATABASE_URL": db_url, "CCD_AGI_PORT": "0",
           "CCD_WEB_HOST": "127.0.0.1", "CCD_WEB_PORT": str(web_port),
           "CCD_LOG_FORMAT": "text", **more}
    env.pop("CCD_CONFIG", None)
    return env


def _tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]


def _pending_connection(listener: socket.socket) -> bool:
    listener.setblocking(False)
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def test_taken_port_stops_ccd_run_before_it_touches_anything(
        held_port: socket.socket, ami_listener: socket.socket,
        make_db: Callable[..., str], tmp_path: Path) -> None:
    db = make_db(migrate=False)  # an empty database: a started daemon would migrate it
    port = held_port.getsockname()[1]
    env = _env(tmp_path, ami_listener.getsockname()[1], port, db)
    r = subprocess.run([sys.executable, "-m", "ccd", "run"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert f"127.0.0.1:{port}" in r.stderr
    assert "[web] port" in r.stderr and "[web] optional" in r.stderr
    assert "Traceback" not in r.stderr
    # nothing was started: no migration, no AMI connection, no control socket
    assert _tables(db) == []
    assert not _pending_connection(ami_listener)
    assert not (tmp_path / "ccd.sock").exists()
    assert not (tmp_path / "spool").exists()
    # the other program still has its port
    held_port.settimeout(5)
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.close()
    accepted, _ = held_port.accept()
    accepted.close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """ccd's simulated Asterisk (real AMI over TCP) on a loop in a thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    s = Simulator(SimOptions(config_dir=HERE / "pbx", ami_port=0))
    asyncio.run_coroutine_threadsafe(s.start(), loop).result(30)
    try:
        yield s
    finally:
        asyncio.run_coroutine_threadsafe(s.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_optional_panel_warns_and_ccd_runs_without_it(
        held_port: socket.socket, sim: Simulator, db_url: str, tmp_path: Path) -> None:
    port = held_port.getsockname()[1]
    env = _env(tmp_path, sim.ami_port, port, db_url, CCD_WEB_OPTIONAL="true")
    log_path = tmp_path / "ccd.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ccd", "run"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        def status() -> dict | None:
            if proc.poll() is not None:
                raise AssertionError(f"ccd run exited {proc.returncode}: "
                                     f"{log_path.read_text()[-2000:]}")
            if not (tmp_path / "ccd.sock").exists():
                return None
            r = subprocess.run([sys.executable, "-m", "ccd", "status", "--json"], env=env,
                               capture_output=True, text=True, timeout=60)
            st = json.loads(r.stdout) if r.returncode == 0 else None
            return st if st and st["ami"]["state"] == "connected" else None

        wait_until(status, 60, "the daemon to run with its AMI link up")
        text = log_path.read_text()
        assert "WARNING" in text and f"127.0.0.1:{port}" in text
        assert "without the panel" in text
        assert "Traceback" not in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
