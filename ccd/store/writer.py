"""The event writer: domain events -> on-disk spool -> PostgreSQL, in order and exactly once.

Durability, step by step:

1. :meth:`EventWriter.submit` gives the event a UUID (``event_id``, time-ordered v7)
   and appends one JSON line ``{"seq", "id", "event"}`` to the active segment of the
   spool (``<data_dir>/spool/events-NNNNNNNNNNNN.jsonl``) with a single ``write()``.
   When it returns, the event is accepted: it survives the process being killed.
   Each batch is ``fsync``-ed before it is sent, so it also survives a power cut
   from then on. ``submit`` touches only the file, never the database.
2. A background task reads the spool in order, ``store.batch_size`` events at a
   time (or what arrived within ``store.flush_interval``), and writes each batch in
   ONE transaction: ``call_events`` rows keyed by ``event_id`` plus the projections
   (``calls``, ``call_legs``, ``recordings``, ``agent_states``). Events whose
   ``event_id`` is already in ``call_events`` are skipped entirely, projections
   included, so replaying a batch changes nothing.
3. After the commit, ``checkpoint.json`` records the last committed ``seq`` and its
   byte position; segments entirely before it are deleted (segments rotate at
   ``segment_bytes``).
4. If the commit fails because PostgreSQL is unreachable, the same batch is retried
   with exponential back-off from ``store.retry_interval`` while new events keep
   accumulating in the spool. If the connection breaks during COMMIT the outcome is
   unknown; the retry resolves it through the ``event_id`` check.
5. At start the spool is recovered (a torn last line from a crash is cut off) and
   everything after the checkpoint is written first. A stale checkpoint is harmless
   for the same reason as 4.

An event the database refuses for its content (bad value, constraint) does not
block the others: the batch is retried event by event, each in a savepoint, and the
refused one is appended to ``<spool>/rejected.jsonl`` and logged as an error.
A spool directory is used by one process at a time (``flock`` on ``<spool>/lock``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, LiteralString

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ccd.config import Config
from ccd.ivr.phone import PLANS, to_e164
from ccd.model.domain import DomainEvent
from ccd.store.db import describe_error
from ccd.store.recindex import RecordingIndex

log = logging.getLogger(__name__)

SEGMENT_BYTES = 16 * 1024 * 1024
_READ_CHUNK = 256 * 1024
_SEGMENT_RE = re.compile(r"^events-(\d{12})\.jsonl$")
#: the database refused the content of an event (not the connection)
_DATA_ERRORS = (psycopg.DataError, psycopg.IntegrityError)


class SpoolLocked(Exception):
    """Another process is using this spool directory."""


class WriterClosed(RuntimeError):
    """The writer is not started or already closed."""


def uuid7() -> str:
    """A time-ordered UUID (RFC 9562 version 7): B-tree friendly ``event_id``."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = ((ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def _clean(obj: Any) -> Any:
    """What PostgreSQL's text and jsonb accept: no NUL, no lone surrogate, no NaN/Infinity."""
    if isinstance(obj, str):
        if "\x00" in obj:
            obj = obj.replace("\x00", "")
        if not obj.isascii():
            try:
                obj.encode("utf-8")
            except UnicodeEncodeError:
                obj = obj.encode("utf-8", "replace").decode("utf-8")
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(_clean(k)): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


# ------------------------------------------------------------------------ spool


@dataclass(slots=True)
class SpoolRecord:
    """One accepted event read back from the spool."""

    seq: int
    event_id: str
    event: dict[str, Any]
    segment: int
    end: int  # byte offset just after its line


