"""Store fixtures and helpers: an unmigrated database, a cuttable TCP proxy in front of
the test server, domain events replayed from the real captures, table snapshots.

Helpers are handed to tests as fixtures (``capture``, ``rows``, ``snapshot``) so test
modules never import this file.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ccd.ami.capture import rewrite_variable
from ccd.cli.replay import replay_bytes
from ccd.config import Config
from ccd.model.domain import DomainEvent
from ccd.model.live import LiveModel

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"


#: where the captures' Asterisk wrote recordings: ccd's own under MONITOR/ccd/<slug>/...
#: (recording.dir = MONITOR/ccd), the dialplan's safety-net ones flat in MONITOR
MONITOR = "/var/spool/asterisk/monitor/"


def relocated(recording_dir: Path, tenant: str) -> Callable[[str], str]:
    """The captures' recording paths in the layout ccd requires: ccd's own under
    ``<recording_dir>/<slug>/...``, the safety-net ones under ``<recording_dir>/<tenant>/``
    (where the dialplan now puts them)."""
    def move(path: str) -> str:
        if path.startswith(MONITOR + "ccd/"):
            return f"{recording_dir}/{path[len(MONITOR) + 4:]}"
        if path.startswith(MONITOR):
            return f"{recording_dir}/{tenant}/{path[len(MONITOR):]}"
        return path
    return move


def capture_events(prefix: str, recording_dir: Path | None = None,
                   tenant: str = "default") -> list[DomainEvent]:
    """The domain events of a real capture, through the real ingest path and live model;
    with ``recording_dir`` its recordings are :func:`relocated` there (the AMI VarSets of
    ``MIXMONITOR_FILENAME`` are rewritten, nothing else)."""
    (path,) = CAPTURES.rglob(f"{prefix}*.ami")
    data = path.read_bytes()
    if recording_dir is not None:
        data = rewrite_variable(data, "MIXMONITOR_FILENAME", relocated(recording_dir, tenant))
    events, _ = replay_bytes(data, LiveModel(Config().model_config_obj()))
    return events


class PgProxy:
    """TCP proxy between a client and the test PostgreSQL that can be cut.

    :meth:`cut` closes the listening socket (new connections are refused) and breaks
    every proxied connection (the client reads EOF): what a client sees when the
    server or the network goes away. :meth:`restore` listens again on the same port.
    """

    def __init__(self, server_url: str) -> None:
        info = psycopg.conninfo.conninfo_to_dict(server_url)
        host = str(info.get("host") or "/tmp")
        port = int(info.get("port") or 5432)
        if host.startswith("/"):
            self._family, self._address = socket.AF_UNIX, f"{host}/.s.PGSQL.{port}"
        else:
            self._family, self._address = socket.AF_INET, (host, port)  # type: ignore[assignment]
        self.user = str(info.get("user") or "postgres")
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0
        self.restore()

    def url(self, db_url: str) -> str:
        """``db_url``'s database, reached through the proxy."""
        dbname = psycopg.conninfo.conninfo_to_dict(db_url)["dbname"]
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def restore(self) -> None:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(64)
        self.port = ls.getsockname()[1]
        self._listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def cut(self) -> None:
        ls, self._listener = self._listener, None
        if ls is not None:
            with contextlib.suppress(OSError):
                ls.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            ls.close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, ls: socket.socket) -> None:
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            upstream = socket.socket(self._family, socket.SOCK_STREAM)
            try:
                upstream.connect(self._address)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._conns.discard(src)


def rows(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """What the writer stored, without surrogate ids, event ids and write times:
    equal snapshots = the same facts stored the same number of times."""
    return {
        "calls": rows(url, """
            SELECT tenant_id, call_id, direction, did, caller_num, caller_name, dialed,
                   started_at, answered_at, ended_at, queue, queue_wait, queue_position,
                   outcome, agent, agent_name, talk_seconds, hold_seconds, total_seconds,
                   hangup_by, hangup_cause, hangup_cause_txt, end_reason, customer_id,
                   variables, record, open
            FROM calls ORDER BY call_id"""),
        "call_legs": rows(url, "SELECT tenant_id, call_id, uniqueid, channel, created_at "
                               "FROM call_legs ORDER BY call_id, uniqueid"),
        "call_events": rows(url, "SELECT tenant_id, call_id, agent, kind, ts, data "
                                 "FROM call_events ORDER BY seq"),
        "recordings": rows(url, "SELECT tenant_id, call_id, path, channel, started_at, "
                                "stopped_at FROM recordings ORDER BY path"),
        "agent_states": rows(url, "SELECT tenant_id, agent, state, reason, call_id, started_at, "
                                  "ended_at, seconds FROM agent_states ORDER BY id"),
    }


@pytest.fixture
def empty_db_url(make_db: Callable[..., str]) -> str:
    """A fresh database without any migration."""
    return make_db(migrate=False)


@pytest.fixture
def pg_proxy(pg_server_url: str) -> Iterator[PgProxy]:
    """A :class:`PgProxy` to the test server; ``pg_proxy.url(db_url)`` goes through it."""
    proxy = PgProxy(pg_server_url)
    yield proxy
    proxy.cut()


@pytest.fixture(name="capture")
def capture_fixture() -> Callable[..., list[DomainEvent]]:
    """``capture("scenario01")``: the domain events of that capture;
    ``capture("scenario01", recording_dir, "acme")``: with its recordings relocated."""
    return capture_events


@pytest.fixture(name="rows")
def rows_fixture() -> Callable[..., list[tuple[Any, ...]]]:
    """``rows(url, query, params)``: all rows of a query."""
    return rows


@pytest.fixture(name="snapshot")
def snapshot_fixture() -> Callable[[str], dict[str, list[tuple[Any, ...]]]]:
    """``snapshot(url)``: the stored facts, comparable between databases."""
    return snapshot
