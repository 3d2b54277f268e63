"""What ccd had stored about the calls still open when it starts (after a crash, ``kill -9``
or a stop): read from ``calls`` and ``call_events`` and handed to the live model, which
keeps it for the calls Asterisk still has and closes the others (``LiveModel.reconcile``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from psycopg_pool import AsyncConnectionPool

from ccd.model.domain import CallRecord, Segment
from ccd.model.live import KnownCall, interface_of

log = logging.getLogger(__name__)

OPEN_CALLS = """
SELECT call_id, direction, did, caller_num, caller_name, dialed,
       extract(epoch FROM started_at)::float8, queue, queue_position, agent, agent_name,
       supervisor, variables
FROM calls WHERE open ORDER BY started_at LIMIT %s
"""

EVENTS = """
SELECT call_id, kind, extract(epoch FROM ts)::float8, data FROM call_events
WHERE call_id = ANY(%s) ORDER BY seq
"""

LAST_SEEN = "SELECT extract(epoch FROM max(ts))::float8 FROM call_events"


def known_call(row: tuple[Any, ...], events: Iterable[tuple[str, float, dict[str, Any]]],
               last_seen: float) -> KnownCall:
    """One open call from its ``calls`` row and its stored domain events, in order."""
    (call_id, direction, did, caller_num, caller_name, dialed, started, queue, position,
     agent, agent_name, supervisor, variables) = row
    rec = CallRecord(call_id=call_id, direction=direction, did=did, caller_num=caller_num,
                     caller_name=caller_name, dialed=dialed, start=started, queue=queue,
                     queue_position=position, agent=agent, agent_name=agent_name,
                     supervisor=supervisor, variables=dict(variables or {}))
    k = KnownCall(rec, last_seen)
    seen = last_seen
    for kind, ts, e in events:
        seen = max(seen, ts)
        if kind == "call_started":
            rec.customer_channel = rec.customer_channel or str(e.get("channel") or "")
            if e.get("start"):
                rec.start = min(rec.start or float(e["start"]), float(e["start"]))
            if e.get("uniqueid"):
                rec.uniqueids.append(str(e["uniqueid"]))
                rec.channels.append(str(e.get("channel") or ""))
        elif kind == "queued":
            k.queued_at = ts
            rec.queue = rec.queue or str(e.get("queue") or "")
        elif kind in ("abandoned", "queue_exited"):
            k.queued_at = None
            if kind == "abandoned":
                rec.outcome = rec.outcome or "abandoned"
        elif kind == "answered":
            k.queued_at = None
            rec.outcome, rec.answer = "answered", rec.answer or ts
            rec.agent = rec.agent or str(e.get("agent") or "")
            rec.agent_name = rec.agent_name or str(e.get("member_name") or "")
            rec.agent_channel = rec.agent_channel or str(e.get("agent_channel") or "")
            if rec.queue_wait is None and e.get("wait") is not None:
                rec.queue_wait = float(e["wait"])
            if e.get("agent_channel"):
                k.talking_since.setdefault(str(e["agent_channel"]), ts)
        elif kind == "agent_connected" and e.get("agent_channel"):
            rec.answer = rec.answer or ts
            k.talking_since.setdefault(str(e["agent_channel"]), ts)
        elif kind == "transferred":
            rec.transfers.append({"ts": ts, "transfer": e.get("transfer", ""),
                                  "from": e.get("from_agent", ""), "to": e.get("target", "")})
            for name, since in list(k.talking_since.items()):
                if interface_of(name) == e.get("from_agent"):  # that talk ended there
                    del k.talking_since[name]
                    rec.segments.append(Segment(interface_of(name), name, since, ts))
        elif kind == "ivr_left":
            rec.ivr.append({"script": e.get("script", ""), "start": ts - float(
                e.get("seconds") or 0), "end": ts, "status": e.get("status", ""),
                "seconds": e.get("seconds")})
        elif kind == "recording_started" and e.get("file"):
            path = str(e["file"])
            if path not in rec.recordings:
                rec.recordings.append(path)
            if not e.get("adopted"):
                k.recordings[path] = ts
        elif kind == "recording_stopped" and e.get("file"):
            k.recordings.pop(str(e["file"]), None)
        elif kind == "unheld":
            rec.hold_seconds += float(e.get("seconds") or 0)
    k.last_seen = seen
    return k


async def open_calls(pool: AsyncConnectionPool, limit: int = 10000,
                     timeout: float = 5.0) -> dict[str, KnownCall]:
    """Every call stored as open, with what ccd knew of it."""
    async with pool.connection(timeout=timeout) as conn:
        rows = await (await conn.execute(OPEN_CALLS, (limit,))).fetchall()
        if not rows:
            return {}
        last = (await (await conn.execute(LAST_SEEN)).fetchone() or (None,))[0] or 0.0
        events: dict[str, list[tuple[str, float, dict[str, Any]]]] = {}
        cur = await conn.execute(EVENTS, ([r[0] for r in rows],))
        for call_id, kind, ts, data in await cur.fetchall():
            events.setdefault(call_id, []).append((kind, ts, data))
    out = {r[0]: known_call(r, events.get(r[0], []), float(last)) for r in rows}
    log.info("%d calls were still open in the database when ccd started", len(out))
    return out