class Spool:
    """Append-only JSON-lines segments plus a checkpoint; see the module docstring.

    ``append`` may be called from any thread; ``read``/``commit`` from one consumer.
    """

    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._wfd: int | None = None
        self._wseg = 0
        self._wsize = 0
        self._last_seq = 0
        self._committed_seq = 0
        self._oldest = 0
        self._rseg = 0
        self._roff = 0
        self._rfd: int | None = None
        self._rfd_seg = -1
        #: lines that could not be parsed (disk corruption), skipped
        self.unreadable = 0

    # -- paths

    def _path(self, index: int) -> Path:
        return self.dir / f"events-{index:012d}.jsonl"

    def _segments(self) -> list[int]:
        out = []
        for p in self.dir.iterdir():
            m = _SEGMENT_RE.match(p.name)
            if m:
                out.append(int(m[1]))
        return sorted(out)

    @property
    def checkpoint_path(self) -> Path:
        return self.dir / "checkpoint.json"

    @property
    def rejected_path(self) -> Path:
        return self.dir / "rejected.jsonl"

    # -- state

    @property
    def last_seq(self) -> int:
        """seq of the last accepted event."""
        return self._last_seq

    @property
    def committed_seq(self) -> int:
        """seq of the last event written to the database (or skipped as unreadable)."""
        return self._committed_seq

    @property
    def pending(self) -> int:
        """Accepted events not yet written to the database."""
        return max(0, self._last_seq - self._committed_seq)

    @property
    def is_open(self) -> bool:
        return self._wfd is not None

    # -- open / recover

    def open(self) -> None:
        """Lock the directory, recover after a crash, position reader and writer."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SpoolLocked(f"spool {self.dir} is in use by another ccd process") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

        cp = self._load_checkpoint()
        segs = self._segments()
        if cp is not None:
            for idx in [s for s in segs if s < cp["segment"]]:
                self._path(idx).unlink(missing_ok=True)
            segs = [s for s in segs if s >= cp["segment"]]
        last_seq = 0
        for i, idx in enumerate(reversed(segs)):
            last_seq = self._scan_last(idx, repair=(i == 0))
            if last_seq:
                break
        first_seq = self._scan_first(segs[0]) if segs else 0
        if cp is not None:
            self._committed_seq = cp["seq"]
        elif first_seq:
            self._committed_seq = first_seq - 1
        self._last_seq = max(last_seq, self._committed_seq)

        if segs:
            self._wseg = segs[-1]
            self._oldest = segs[0]
        else:
            self._wseg = cp["segment"] + 1 if cp is not None else 1
            self._oldest = self._wseg
        self._wfd = os.open(self._path(self._wseg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._wsize = os.fstat(self._wfd).st_size
        if not segs:
            self._fsync_dir()

        if cp is not None and cp["segment"] in segs:
            self._rseg, self._roff = cp["segment"], cp["offset"]
        else:
            self._rseg, self._roff = self._oldest, 0

    def _load_checkpoint(self) -> dict[str, int] | None:
        try:
            data = json.loads(self.checkpoint_path.read_text())
            return {"seq": int(data["seq"]), "segment": int(data["segment"]),
                    "offset": int(data["offset"])}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("spool checkpoint %s unreadable (%s): replaying the whole spool; "
                        "events already in the database are skipped", self.checkpoint_path, exc)
            return None

    def _scan_first(self, index: int) -> int:
        """seq of the first readable event of a segment (0 if none)."""
        with open(self._path(index), "rb") as f:
            for raw in f:
                rec = _parse(raw)
                if rec is not None:
                    return rec[0]
        return 0

    def _scan_last(self, index: int, repair: bool) -> int:
        """seq of the last complete event of a segment; with ``repair`` cut a torn tail."""
        path = self._path(index)
        last = good_end = pos = 0
        with open(path, "rb") as f:
            for raw in f:
                pos += len(raw)
                rec = _parse(raw) if raw.endswith(b"\n") else None
                if rec is not None:
                    last, good_end = rec[0], pos
        if repair and pos > good_end:
            log.warning("spool %s: cutting %d bytes after the last complete event "
                        "(the process stopped while writing; that event was never accepted)",
                        path.name, pos - good_end)
            os.truncate(path, good_end)
        return last

    # -- writing

    def append(self, event_id: str, event: dict[str, Any]) -> int:
        """Append one event durably (one ``write``); return its seq. Raises OSError."""
        with self._lock:
            if self._wfd is None:
                raise WriterClosed("the spool is not open")
            seq = self._last_seq + 1
            line = json.dumps({"seq": seq, "id": event_id, "event": event},
                              ensure_ascii=False, separators=(",", ":"),
                              allow_nan=False).encode("utf-8") + b"\n"
            if self._wsize and self._wsize + len(line) > self.segment_bytes:
                self._rotate()
            self._write_all(line)
            self._last_seq = seq
            return seq

    def _write_all(self, data: bytes) -> None:
        assert self._wfd is not None
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._wfd, view)
                view = view[n:]
        except OSError:
            # leave no partial line behind: the event was not accepted
            with contextlib.suppress(OSError):
                os.ftruncate(self._wfd, self._wsize)
            raise
        self._wsize += len(data)

    def _rotate(self) -> None:
        assert self._wfd is not None
        os.fsync(self._wfd)
        os.close(self._wfd)
        self._wseg += 1
        self._wfd = os.open(self._path(self._wseg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._wsize = 0
        self._fsync_dir()

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def sync(self) -> None:
        """fsync the active segment (safe to call from a worker thread)."""
        with self._lock:
            if self._wfd is None:
                return
            fd = os.dup(self._wfd)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- reading

    def _reader_fd(self) -> int | None:
        if self._rfd is not None and self._rfd_seg == self._rseg:
            return self._rfd
        self._close_reader()
        try:
            self._rfd = os.open(self._path(self._rseg), os.O_RDONLY)
        except FileNotFoundError:
            return None
        self._rfd_seg = self._rseg
        return self._rfd

    def _close_reader(self) -> None:
        if self._rfd is not None:
            os.close(self._rfd)
        self._rfd, self._rfd_seg = None, -1

    def read(self, limit: int) -> list[SpoolRecord]:
        """Up to ``limit`` next events after the reader position, in order."""
        out: list[SpoolRecord] = []
        while len(out) < limit:
            with self._lock:
                active = self._wseg
            fd = self._reader_fd()
            buf = b""
            if fd is not None:
                size = _READ_CHUNK
                while True:
                    buf = os.pread(fd, size, self._roff)
                    if b"\n" in buf or len(buf) < size:
                        break
                    size *= 2
            end = buf.rfind(b"\n")
            if end < 0:
                if self._rseg < active:  # a closed segment is complete: next one
                    if buf:
                        self.unreadable += 1
                        log.error("spool %s: %d bytes without end of line skipped",
                                  self._path(self._rseg).name, len(buf))
                    self._rseg, self._roff = self._rseg + 1, 0
                    continue
                break
            pos = self._roff
            for raw in buf[:end + 1].split(b"\n")[:-1]:
                pos += len(raw) + 1
                self._roff = pos
                rec = _parse(raw)
                if rec is None:
                    self.unreadable += 1
                    log.error("spool %s: unreadable line before offset %d skipped",
                              self._path(self._rseg).name, pos)
                    continue
                seq, event_id, event = rec
                if seq <= self._committed_seq:
                    continue
                out.append(SpoolRecord(seq, event_id, event, self._rseg, pos))
                if len(out) >= limit:
                    break
        return out

    # -- checkpoint

    def commit(self, upto: SpoolRecord) -> None:
        """Everything up to ``upto`` is in the database: checkpoint, drop old segments."""
        self._checkpoint(upto.seq, upto.segment, upto.end)

    def skip_unreadable(self, upto_seq: int) -> None:
        """The reader reached the end but seqs up to ``upto_seq`` were never read."""
        log.error("spool %s: %d accepted events were unreadable and are skipped",
                  self.dir, upto_seq - self._committed_seq)
        self._checkpoint(upto_seq, self._rseg, self._roff)

    def _checkpoint(self, seq: int, segment: int, offset: int) -> None:
        tmp = self.checkpoint_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seq": seq, "segment": segment, "offset": offset}))
        os.replace(tmp, self.checkpoint_path)
        self._committed_seq = max(self._committed_seq, seq)
        while self._oldest < segment:
            self._path(self._oldest).unlink(missing_ok=True)
            self._oldest += 1

    def reject(self, rec: SpoolRecord, error: str) -> None:
        """Keep an event the database refused in ``rejected.jsonl``."""
        line = json.dumps({"id": rec.event_id, "seq": rec.seq, "error": error,
                           "rejected_at": datetime.now(UTC).isoformat(), "event": rec.event},
                          ensure_ascii=False) + "\n"
        with open(self.rejected_path, "a", encoding="utf-8") as f:
            f.write(line)

    def close(self) -> None:
        """fsync and close the files, release the directory lock."""
        with self._lock:
            if self._wfd is not None:
                with contextlib.suppress(OSError):
                    os.fsync(self._wfd)
                os.close(self._wfd)
                self._wfd = None
        self._close_reader()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _parse(raw: bytes) -> tuple[int, str, dict[str, Any]] | None:
    try:
        obj = json.loads(raw)
        seq, event_id, event = int(obj["seq"]), str(obj["id"]), obj["event"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(event, dict):
        return None
    return seq, event_id, event


# ------------------------------------------------------------------------ SQL

ENSURE_CALL: LiteralString = """
INSERT INTO calls (tenant_id, call_id, started_at)
SELECT ccd_default_tenant(), %(call_id)s, %(ts)s
WHERE NOT EXISTS (SELECT 1 FROM calls WHERE call_id = %(call_id)s)
ON CONFLICT (call_id) DO NOTHING
"""

# The tenant comes from ccd_call_tenant (sql/051): DID, CCD_TENANT tag, queue, agent.
CALL_STARTED: LiteralString = """
INSERT INTO calls AS c (tenant_id, call_id, direction, did, caller_num, caller_name, dialed,
                        agent, supervisor, variables, started_at)
