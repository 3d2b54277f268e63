"""Statistics from the stored domain events: reports and the per-interval tables.

The same pure :class:`ccd.model.stats.StatsCollector` that serves the live wallboard
is fed the events stored in ``call_events``, so a report is always recomputable.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ccd.model.domain import DomainEvent, from_dict
from ccd.model.stats import StatsCollector
from ccd.store.db import connect

log = logging.getLogger(__name__)

CALL_KINDS = ("queued", "answered", "abandoned", "queue_exited", "call_ended")
#: how long after its interval a queue entry may still be answered and counted
LATE = timedelta(hours=4)


def _ts(value: datetime) -> float:
    return value.timestamp()


def load_events(conn: psycopg.Connection[Any], start: datetime, end: datetime,
                tenant_id: int | None = None) -> list[DomainEvent]:
    """Domain events needed to compute statistics for ``[start, end)``, in time order."""
    out: list[DomainEvent] = []
    # a stored call_ended leaves its record (segments, holds ...) to calls.record
    q = ("SELECT CASE WHEN e.kind = 'call_ended' AND c.record IS NOT NULL "
         "THEN e.data || jsonb_build_object('record', c.record) ELSE e.data END "
         "FROM call_events e LEFT JOIN calls c ON c.call_id = e.call_id "
         "WHERE e.kind = ANY(%s) AND e.ts >= %s AND e.ts < %s "
         "AND (%s::bigint IS NULL OR e.tenant_id = %s::bigint) ORDER BY e.ts, e.seq")
    for (data,) in conn.execute(q, (list(CALL_KINDS), start, end + LATE, tenant_id, tenant_id)):
        try:
            out.append(from_dict(data))
        except (TypeError, ValueError) as exc:
            log.warning("skipping unreadable stored event: %s", exc)
    # agent states: the one in force at `start`, then every change in the range
    seeds = conn.execute(
        "SELECT DISTINCT ON (agent) data FROM call_events WHERE kind = 'agent_state' "
        "AND ts < %s AND (%s::bigint IS NULL OR tenant_id = %s::bigint) "
        "ORDER BY agent, ts DESC, seq DESC", (start, tenant_id, tenant_id)).fetchall()
    for (data,) in seeds:
        data = {**data, "ts": _ts(start)}
        out.append(from_dict(data))
    for (data,) in conn.execute(
            "SELECT data FROM call_events WHERE kind = 'agent_state' AND ts >= %s AND ts < %s "
            "AND (%s::bigint IS NULL OR tenant_id = %s::bigint) ORDER BY ts, seq",
            (start, end, tenant_id, tenant_id)):
        out.append(from_dict(data))
    out.sort(key=lambda e: e.ts)
    return out


def thresholds(conn: psycopg.Connection[Any]) -> dict[str, float]:
    return {name: float(t) for name, t in conn.execute(
        "SELECT name, sl_threshold_seconds FROM queues")}


def compute(conn: psycopg.Connection[Any], start: datetime, end: datetime,
            tenant_id: int | None = None) -> StatsCollector:
    """Queue and agent statistics for ``[start, end)`` (intervals that start inside it)."""
    lo, hi = _ts(start), _ts(end)
    st = StatsCollector(thresholds(conn), window=(lo, hi))
    st.feed_all(load_events(conn, start, end, tenant_id))
    st.close(min(hi, datetime.now(UTC).timestamp()))
    st.queues = {k: v for k, v in st.queues.items() if lo <= v.start < hi}
    st.agents = {k: v for k, v in st.agents.items() if lo <= v.start < hi}
    return st


def refresh(url: str, start: datetime, end: datetime) -> int:
    """Recompute and store ``queue_stats``/``agent_stats`` rows for ``[start, end)``."""
    with connect(url, application_name="ccd-stats") as conn:
        st = compute(conn, start, end)
        tenant_of = dict(conn.execute("SELECT name, tenant_id FROM queues").fetchall())
        agent_tenant = dict(conn.execute("SELECT interface, tenant_id FROM agents").fetchall())
        default = conn.execute("SELECT ccd_default_tenant()").fetchone()[0]  # type: ignore[index]
        with conn.transaction():
            for r in st.queues.values():
                d = r.to_dict()
                conn.execute(
                    "INSERT INTO queue_stats (tenant_id, queue, interval_start, offered, answered,"
                    " abandoned, exited, answered_in_sl, abandoned_short, service_level, asa, "
                    "avg_wait, longest_wait, avg_abandon_wait, talk_seconds, hold_seconds, "
                    "wrapup_seconds, aht, talk_unknown, computed_at) VALUES (%s, %s, "
                    "to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                    "%s, %s, now()) "
                    "ON CONFLICT (queue, interval_start) DO UPDATE SET offered = EXCLUDED.offered,"
                    " answered = EXCLUDED.answered, abandoned = EXCLUDED.abandoned, "
                    "exited = EXCLUDED.exited, answered_in_sl = EXCLUDED.answered_in_sl, "
                    "abandoned_short = EXCLUDED.abandoned_short, "
                    "service_level = EXCLUDED.service_level, asa = EXCLUDED.asa, "
                    "avg_wait = EXCLUDED.avg_wait, longest_wait = EXCLUDED.longest_wait, "
                    "avg_abandon_wait = EXCLUDED.avg_abandon_wait, "
                    "talk_seconds = EXCLUDED.talk_seconds, hold_seconds = EXCLUDED.hold_seconds,"
                    " wrapup_seconds = EXCLUDED.wrapup_seconds, aht = EXCLUDED.aht, "
                    "talk_unknown = EXCLUDED.talk_unknown, computed_at = now()",
                    (tenant_of.get(r.queue, default), r.queue, r.start, d["offered"],
                     d["answered"], d["abandoned"], d["exited"], d["answered_in_sl"],
                     d["abandoned_short"], d["service_level"], d["asa"], d["avg_wait"],
                     d["longest_wait"], d["avg_abandon_wait"], d["talk"], d["hold"],
                     d["wrapup"], d["aht"], d["talk_unknown"]))
            for a in st.agents.values():
                d = a.to_dict()
                conn.execute(
                    "INSERT INTO agent_stats (tenant_id, agent, interval_start, seconds, staffed,"
                    " busy, occupancy, answered, computed_at) VALUES (%s, %s, to_timestamp(%s),"
                    " %s, %s, %s, %s, %s, now()) ON CONFLICT (agent, interval_start) DO UPDATE "
                    "SET seconds = EXCLUDED.seconds, staffed = EXCLUDED.staffed, "
                    "busy = EXCLUDED.busy, occupancy = EXCLUDED.occupancy, "
                    "answered = EXCLUDED.answered, computed_at = now()",
                    (agent_tenant.get(a.agent, default), a.agent, a.start, Jsonb(d["seconds"]),
                     d["staffed"], d["busy"], d["occupancy"], d["answered"]))
        return len(st.queues) + len(st.agents)
