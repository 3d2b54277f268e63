"""PostgreSQL side of the campaigns: the SQL, and the few transactions the runner needs.

Times stored by the dialer come from the runner's clock (a parameter), not ``now()``, so
the logic can run on a controlled clock. Every statement is parameterised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ccd.campaigns import rules

#: pg_try_advisory_lock(bigint) key of a campaign: one key space for ccd campaigns
#: (the single-bigint key space does not overlap the two-int4 one the migrator uses)
LOCK_BASE = 0x0CCD_0030 << 32


def lock_key(campaign_id: int) -> int:
    return LOCK_BASE + campaign_id


def ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


# ------------------------------------------------------------------ campaigns

CAMPAIGN_COLUMNS = """
c.*, t.slug AS tenant_slug, t.timezone AS tenant_timezone, t.dial_patterns,
t.default_country
"""

CAMPAIGN_BY_ID = f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns c JOIN tenants t " \
                 "ON t.id = c.tenant_id WHERE c.id = %s"

ACTIVE_CAMPAIGNS = f"SELECT {CAMPAIGN_COLUMNS} FROM campaigns c JOIN tenants t " \
                   "ON t.id = c.tenant_id WHERE c.state IN ('running', 'paused') ORDER BY c.id"

#: a campaign by id or name (optionally within a tenant)
FIND_CAMPAIGN = f"""
SELECT {CAMPAIGN_COLUMNS} FROM campaigns c JOIN tenants t ON t.id = c.tenant_id
WHERE (c.id::text = %(ident)s OR c.name = %(ident)s)
  AND (%(tenant)s::bigint IS NULL OR c.tenant_id = %(tenant)s::bigint)
ORDER BY c.id
"""

SET_STATE = """
UPDATE campaigns SET state = %(state)s, updated_at = %(now)s WHERE id = %(id)s
RETURNING state
"""

STATE_OF = "SELECT state, updated_at FROM campaigns WHERE id = %s"

# ------------------------------------------------------------------ dialling

CANDIDATES = """
SELECT ct.id, ct.e164, ct.name, ct.timezone, ct.language, ct.attempts, ct.outcomes,
       EXISTS (SELECT 1 FROM dnc d WHERE d.e164 = ct.e164
               AND (d.tenant_id IS NULL OR d.tenant_id = ct.tenant_id)
               AND (d.expires_at IS NULL OR d.expires_at > %(now)s)) AS on_dnc
FROM campaign_contacts ct
WHERE ct.campaign_id = %(campaign)s AND ct.status = 'pending'
  AND (ct.next_at IS NULL OR ct.next_at <= %(now)s)
ORDER BY ct.next_at NULLS FIRST, ct.id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""

#: the contact an agent holds in preview (a given one, or any)
PREVIEW_HELD = """
SELECT ct.id, ct.e164, ct.name, ct.timezone, ct.language, ct.attempts, ct.outcomes,
       EXISTS (SELECT 1 FROM dnc d WHERE d.e164 = ct.e164
               AND (d.tenant_id IS NULL OR d.tenant_id = ct.tenant_id)
               AND (d.expires_at IS NULL OR d.expires_at > %(now)s)) AS on_dnc
FROM campaign_contacts ct
WHERE ct.campaign_id = %(campaign)s AND ct.status = 'preview' AND ct.reserved_by = %(agent)s
  AND (%(contact)s::bigint IS NULL OR ct.id = %(contact)s::bigint)
ORDER BY ct.id LIMIT 1
FOR UPDATE
"""

MARK_STATUS = """
UPDATE campaign_contacts SET status = %(status)s, last_outcome = %(why)s, updated_at = %(now)s
WHERE id = ANY(%(ids)s)
"""

DEFER = """
UPDATE campaign_contacts c SET next_at = u.at, updated_at = %(now)s
FROM unnest(%(ids)s::bigint[], %(ats)s::timestamptz[]) AS u (id, at) WHERE c.id = u.id
"""

INSERT_ATTEMPTS = """
INSERT INTO campaign_attempts (tenant_id, campaign_id, contact_id, attempt_no, e164, mode,
                               created_at, runner, agent)
SELECT %(tenant)s, %(campaign)s, u.contact_id, u.attempt_no, u.e164, %(mode)s, %(now)s,
       %(runner)s, %(agent)s
FROM unnest(%(contacts)s::bigint[], %(nos)s::int[], %(numbers)s::text[])
     AS u (contact_id, attempt_no, e164)
RETURNING id, contact_id
"""