VALUES (ccd_call_tenant(%(did)s, %(tenant_tag)s, NULL, %(agent)s), %(call_id)s,
        %(direction)s, %(did)s, %(caller_num)s, %(caller_name)s, %(dialed)s,
        COALESCE(%(agent)s, ''), %(supervisor)s, %(variables)s, %(ts)s)
ON CONFLICT (call_id) DO UPDATE SET
    direction = CASE WHEN c.direction = '' THEN EXCLUDED.direction ELSE c.direction END,
    did = CASE WHEN c.did = '' THEN EXCLUDED.did ELSE c.did END,
    caller_num = CASE WHEN c.caller_num = '' THEN EXCLUDED.caller_num ELSE c.caller_num END,
    caller_name = CASE WHEN c.caller_name = '' THEN EXCLUDED.caller_name ELSE c.caller_name END,
    dialed = CASE WHEN c.dialed = '' THEN EXCLUDED.dialed ELSE c.dialed END,
    agent = CASE WHEN c.agent = '' THEN EXCLUDED.agent ELSE c.agent END,
    supervisor = CASE WHEN c.supervisor = '' THEN EXCLUDED.supervisor ELSE c.supervisor END,
    variables = EXCLUDED.variables || c.variables,
    started_at = LEAST(c.started_at, EXCLUDED.started_at),
    tenant_id = ccd_call_tenant(CASE WHEN c.did = '' THEN EXCLUDED.did ELSE c.did END,
                                COALESCE(c.variables ->> 'CCD_TENANT', %(tenant_tag)s),
                                c.queue, COALESCE(NULLIF(c.agent, ''), %(agent)s)),
    updated_at = now()
