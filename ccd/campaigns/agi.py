"""FastAGI routes of the campaigns, on the typed AGI session API.

``notify`` - a notification call (no agent). The Originate set ``CCD_ATTEMPT``; the route
plays the campaign's recording in the contact's language and, when the campaign asks for a
confirmation, collects one digit: 1 = confirmed, 2 = talk to an agent (only when the
campaign has a queue; the dialplan then queues the call: ``CCD_NOTIFY_RESULT=agent``).
The result is stored in ``notification_results``.

``survey`` - the post-call CSAT survey. The dialplan runs it for a caller whose agent hung
up (``AGI(agi://ccd/survey,<queue>,<agent interface>)``); it asks for a rating 1-5 and,
when the tenant allows, a recorded comment (``#`` ends it), then stores it in
``survey_results`` linked to the call (its Linkedid) and the agent. A queue without
``surveys`` answers ``CCD_SURVEY=off`` at once.

A caller who hangs up mid-way still gets a row (``hangup``, with the rating if given).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from ccd.agi.protocol import AgiHangup
from ccd.agi.server import Handler
from ccd.agi.session import AgiMediaError, AgiSession
from ccd.campaigns import store as db
from ccd.recfiles import DIR_MODE, Refused, ensure_dirs

log = logging.getLogger("ccd.campaigns")

#: prompts used when a campaign or tenant does not name its own: ccd's own (``ccd prompts
#: install``), in the channel's language (Asterisk picks sounds/<language>/ccd/...)
DEFAULT_PROMPTS = {
    "message": "ccd/notification",
    "repeat": "ccd/press-1-or-2",
    "thanks": "ccd/thank-you",
    "rate": "ccd/survey-rate",
    "invalid": "ccd/survey-invalid",
    "comment": "ccd/survey-comment",
    "survey_thanks": "ccd/survey-thanks",
}
DIGIT_TIMEOUT_MS = 5000

NOTIFY_ROW = """
SELECT a.id, a.tenant_id, a.campaign_id, a.contact_id, ct.language, c.prompts, c.confirm,
       c.queue, c.language AS campaign_language
FROM campaign_attempts a
JOIN campaign_contacts ct ON ct.id = a.contact_id
JOIN campaigns c ON c.id = a.campaign_id
WHERE a.id = %s
"""

STORE_NOTIFY = """
INSERT INTO notification_results (tenant_id, campaign_id, contact_id, attempt_id, call_id,
                                  language, result, digits, created_at)
VALUES (%(tenant)s, %(campaign)s, %(contact)s, %(attempt)s, %(call_id)s, %(language)s,
        %(result)s, %(digits)s, %(at)s)
ON CONFLICT (attempt_id) DO UPDATE SET result = EXCLUDED.result, digits = EXCLUDED.digits
"""

SURVEY_QUEUE = """
SELECT q.tenant_id, q.surveys, t.slug, s.prompts, s.comment, s.max_comment_seconds
FROM queues q JOIN tenants t ON t.id = q.tenant_id
LEFT JOIN survey_settings s ON s.tenant_id = q.tenant_id
WHERE q.name = %s
"""

STORE_SURVEY = """
INSERT INTO survey_results (tenant_id, call_id, uniqueid, queue, agent, agent_id, rating,
                            comment_file, comment_seconds, status, language, created_at)
VALUES (%(tenant)s, %(call_id)s, %(uniqueid)s, %(queue)s, %(agent)s,
        (SELECT id FROM agents WHERE interface = %(agent)s AND tenant_id = %(tenant)s),
        %(rating)s, %(file)s, %(seconds)s, %(status)s, %(language)s, %(at)s)
ON CONFLICT (call_id, uniqueid) DO NOTHING
"""


def pick(prompts: Mapping[str, Any], kind: str, language: str, fallback: str) -> str:
    """The sound for ``kind`` in ``language`` (``pt-BR`` falls back to ``pt``, then to the
    campaign's language, then to any recording, then to ccd's default)."""
    by_lang = prompts.get(kind)
    if isinstance(by_lang, Mapping) and by_lang:
        for lang in (language, language.split("-")[0].split("_")[0], fallback):
            if lang and isinstance(by_lang.get(lang), str):
                return str(by_lang[lang])
        return str(next(iter(by_lang.values())))
    if isinstance(by_lang, str) and by_lang:
        return by_lang
    return DEFAULT_PROMPTS[kind]


async def linkedid(session: AgiSession) -> str:
    """The call's id in ccd (Asterisk's Linkedid); the channel's Uniqueid if unknown."""
    value = await session.get_full_variable("${CHANNEL(linkedid)}")
    return value or session.uniqueid