MARK_DIALING = """
UPDATE campaign_contacts SET status = 'dialing', reserved_by = '', reserved_until = NULL,
       updated_at = %(now)s
WHERE id = ANY(%(ids)s)
"""

#: the OriginateResponse said answered; the agent's connect (another task, another pool
#: connection) may have been stored first: the answer is kept then, the state stays
ANSWERED = """
UPDATE campaign_attempts SET state = CASE WHEN state = 'dialing' THEN 'answered' ELSE state END,
       answered_at = COALESCE(answered_at, %(at)s), reason = 4,
       call_id = CASE WHEN %(call_id)s <> '' THEN %(call_id)s ELSE call_id END,
       channel = %(channel)s, ring_seconds = %(ring)s
WHERE id = %(id)s AND state IN ('dialing', 'connected')
"""

CONNECTED = """
UPDATE campaign_attempts SET state = 'connected', connected_at = %(at)s, agent = %(agent)s,
       call_id = CASE WHEN call_id = '' THEN %(call_id)s ELSE call_id END
WHERE id = %(id)s AND state IN ('dialing', 'answered')
"""

OPEN_ATTEMPTS = """
SELECT a.id, a.contact_id, a.e164, a.state, a.created_at, a.call_id, a.channel, a.agent,
       a.answered_at, a.mode
FROM campaign_attempts a WHERE a.campaign_id = %s AND a.state <> 'done' ORDER BY a.id
"""

#: a finished call of an attempt: by its Linkedid, else by the CCD_ATTEMPT variable
ENDED_CALL = """
SELECT call_id, record, agent, hangup_cause, hangup_cause_txt, talk_seconds, variables
FROM calls
WHERE NOT open AND record IS NOT NULL
  AND ((%(call_id)s <> '' AND call_id = %(call_id)s) OR variables ->> 'CCD_ATTEMPT' = %(attempt)s)
ORDER BY ended_at DESC LIMIT 1
"""

RELEASE_PREVIEWS = """
UPDATE campaign_contacts SET status = 'pending', reserved_by = '', reserved_until = NULL,
       updated_at = %(now)s
WHERE campaign_id = %(campaign)s AND status = 'preview' AND reserved_until < %(now)s
"""

CONTACT_COUNTS = """
SELECT status, count(*) AS n,
       count(*) FILTER (WHERE status = 'pending' AND (next_at IS NULL OR next_at <= %(now)s))
           AS due
FROM campaign_contacts WHERE campaign_id = %(campaign)s GROUP BY status
"""

# ------------------------------------------------------------------ statistics
# live calls: answered, abandoned and dropped (rules.LIVE); abandons: abandoned and dropped
# (rules.ABANDONS) - a call the PBX dropped after the answer is an abandoned call too

SEED = """
SELECT count(*) FILTER (WHERE outcome IN ('answered', 'abandoned', 'dropped')) AS live,
       count(*) FILTER (WHERE outcome IN ('abandoned', 'dropped')) AS abandoned,
       count(*) FILTER (WHERE outcome NOT IN ('', 'not_dialled')) AS attempts,
       min(created_at) AS first,
       (SELECT avg(ring_seconds) FROM (SELECT ring_seconds FROM campaign_attempts
            WHERE campaign_id = %(campaign)s AND outcome IN ('answered', 'abandoned', 'dropped')
              AND ring_seconds IS NOT NULL ORDER BY id DESC LIMIT 500) r) AS ring_mean,
       (SELECT avg(talk_seconds) FROM (SELECT talk_seconds FROM campaign_attempts
            WHERE campaign_id = %(campaign)s AND outcome = 'answered'
              AND talk_seconds IS NOT NULL ORDER BY id DESC LIMIT 500) t) AS talk_mean
FROM campaign_attempts WHERE campaign_id = %(campaign)s
"""

LIVE_SINCE = """
SELECT count(*) FILTER (WHERE outcome IN ('answered', 'abandoned', 'dropped')) AS live,
       count(*) FILTER (WHERE outcome IN ('abandoned', 'dropped')) AS abandoned
FROM campaign_attempts WHERE campaign_id = %(campaign)s AND ended_at >= %(since)s
"""