WHERE c.open
"""

LEG: LiteralString = """
INSERT INTO call_legs (tenant_id, call_id, uniqueid, channel, created_at)
SELECT tenant_id, call_id, %(uniqueid)s, %(channel)s, %(ts)s FROM calls WHERE call_id = %(call_id)s
ON CONFLICT (call_id, uniqueid) DO NOTHING
"""

LEGS: LiteralString = """
INSERT INTO call_legs (tenant_id, call_id, uniqueid, channel)
SELECT c.tenant_id, c.call_id, l.uniqueid, l.channel
FROM calls c, unnest(%(uniqueids)s::text[], %(channels)s::text[]) AS l (uniqueid, channel)
WHERE c.call_id = %(call_id)s AND l.uniqueid IS NOT NULL
ON CONFLICT (call_id, uniqueid) DO NOTHING
"""

# The customer of a call, in the call's tenant: the id the IVR identified (CCD_CUSTOMER_ID,
# copied by the dialplan into CUSTOMER_ID), else the customer's number (the caller's, or
# the dialled one of an outbound call) in E.164 as the tenant's default country writes it
# (%(e164s)s maps country -> E.164, see customer_numbers()). A customer_id of another
# tenant is never kept.
CUSTOMER: LiteralString = """
UPDATE calls c SET customer_id = COALESCE(
    (SELECT cu.id FROM customers cu WHERE cu.tenant_id = c.tenant_id
        AND cu.id::text = COALESCE(NULLIF(c.variables ->> 'CCD_CUSTOMER_ID', ''),
                                   NULLIF(c.variables ->> 'CUSTOMER_ID', ''))),
    (SELECT p.customer_id FROM customer_phones p JOIN tenants t ON t.id = p.tenant_id
        WHERE p.tenant_id = c.tenant_id
          AND p.e164 = (%(e164s)s::jsonb ->> t.default_country)),
    (SELECT cu.id FROM customers cu WHERE cu.id = c.customer_id AND cu.tenant_id = c.tenant_id))
WHERE c.call_id = %(call_id)s
"""

EVENT: LiteralString = """
INSERT INTO call_events (event_id, tenant_id, call_id, agent, kind, ts, data)
VALUES (%(event_id)s,
        COALESCE((SELECT tenant_id FROM calls WHERE call_id = %(call_id)s),
                 (SELECT tenant_id FROM agents WHERE interface = %(agent)s),
                 ccd_default_tenant()),
        %(call_id)s, %(agent)s, %(kind)s, %(ts)s, %(data)s)
ON CONFLICT (event_id) DO NOTHING
"""

QUEUED: LiteralString = """
UPDATE calls SET
    queue = CASE WHEN queue = '' THEN %(queue)s ELSE queue END,
    queue_position = COALESCE(queue_position, %(position)s),
    tenant_id = ccd_call_tenant(did, variables ->> 'CCD_TENANT',
                                CASE WHEN queue = '' THEN %(queue)s ELSE queue END, agent),
    updated_at = now()
WHERE call_id = %(call_id)s AND open
"""

ANSWERED: LiteralString = """
UPDATE calls SET
    answered_at = COALESCE(answered_at, %(ts)s),
    agent = CASE WHEN agent = '' THEN %(agent)s ELSE agent END,
    agent_name = CASE WHEN agent_name = '' THEN %(member_name)s ELSE agent_name END,
    queue_wait = COALESCE(queue_wait, %(wait)s),
    updated_at = now()
WHERE call_id = %(call_id)s AND open
"""

CALL_ENDED: LiteralString = """
INSERT INTO calls AS c (tenant_id, call_id, direction, did, caller_num, caller_name, dialed,
    started_at, answered_at, ended_at, queue, queue_wait, queue_position, outcome, agent,
    agent_name, talk_seconds, hold_seconds, total_seconds, hangup_by, hangup_requested_by,
    hangup_cause, hangup_cause_txt, end_reason, end_after, end_before, supervisor, spy_mode,
    spied_call_id, variables, record, open)
VALUES (ccd_call_tenant(%(did)s, %(tenant_tag)s, %(queue)s, %(tenant_agent)s), %(call_id)s,
    %(direction)s, %(did)s, %(caller_num)s, %(caller_name)s, %(dialed)s, %(started_at)s,
    %(answered_at)s, %(ended_at)s, %(queue)s, %(queue_wait)s, %(queue_position)s,
    %(outcome)s, %(agent)s, %(agent_name)s, %(talk_seconds)s, %(hold_seconds)s,
    %(total_seconds)s, %(hangup_by)s, %(hangup_requested_by)s, %(hangup_cause)s,
    %(hangup_cause_txt)s, %(end_reason)s, %(end_after)s, %(end_before)s, %(supervisor)s,
    %(spy_mode)s, %(spied_call_id)s, %(variables)s, %(record)s, false)
ON CONFLICT (call_id) DO UPDATE SET
    tenant_id = EXCLUDED.tenant_id, direction = EXCLUDED.direction, did = EXCLUDED.did,
    caller_num = EXCLUDED.caller_num, caller_name = EXCLUDED.caller_name,
    dialed = EXCLUDED.dialed, started_at = EXCLUDED.started_at,
    answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,
    queue = EXCLUDED.queue, queue_wait = EXCLUDED.queue_wait,
    queue_position = EXCLUDED.queue_position, outcome = EXCLUDED.outcome,
    agent = EXCLUDED.agent, agent_name = EXCLUDED.agent_name,
    talk_seconds = EXCLUDED.talk_seconds, hold_seconds = EXCLUDED.hold_seconds,
    total_seconds = EXCLUDED.total_seconds, hangup_by = EXCLUDED.hangup_by,
    hangup_requested_by = EXCLUDED.hangup_requested_by,
    hangup_cause = EXCLUDED.hangup_cause, hangup_cause_txt = EXCLUDED.hangup_cause_txt,
    end_reason = EXCLUDED.end_reason, end_after = EXCLUDED.end_after,
    end_before = EXCLUDED.end_before, supervisor = EXCLUDED.supervisor,
    spy_mode = EXCLUDED.spy_mode, spied_call_id = EXCLUDED.spied_call_id,
    variables = EXCLUDED.variables, record = EXCLUDED.record, open = false,
    updated_at = now()