class CampaignAgi:
    """The handlers, sharing a database pool."""

    def __init__(self, pool: AsyncConnectionPool, *, recording_dir: str | Path,
                 clock: Callable[[], float] = time.time, dir_mode: int = DIR_MODE) -> None:
        self.pool = pool
        self.recording_dir = Path(recording_dir)
        self.clock = clock
        self.dir_mode = dir_mode

    async def _one(self, sql: str, params: Any) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            found = await db.rows(conn, sql, params)
        return found[0] if found else None

    async def _store(self, sql: str, params: dict[str, Any]) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute(sql, params)
        except (psycopg.Error, OSError) as exc:
            log.error("campaign AGI result not stored (%s): %s", exc, params)

    # ------------------------------------------------------------------ notify

    async def notify(self, session: AgiSession) -> None:
        """Play a notification; optionally collect 1 (confirm) or 2 (agent)."""
        raw = await session.get_variable("CCD_ATTEMPT") or ""
        row = await self._one(NOTIFY_ROW, (int(raw),)) if raw.isdigit() else None
        if row is None:
            raise LookupError(f"notification call without a known CCD_ATTEMPT ({raw!r})")
        prompts = row["prompts"] or {}
        lang = row["language"] or row["campaign_language"] or "en"
        fallback = row["campaign_language"] or "en"
        call_id = await linkedid(session)
        result, digits = "", ""
        try:
            message = pick(prompts, "message", lang, fallback)
            if row["confirm"]:
                valid = "12" if row["queue"] else "1"
                for prompt in (message, pick(prompts, "repeat", lang, fallback)):
                    got = await session.get_data(prompt, DIGIT_TIMEOUT_MS, 1)
                    digits += got.digits
                    if got.digits and got.digits in valid:
                        result = "confirmed" if got.digits == "1" else "agent"
                        break
                result = result or "no_input"
                if result == "confirmed":
                    await session.stream_file(pick(prompts, "thanks", lang, fallback))
            else:
                await session.stream_file(message)
                result = "played"
            await session.set_variable("CCD_NOTIFY_RESULT", result)
        except AgiHangup:
            result = result if result in ("confirmed", "agent") else "hangup"
            raise
        finally:
            if result:
                await self._store(STORE_NOTIFY, {
                    "tenant": row["tenant_id"], "campaign": row["campaign_id"],
                    "contact": row["contact_id"], "attempt": row["id"], "call_id": call_id,
                    "language": lang, "result": result, "digits": digits[:8],
                    "at": datetime.fromtimestamp(self.clock(), UTC)})

    # ------------------------------------------------------------------ survey

    async def survey(self, session: AgiSession) -> None:
        """Rate 1-5, then an optional recorded comment; stored with the call and agent."""
        args = session.args
        queue = args[0] if args and args[0] else await session.get_variable("QUEUENAME") or ""
        agent = args[1] if len(args) > 1 and args[1] else \
            await session.get_variable("MEMBERINTERFACE") or ""
        q = await self._one(SURVEY_QUEUE, (queue,)) if queue else None
        if q is None or not q["surveys"]:
            await session.set_variable("CCD_SURVEY", "off")
            return
        prompts = q["prompts"] or {}
        lang = await session.get_variable("CCD_LANG") or session.language or "en"
        call_id = await linkedid(session)
        rating: int | None = None
        status, comment, seconds = "no_rating", "", None
        try:
            for kind in ("rate", "invalid"):
                got = await session.get_data(pick(prompts, kind, lang, "en"), DIGIT_TIMEOUT_MS, 1)
                if got.digits and got.digits in "12345":
                    rating = int(got.digits)
                    break
            if rating is not None:
                status = "completed"
                await session.set_variable("CCD_SURVEY_RATING", rating)
                if q["comment"] is None or q["comment"]:
                    comment, seconds = await self._comment(session, q, call_id, prompts, lang)
                if not session.hung_up:
                    await session.stream_file(pick(prompts, "survey_thanks", lang, "en"))
            await session.set_variable("CCD_SURVEY", status)
        except AgiHangup:
            status = "completed" if rating is not None else "hangup"
            raise
        except AgiMediaError as exc:
            # a prompt that does not play (not installed): end the survey, never the call's
            # record; `ccd prompts check` names what is missing
            log.error("[%s] survey for queue %s stopped: %s", session.uniqueid, queue, exc)
            status = "completed" if rating is not None else "no_rating"
        finally:
            await self._store(STORE_SURVEY, {
                "tenant": q["tenant_id"], "call_id": call_id, "uniqueid": session.uniqueid,
                "queue": queue, "agent": agent, "rating": rating, "file": comment,
                "seconds": seconds, "status": status, "language": lang,
                "at": datetime.fromtimestamp(self.clock(), UTC)})

    async def _comment(self, session: AgiSession, q: Mapping[str, Any], call_id: str,
                       prompts: Mapping[str, Any], lang: str) -> tuple[str, float | None]:
        """Record the caller's comment; ('', None) when nothing was said."""
        day = datetime.fromtimestamp(self.clock(), UTC)
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in call_id)
        folder = self.recording_dir / q["slug"] / "surveys" / day.strftime("%Y/%m/%d")
        try:
            # recording.dir_mode whatever the umask; in a thread: NFS may stall
            await asyncio.to_thread(ensure_dirs, self.recording_dir, folder, self.dir_mode)
        except (OSError, Refused) as exc:
            log.warning("survey comments folder %s: %s (Asterisk must create it)", folder, exc)
        base = folder / f"{safe}-{session.uniqueid or 'x'}"
        await session.stream_file(pick(prompts, "comment", lang, "en"))
        limit = int(q["max_comment_seconds"] or 60) * 1000
        rec = await session.record_file(str(base), "wav", "#", limit, beep=True, silence=5)
        secs = round(rec.endpos / 8000.0, 3)
        return (f"{base}.wav", secs) if secs >= 1.0 else ("", None)


def campaign_routes(pool: AsyncConnectionPool, *, recording_dir: str | Path,
                    clock: Callable[[], float] = time.time,
                    dir_mode: int = DIR_MODE) -> dict[str, Handler]:
    """``{"notify": ..., "survey": ...}`` to add to the FastAGI server's routes."""
    h = CampaignAgi(pool, recording_dir=recording_dir, clock=clock, dir_mode=dir_mode)
    return {"notify": h.notify, "survey": h.survey}