LIVE_BUCKETS = """
SELECT extract(epoch FROM date_trunc('minute', ended_at))::float8 AS minute,
       count(*) AS live, count(*) FILTER (WHERE outcome IN ('abandoned', 'dropped'))
           AS abandoned
FROM campaign_attempts
WHERE campaign_id = %(campaign)s AND ended_at >= %(since)s
  AND outcome IN ('answered', 'abandoned', 'dropped')
GROUP BY 1
"""


async def rows(conn: psycopg.AsyncConnection[Any], sql: str,
               params: Mapping[str, Any] | Sequence[Any]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(sql, params)  # type: ignore[arg-type]
    return await cur.fetchall() if cur.description else []


def sync_rows(conn: psycopg.Connection[Any], sql: str,
              params: Mapping[str, Any] | Sequence[Any]) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    cur.execute(sql, params)  # type: ignore[arg-type]
    return cur.fetchall() if cur.description else []


# ------------------------------------------------------------------ finishing an attempt

CONTACT_FOR_UPDATE = """
SELECT ct.id, ct.status, ct.attempts, ct.outcomes, ct.next_at, ct.e164, ct.tenant_id
FROM campaign_contacts ct WHERE ct.id = %s FOR UPDATE
"""

FINISH_ATTEMPT = """
UPDATE campaign_attempts SET state = 'done', outcome = %(outcome)s,
       reason = COALESCE(%(reason)s, reason),
       call_id = CASE WHEN %(call_id)s <> '' THEN %(call_id)s ELSE call_id END,
       agent = CASE WHEN %(agent)s <> '' THEN %(agent)s ELSE agent END,
       ring_seconds = COALESCE(%(ring)s, ring_seconds), talk_seconds = %(talk)s,
       hangup_cause = %(cause)s, hangup_cause_txt = %(cause_txt)s, ended_at = %(now)s,
       detail = %(detail)s
WHERE id = %(id)s AND state <> 'done'
RETURNING disposition, callback_at
"""

UPDATE_CONTACT = """
UPDATE campaign_contacts SET status = %(status)s, next_at = %(next_at)s,
       attempts = attempts + %(counted)s, outcomes = %(outcomes)s, last_outcome = %(outcome)s,
       reserved_by = '', reserved_until = NULL, updated_at = %(now)s
WHERE id = %(id)s
"""


async def finish_attempt(conn: psycopg.AsyncConnection[Any], campaign: Any, attempt_id: int,
                         contact_id: int, outcome: str, now: float, *,
                         reason: int | None = None, call_id: str = "", agent: str = "",
                         ring: float | None = None, talk: float | None = None,
                         cause: int | None = None, cause_txt: str = "",
                         detail: str = "") -> rules.Plan | None:
    """Record an attempt's outcome and plan the contact's next step, in one transaction.

    Returns the plan, or None when the attempt had already been finished. A contact that
    meanwhile became final (do-not-call, cancelled) stays so; a ``callback`` disposition
    wins over the retry plan.
    """
    async with conn.transaction():
        contact = (await rows(conn, CONTACT_FOR_UPDATE, (contact_id,)) or [None])[0]
        done = await rows(conn, FINISH_ATTEMPT, {
            "id": attempt_id, "outcome": outcome, "reason": reason, "call_id": call_id,
            "agent": agent, "ring": ring, "talk": talk, "cause": cause, "cause_txt": cause_txt,
            "now": ts(now), "detail": detail[:500]})
        if not done or contact is None:
            return None
        counts = {k: int(v) for k, v in (contact["outcomes"] or {}).items()}
        plan = rules.plan_retry(outcome, counts, int(contact["attempts"]),
                                campaign.max_attempts, now, campaign.retry)
        if plan.counted:
            counts[outcome] = counts.get(outcome, 0) + 1
        status, next_at = plan.status, plan.next_at
        disposition, callback_at = done[0]["disposition"], done[0]["callback_at"]
        if contact["status"] in rules.FINAL_STATUSES:
            status, next_at = contact["status"], None
        elif disposition == "callback" and callback_at is not None:
            status, next_at = rules.PENDING, callback_at.timestamp()
        await conn.execute(UPDATE_CONTACT, {
            "id": contact_id, "status": status, "next_at": ts(next_at),
            "counted": 1 if plan.counted else 0, "outcomes": Jsonb(counts),
            "outcome": outcome, "now": ts(now)})
        return rules.Plan(status, next_at, plan.counted, plan.why)


LATE_ATTEMPT = """
SELECT a.id, a.contact_id, a.outcome FROM campaign_attempts a
WHERE a.id = %(id)s AND a.campaign_id = %(campaign)s AND a.outcome = 'unknown'
"""


async def correct_unknown(conn: psycopg.AsyncConnection[Any], campaign_id: int,
                          attempt_id: int, outcome: str, now: float, *, call_id: str,
                          agent: str, talk: float | None) -> bool:
    """A call ended for an attempt already recorded as ``unknown`` (e.g. across a restart):
    store the real outcome; an answered contact is done (its retry is cancelled)."""
    async with conn.transaction():
        found = await rows(conn, LATE_ATTEMPT, {"id": attempt_id, "campaign": campaign_id})
        if not found:
            return False
        await conn.execute(
            "UPDATE campaign_attempts SET outcome = %s, call_id = %s, agent = %s, "
            "talk_seconds = %s, detail = detail || ' (corrected when its call ended)' "
            "WHERE id = %s", (outcome, call_id, agent, talk, attempt_id))
        contact_id = found[0]["contact_id"]
        contact = (await rows(conn, CONTACT_FOR_UPDATE, (contact_id,)))[0]
        counts = {k: int(v) for k, v in (contact["outcomes"] or {}).items()}
        counts["unknown"] = max(0, counts.get("unknown", 0) - 1)
        counts[outcome] = counts.get(outcome, 0) + 1
        status = contact["status"]
        if outcome == rules.ANSWERED and status in (rules.PENDING, rules.EXHAUSTED):
            status = rules.DONE
        await conn.execute(
            "UPDATE campaign_contacts SET outcomes = %s, status = %s, last_outcome = %s, "
            "next_at = CASE WHEN %s = 'done' THEN NULL ELSE next_at END, updated_at = %s "
            "WHERE id = %s", (Jsonb(counts), status, outcome, status, ts(now), contact_id))
        return True


# ------------------------------------------------------------------ abandonment figures

async def seed_figures(conn: psycopg.AsyncConnection[Any], campaign_id: int, now: float,
                       window: float, period: float) -> dict[str, Any]:
    """What :meth:`PacerStats.seed` needs, from the attempts table."""
    base = (await rows(conn, SEED, {"campaign": campaign_id}))[0]
    start = _period_start(base, now, period)
    per = (await rows(conn, LIVE_SINCE, {"campaign": campaign_id, "since": ts(start)}))[0]
    buckets = await rows(conn, LIVE_BUCKETS, {"campaign": campaign_id,
                                              "since": ts(now - window)})
    return _assemble(base, start, per, buckets)


def seed_figures_sync(conn: psycopg.Connection[Any], campaign_id: int, now: float,
                      window: float, period: float) -> dict[str, Any]:
    """:func:`seed_figures` for the CLI (blocking connection)."""
    base = sync_rows(conn, SEED, {"campaign": campaign_id})[0]
    start = _period_start(base, now, period)
    per = sync_rows(conn, LIVE_SINCE, {"campaign": campaign_id, "since": ts(start)})[0]
    buckets = sync_rows(conn, LIVE_BUCKETS, {"campaign": campaign_id, "since": ts(now - window)})
    return _assemble(base, start, per, buckets)


def _period_start(base: Mapping[str, Any], now: float, period: float) -> float:
    """Start of the current successive period (FTC: 30 days from the first attempt)."""
    first = epoch(base["first"]) or now
    return first + max(0.0, (now - first) // period) * period


def _assemble(base: Mapping[str, Any], period_start: float, per: Mapping[str, Any],
              buckets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "live": int(base["live"] or 0), "abandoned": int(base["abandoned"] or 0),
        "period_start": period_start, "period_live": int(per["live"] or 0),
        "period_abandoned": int(per["abandoned"] or 0),
        "window": [(float(b["minute"]), int(b["live"]), int(b["abandoned"])) for b in buckets],
        "attempts": int(base["attempts"] or 0), "lives": int(base["live"] or 0),
        "ring_mean": float(base["ring_mean"]) if base["ring_mean"] is not None else None,
        "talk_mean": float(base["talk_mean"]) if base["talk_mean"] is not None else None,
    }