"""

CLOSE_AGENT_STATE: LiteralString = """
UPDATE agent_states SET
    ended_at = GREATEST(%(ts)s, started_at),
    seconds = round(extract(epoch FROM GREATEST(%(ts)s, started_at) - started_at)::numeric, 3)
WHERE agent = %(agent)s AND ended_at IS NULL
"""

OPEN_AGENT_STATE: LiteralString = """
INSERT INTO agent_states (tenant_id, agent, state, reason, call_id, started_at, event_id)
VALUES (COALESCE((SELECT tenant_id FROM agents WHERE interface = %(agent)s),
                 (SELECT tenant_id FROM queues WHERE name = ANY(%(queues)s::text[])
                  ORDER BY id LIMIT 1),
                 ccd_default_tenant()),
        %(agent)s, %(state)s, %(reason)s, %(call_id)s, %(ts)s, %(event_id)s)
ON CONFLICT (event_id) DO NOTHING
"""

# agent_sessions (sql/020): who is logged in according to ccd. A logout seen only because
# ccd re-read Asterisk after a reconnect (source "resync") does not close the session:
# Asterisk forgets dynamic members when it restarts, and ccd re-adds them from here.
CLOSE_SESSION: LiteralString = """
UPDATE agent_sessions SET logout_at = %(ts)s
WHERE interface = %(agent)s AND logout_at IS NULL
"""

OPEN_SESSION: LiteralString = """
INSERT INTO agent_sessions (tenant_id, agent_id, interface, login_at)
SELECT tenant_id, id, interface, %(ts)s FROM agents WHERE interface = %(agent)s
ON CONFLICT (agent_id) WHERE logout_at IS NULL DO NOTHING
"""

SESSION_PAUSE: LiteralString = """
UPDATE agent_sessions SET
    paused = %(paused)s,
    pause_reason = CASE WHEN %(paused)s THEN %(reason)s ELSE '' END,
    paused_since = CASE WHEN NOT %(paused)s THEN NULL
                        WHEN paused THEN paused_since ELSE %(ts)s END
WHERE interface = %(agent)s AND logout_at IS NULL
"""

# recording_pauses (sql/020): PCI pauses of a call's recording
RECORDING_MUTED: LiteralString = """
INSERT INTO recording_pauses (tenant_id, call_id, channel, paused_at, event_id)
SELECT tenant_id, call_id, %(channel)s, %(ts)s, %(event_id)s FROM calls
WHERE call_id = %(call_id)s
ON CONFLICT (event_id) DO NOTHING
"""

RECORDING_UNMUTED: LiteralString = """
UPDATE recording_pauses SET resumed_at = %(ts)s
WHERE call_id = %(call_id)s AND channel = %(channel)s AND resumed_at IS NULL
"""

EXISTING: LiteralString = "SELECT event_id FROM call_events WHERE event_id = ANY(%s::uuid[])"

Statement = tuple[LiteralString, dict[str, Any]]
#: a writer without a recording directory indexes no recording (each path is refused)
_NO_INDEX = RecordingIndex(None)


def _time(ts: Any) -> datetime | None:
    if ts is None or ts == "":
        return None
    return datetime.fromtimestamp(float(ts), UTC)


def _s(v: Any) -> str:
    return "" if v is None else str(v)


def customer_numbers(number: str) -> Jsonb:
    """``{country: E.164}`` of a number as each known country's plan reads it (the SQL
    picks the call tenant's default country)."""
    out: dict[str, str] = {}
    for country in PLANS:
        e164 = to_e164(number, country) if number else None
        if e164:
            out[country] = e164
    return Jsonb(out)


def _customer_number(direction: str, caller_num: str, dialed: str) -> str:
    return dialed if direction == "outbound" and dialed else caller_num


def plan(event_id: str, event: dict[str, Any],
         recordings: RecordingIndex | None = None) -> list[Statement]:
    """The SQL statements that store one event (its row in call_events and projections);
    recording paths are indexed by ``recordings`` (none without one).

    Raises ValueError/TypeError/KeyError when the event cannot be stored.
    """
    kind = _s(event.get("kind"))
    if not kind:
        raise ValueError("event without a kind")
    ts = _time(event.get("ts", 0.0))
    call_id = _s(event.get("call_id")) or None
    agent = _s(event.get("agent")) or None
    base = {"event_id": event_id, "ts": ts, "call_id": call_id, "agent": agent}
    out: list[Statement] = []

    record = event.get("record") if kind == "call_ended" else None
    if kind == "call_started" and call_id:
        tag = _s(event.get("tenant"))
        started = _time(event.get("start")) if event.get("start") else ts
        out.append((CALL_STARTED, {**base, "ts": started, "did": _s(event.get("did")),
                                   "direction": _s(event.get("direction")),
                                   "caller_num": _s(event.get("caller_num")),
                                   "caller_name": _s(event.get("caller_name")),
                                   "dialed": _s(event.get("dialed")),
                                   "supervisor": _s(event.get("supervisor")),
                                   "tenant_tag": tag or None,
                                   "variables": Jsonb({"CCD_TENANT": tag} if tag else {})}))
        if event.get("uniqueid"):
            out.append((LEG, {**base, "uniqueid": _s(event["uniqueid"]),
                              "channel": _s(event.get("channel"))}))
        number = _customer_number(_s(event.get("direction")), _s(event.get("caller_num")),
                                  _s(event.get("dialed")))
        out.append((CUSTOMER, {**base, "e164s": customer_numbers(number)}))
    elif kind == "call_ended" and call_id and isinstance(record, dict):
        out.extend(_call_ended(base, record))
    elif call_id:
        out.append((ENSURE_CALL, base))

    data = {k: v for k, v in event.items() if k != "record"}
    out.append((EVENT, {**base, "kind": kind, "data": Jsonb(data)}))

    if kind == "queued" and call_id:
        out.append((QUEUED, {**base, "queue": _s(event.get("queue")),
                             "position": event.get("position")}))
    elif kind == "answered" and call_id:
        out.append((ANSWERED, {**base, "member_name": _s(event.get("member_name")),
                               "wait": event.get("wait")}))
    elif kind == "agent_state" and agent:
        out.append((CLOSE_AGENT_STATE, base))
        out.append((OPEN_AGENT_STATE, {**base, "state": _s(event.get("state")),
                                       "reason": _s(event.get("reason")),
                                       "call_id": _s(event.get("call_id")),
                                       "queues": [_s(q) for q in event.get("queues") or []]}))
        if event.get("state") == "logged_out":
            if event.get("source") != "resync":
                out.append((CLOSE_SESSION, base))
        else:
            out.append((OPEN_SESSION, base))
            out.append((SESSION_PAUSE, {**base, "paused": bool(event.get("paused")),
                                        "reason": _s(event.get("reason"))}))
    elif kind == "recording_muted" and call_id:
        q = RECORDING_MUTED if event.get("muted") else RECORDING_UNMUTED
        out.append((q, {**base, "channel": _s(event.get("channel"))}))
    out.extend((recordings or _NO_INDEX).statements(base, event))
    return out


def _call_ended(base: dict[str, Any], r: dict[str, Any]) -> Iterable[Statement]:
    started = _time(r.get("start")) if r.get("start") else base["ts"]
    window = r.get("end_window") or [None, None]
    variables = r.get("variables") or {}
    # the tenant of a spy leg is its supervisor's (its agent is the spied agent)
    tenant_agent = _s(r.get("supervisor")) or _s(r.get("agent"))
    uniqueids = [_s(u) for u in r.get("uniqueids") or []]
    channels = [_s(c) for c in r.get("channels") or []]
    channels += [""] * (len(uniqueids) - len(channels))
    yield (CALL_ENDED, {
        **base, "direction": _s(r.get("direction")), "did": _s(r.get("did")),
        "caller_num": _s(r.get("caller_num")), "caller_name": _s(r.get("caller_name")),
        "dialed": _s(r.get("dialed")), "started_at": started,
        "answered_at": _time(r.get("answer")),
        "ended_at": _time(r.get("end")) if r.get("end") is not None or window[1] is not None
        else base["ts"],
        "end_after": _time(window[0]), "end_before": _time(window[1]),
        "tenant_tag": _s(variables.get("CCD_TENANT")) or None,
        "tenant_agent": tenant_agent or None,
        "supervisor": _s(r.get("supervisor")), "spy_mode": _s(r.get("spy_mode")),
        "spied_call_id": _s(r.get("spied_call")),
        "hangup_requested_by": _s(r.get("hangup_requested_by")),
        "queue": _s(r.get("queue")), "queue_wait": r.get("queue_wait"),
        "queue_position": r.get("queue_position"), "outcome": _s(r.get("outcome")),
        "agent": _s(r.get("agent")), "agent_name": _s(r.get("agent_name")),
        "talk_seconds": r.get("talk_seconds"), "hold_seconds": r.get("hold_seconds") or 0,
        "total_seconds": r.get("total_seconds"), "hangup_by": _s(r.get("hangup_by")),
        "hangup_cause": r.get("hangup_cause"), "hangup_cause_txt": _s(r.get("hangup_cause_txt")),
        "end_reason": _s(r.get("end_reason")),
        "variables": Jsonb({_s(k): _s(v) for k, v in variables.items()}),
        "record": Jsonb(r)})
    yield (LEGS, {**base, "uniqueids": uniqueids, "channels": channels[:len(uniqueids)]})
    number = _customer_number(_s(r.get("direction")), _s(r.get("caller_num")),
                              _s(r.get("dialed")))
    yield (CUSTOMER, {**base, "e164s": customer_numbers(number)})


# ------------------------------------------------------------------------ writer


@dataclass(slots=True)
class WriterStats:
    """Counters for metrics and ``ccd status``."""

    written: int = 0  #: events stored by this process
    duplicates: int = 0  #: events found already stored (replay after a crash or lost COMMIT)
    spooled_pending: int = 0  #: accepted, not yet in the database
    retries: int = 0  #: batch attempts that failed and were retried
    errors: int = 0  #: refused + unreadable events + batch failures other than outages
    rejected: int = 0  #: events refused by the database (in rejected.jsonl)
    batches: int = 0  #: committed batches
    database_up: bool = True  #: the last attempt reached the database
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventWriter:
    """Persists domain events through the spool; see the module docstring.

    Usage (in the daemon)::

        writer = EventWriter.from_config(config, pool)
        await writer.start()
        writer.submit(event)          # for every DomainEvent, never blocks on the DB
        ...
        await writer.close()          # SIGTERM: write what is pending (bounded wait)
    """

    def __init__(self, pool: AsyncConnectionPool, spool_dir: Path, *, batch_size: int = 200,
                 flush_interval: float = 0.5, retry_interval: float = 2.0,
                 segment_bytes: int = SEGMENT_BYTES, acquire_timeout: float = 5.0,
                 max_backoff: float = 30.0, recording_dir: Path | None = None) -> None:
        self.pool = pool
        #: recordings are indexed only inside <recording_dir>/<tenant slug>/ (sql/055)
        self.recordings = RecordingIndex(recording_dir)
        self.spool = Spool(Path(spool_dir), segment_bytes)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retry_interval = retry_interval
        self.acquire_timeout = acquire_timeout
        self.max_backoff = max(max_backoff, retry_interval)
        self._stats = WriterStats()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._batch: list[SpoolRecord] | None = None
        self._closing = False
        self._closed = False
        self._urgent = 0
        self._down_since: float | None = None
        self._last_down_log = 0.0

    @classmethod
    def from_config(cls, config: Config, pool: AsyncConnectionPool) -> EventWriter:
        """A writer with the ``[store]`` settings, spooling under ``<data_dir>/spool``."""
        s = config.store
        return cls(pool, config.spool_dir, batch_size=s.batch_size,
                   flush_interval=s.flush_interval, retry_interval=s.retry_interval,
                   recording_dir=config.recording.dir)

    # -- public API

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the counters."""
        st = WriterStats(**self._stats.as_dict())
        st.spooled_pending = self.spool.pending
        st.errors += self.spool.unreadable
        return st

    async def start(self) -> None:
        """Open (and recover) the spool and start the background task.

        Raises :class:`SpoolLocked` if another process uses the spool. Does not need
        the database to be up.
        """
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self.spool.open()
        if self.spool.pending:
            log.info("spool %s holds %d events not yet in the database (previous run); "
                     "writing them first", self.spool.dir, self.spool.pending)
        else:
            log.info("event writer started (spool %s, batch %d, every %g s)",
                     self.spool.dir, self.batch_size, self.flush_interval)
        self._task = asyncio.create_task(self._run(), name="ccd-store-writer")

    def submit(self, event: DomainEvent, event_id: str | None = None) -> str:
        """Accept one event: append it to the spool and return its ``event_id``.

        ``event_id`` defaults to a new :func:`uuid7`; a backfill passes deterministic ids
        (:func:`ccd.store.backfill.replay_event_ids`) so that storing the same events
        again writes nothing. Never waits for the database. Raises :class:`WriterClosed`
        before :meth:`start` or after :meth:`close`, and ``OSError`` if the spool cannot
        be written (the event is then not accepted).
        """
        if self._task is None or self._closing:
            raise WriterClosed("the event writer is not running")
        event_id = str(uuid.UUID(event_id)) if event_id is not None else uuid7()
        self.spool.append(event_id, _clean(event.to_dict()))
        self._notify()
        return event_id

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every event submitted so far is in the database.

        Raises ``TimeoutError`` after ``timeout`` seconds (the events stay spooled).
        """
        if self._task is None:
            raise WriterClosed("the event writer is not running")
        assert self._progress is not None
        target = self.spool.last_seq
        self._urgent += 1
        self._notify()
        try:
            async with asyncio.timeout(timeout):
                while self.spool.committed_seq < target:
                    if self._task.done():
                        raise WriterClosed("the event writer stopped")
                    self._progress.clear()
                    await self._progress.wait()
        finally:
            self._urgent -= 1

    async def close(self, timeout: float = 10.0) -> None:
        """Write what is pending (waiting at most ``timeout`` s), then close the spool.

        Whatever could not be written stays in the spool for the next start.
        """
        if self._closed:
            return
        self._closing = True
        if self._task is not None:
            self._notify()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self._closed = True
        pending = self.spool.pending
        self.spool.close()
        if pending:
            log.warning("event writer closed with %d events not yet in the database; they "
                        "stay in %s and are written at the next start", pending, self.spool.dir)
        else:
            log.info("event writer closed; all %d events written", self._stats.written)

    # -- background task

    def _notify(self) -> None:
        if self._wake is None or self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _backoff(self, attempt: int) -> float:
        return min(self.retry_interval * 2 ** min(attempt - 1, 16), self.max_backoff)

    async def _accumulate(self) -> None:
        """Let a batch fill up for at most ``flush_interval``."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.flush_interval
        while (self.spool.pending < self.batch_size and not self._closing
               and not self._urgent):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return

    async def _run(self) -> None:
        assert self._wake is not None and self._progress is not None
        attempt = 0
        while True:
            try:
                if self._batch is None:
                    if not self.spool.pending:
                        if self._closing:
                            return
                        self._wake.clear()
                        if not self.spool.pending and not self._closing:
                            await self._wake.wait()
                        continue
                    await self._accumulate()
                    upto = self.spool.last_seq
                    batch = self.spool.read(self.batch_size)
                    if not batch:
                        if self.spool.committed_seq < upto:
                            self.spool.skip_unreadable(upto)
                            self._progress.set()
                        continue
                    self._batch = batch
                await asyncio.to_thread(self.spool.sync)
                written, dups, rejected = await self._write(self._batch)
                # in the database: now the dead letters, then the checkpoint. If this
                # fails, the retry finds the batch stored and only moves the checkpoint.
                for rec, error in rejected:
                    self.spool.reject(rec, error)
                self.spool.commit(self._batch[-1])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                self._failed(exc, attempt)
                await asyncio.sleep(self._backoff(attempt))
                continue
            batch, self._batch = self._batch, None
            self._succeeded(batch, written, dups, len(rejected))
            attempt = 0
            self._progress.set()

    def _succeeded(self, batch: list[SpoolRecord], written: int, dups: int,
                   rejected: int) -> None:
        st = self._stats
        st.written += written
        st.duplicates += dups
        st.rejected += rejected
        st.errors += rejected
        st.batches += 1
        st.database_up = True
        if self._down_since is not None:
            log.info("database reachable again after %.1f s; writing the %d spooled events",
                     time.monotonic() - self._down_since, self.spool.pending + len(batch))
            self._down_since = None
        if dups:
            log.info("%d events were already in the database (replayed after a crash or "
                     "a lost COMMIT) and were skipped", dups)
        log.debug("wrote %d events (seq %d-%d), %d pending", written, batch[0].seq,
                  batch[-1].seq, self.spool.pending)

    def _failed(self, exc: Exception, attempt: int) -> None:
        st = self._stats
        st.retries += 1
        st.last_error = describe_error(exc)
        wait = self._backoff(attempt)
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            st.database_up = False
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = self._last_down_log = now
                log.warning("database unreachable (%s); events are kept in the spool %s "
                            "(%d pending), retrying in %.1f s", st.last_error, self.spool.dir,
                            self.spool.pending, wait)
            elif now - self._last_down_log >= 60:
                self._last_down_log = now
                log.warning("database still unreachable after %.0f s (%s); %d events pending "
                            "in the spool", now - self._down_since, st.last_error,
                            self.spool.pending)
        elif isinstance(exc, psycopg.Error):
            st.errors += 1
            log.error("the database refused a batch of events (%s); retrying in %.1f s "
                      "(a missing table means the schema is not migrated: ccd db upgrade)",
                      st.last_error, wait)
        else:
            st.errors += 1
            log.exception("event writer failure; retrying in %.1f s", wait)

    async def _write(self, batch: list[SpoolRecord]
                     ) -> tuple[int, int, list[tuple[SpoolRecord, str]]]:
        """Store one batch in one transaction: (written, duplicates, rejected)."""
        plans: list[tuple[SpoolRecord, list[Statement]]] = []
        rejected: list[tuple[SpoolRecord, str]] = []
        for rec in batch:
            try:
                plans.append((rec, plan(rec.event_id, rec.event, self.recordings)))
            except (ValueError, TypeError, KeyError, OverflowError, OSError) as exc:
                self._log_rejected(rec, f"cannot be stored: {exc!r}")
                rejected.append((rec, f"cannot be stored: {exc!r}"))
        async with self.pool.connection(timeout=self.acquire_timeout) as conn:
            try:
                async with conn.transaction():
                    todo = await self._new(conn, plans)
                    async with conn.pipeline():
                        for _, stmts in todo:
                            for query, params in stmts:
                                await conn.execute(query, params)
                return len(todo), len(plans) - len(todo), rejected
            except _DATA_ERRORS as exc:
                log.warning("the database refused an event of a batch (%s); writing the batch "
                            "event by event", describe_error(exc))
            written = 0
            async with conn.transaction():
                todo = await self._new(conn, plans)
                for rec, stmts in todo:
                    try:
                        async with conn.transaction():
                            for query, params in stmts:
                                await conn.execute(query, params)
                        written += 1
                    except _DATA_ERRORS as exc:
                        self._log_rejected(rec, describe_error(exc))
                        rejected.append((rec, describe_error(exc)))
            return written, len(plans) - len(todo), rejected

    @staticmethod
    async def _new(conn: psycopg.AsyncConnection[Any],
                   plans: list[tuple[SpoolRecord, list[Statement]]]
                   ) -> list[tuple[SpoolRecord, list[Statement]]]:
        """The planned events whose event_id is not yet in call_events."""
        if not plans:
            return []
        cur = await conn.execute(EXISTING, ([rec.event_id for rec, _ in plans],))
        seen = {str(r[0]) for r in await cur.fetchall()}
        return [(rec, stmts) for rec, stmts in plans if rec.event_id not in seen]

    def _log_rejected(self, rec: SpoolRecord, error: str) -> None:
        log.error("event %s (%s, seq %d) refused by the database and kept in %s: %s",
                  rec.event_id, rec.event.get("kind"), rec.seq, self.spool.rejected_path, error)
