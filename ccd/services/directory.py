"""Reads of ccd's set-up data (agents, skills, queues, tenants) used by the services.

All queries are parameterised; every lookup can be scoped to a tenant.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ccd.ami.client import AmiClient, AmiError, AmiNotConnected
from ccd.api import ApiError
from ccd.ivr.phone import to_e164

log = logging.getLogger(__name__)

EXIT_ERROR, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNAVAILABLE = 1, 4, 2, 3


@dataclass(slots=True)
class AgentRow:
    id: int
    tenant_id: int
    name: str
    interface: str
    extension: str
    role: str
    skills: list[tuple[str, int]] = field(default_factory=list)  # (queue, penalty)


@dataclass(slots=True)
class QueueRow:
    id: int
    tenant_id: int
    name: str
    tenant_slug: str
    wrapup_seconds: int
    sl_threshold_seconds: int
    recording_policy: str
    surveys: bool


class Directory:
    """Cached, tenant-aware lookups of set-up data."""

    def __init__(self, pool: AsyncConnectionPool, ttl: float = 30.0) -> None:
        self.pool = pool
        self.ttl = ttl
        self._queues: dict[str, QueueRow] = {}
        self._queues_at = 0.0
        self._patterns: dict[int, tuple[float, str, list[re.Pattern[str]]]] = {}

    async def _rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)  # type: ignore[arg-type]
            return await cur.fetchall()

    async def agent(self, ident: str, tenant_id: int | None = None) -> AgentRow:
        """An agent by id, interface (``PJSIP/1001``), extension or name."""
        ident = ident.strip()
        rows = await self._rows(
            "SELECT id, tenant_id, name, interface, extension, role FROM agents "
            "WHERE (id::text = %s OR interface = %s OR extension = %s OR lower(name) = lower(%s))"
            " AND (%s::bigint IS NULL OR tenant_id = %s::bigint) ORDER BY id",
            ident, ident, ident, ident, tenant_id, tenant_id)
        if not rows:
            raise ApiError(f"no agent {ident!r} (use its id, interface such as PJSIP/1001, "
                           "extension or name; `ccd agents` lists them)", EXIT_NOT_FOUND)
        if len(rows) > 1:
            raise ApiError(f"{ident!r} matches {len(rows)} agents; use the id or interface",
                           EXIT_USAGE)
        a = AgentRow(**rows[0])
        skills = await self._rows(
            "SELECT q.name, s.penalty FROM agent_skills s JOIN queues q ON q.id = s.queue_id "
            "WHERE s.agent_id = %s ORDER BY q.name", a.id)
        a.skills = [(r["name"], r["penalty"]) for r in skills]
        return a

    async def agents(self, tenant_id: int | None = None) -> list[dict[str, Any]]:
        return await self._rows(
            "SELECT a.id, a.tenant_id, t.slug AS tenant, a.name, a.interface, a.extension, "
            "a.role, COALESCE(string_agg(q.name || ':' || s.penalty, ',' ORDER BY q.name), '') "
            "AS skills FROM agents a JOIN tenants t ON t.id = a.tenant_id "
            "LEFT JOIN agent_skills s ON s.agent_id = a.id LEFT JOIN queues q ON q.id = s.queue_id"
            " WHERE (%s::bigint IS NULL OR a.tenant_id = %s::bigint) "
            "GROUP BY a.id, t.slug ORDER BY a.id", tenant_id, tenant_id)

    async def dids(self) -> list[str]:
        """Every DID (the numbers trunk calls arrive on)."""
        return [r["number"] for r in await self._rows("SELECT number FROM dids")]

    async def queues(self, refresh: bool = False) -> dict[str, QueueRow]:
        """Every queue by name (cached ``ttl`` seconds)."""
        if refresh or time.monotonic() - self._queues_at > self.ttl:
            rows = await self._rows(
                "SELECT q.id, q.tenant_id, q.name, t.slug AS tenant_slug, q.wrapup_seconds, "
                "q.sl_threshold_seconds, q.recording_policy, q.surveys "
                "FROM queues q JOIN tenants t ON t.id = q.tenant_id")
            self._queues = {r["name"]: QueueRow(**r) for r in rows}
            self._queues_at = time.monotonic()
        return self._queues

    async def tenant_slugs(self) -> list[str]:
        """Every tenant's slug."""
        return [r["slug"] for r in await self._rows("SELECT slug FROM tenants ORDER BY id")]

    async def tenant_slug(self, tenant_id: int) -> str:
        rows = await self._rows("SELECT slug FROM tenants WHERE id = %s", tenant_id)
        return rows[0]["slug"] if rows else "default"

    async def pause_reasons(self, tenant_id: int | None) -> dict[str, str]:
        rows = await self._rows(
            "SELECT code, label FROM pause_reasons WHERE tenant_id IS NULL OR tenant_id = %s "
            "ORDER BY code", tenant_id)
        return {r["code"]: r["label"] for r in rows}

    async def dial_plan(self, tenant_id: int) -> tuple[str, list[re.Pattern[str]]]:
        """The tenant's country and dial patterns (cached ``ttl`` seconds). A pattern that
        does not compile is left out (and logged): it can only allow less."""
        cached = self._patterns.get(tenant_id)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1], cached[2]
        rows = await self._rows("SELECT default_country, dial_patterns FROM tenants "
                                "WHERE id = %s", tenant_id)
        country = rows[0]["default_country"] if rows else ""
        pats = []
        for p in (rows[0]["dial_patterns"] if rows else []):
            try:
                pats.append(re.compile(p))
            except re.error as exc:
                log.error("tenant %s: dial pattern %r ignored: %s", tenant_id, p, exc)
        self._patterns[tenant_id] = (time.monotonic(), country, pats)
        return country, pats

    async def dial_patterns(self, tenant_id: int) -> list[re.Pattern[str]]:
        """The tenant's dial patterns (E.164, see :func:`check_number`)."""
        return (await self.dial_plan(tenant_id))[1]

    async def open_sessions(self) -> list[dict[str, Any]]:
        """Agents logged in according to ccd (re-added after an Asterisk restart)."""
        return await self._rows(
            "SELECT s.agent_id, s.interface, s.paused, s.pause_reason, a.name "
            "FROM agent_sessions s JOIN agents a ON a.id = s.agent_id "
            "WHERE s.logout_at IS NULL ORDER BY s.id")


async def send_action(ami: AmiClient, action: str, fields: dict[str, Any],
                      ok_errors: tuple[str, ...] = ()) -> dict[str, str]:
    """Send one AMI action for a service; Asterisk's refusals become :class:`ApiError`.

    ``ok_errors`` are error messages that mean "already done" (QueueAdd: Already there).
    """
    try:
        return (await ami.command(action, fields)).fields
    except AmiNotConnected as exc:
        raise ApiError(f"Asterisk is not connected ({exc}); try again when `ccd status` "
                       "shows the AMI link up", EXIT_UNAVAILABLE) from exc
    except AmiError as exc:
        msg = exc.response.get("Message", str(exc))
        if any(e.lower() in msg.lower() for e in ok_errors):
            return exc.response
        raise ApiError(f"Asterisk refused {action}: {msg}") from exc
    except TimeoutError as exc:
        raise ApiError(f"Asterisk did not answer {action} in time", EXIT_UNAVAILABLE) from exc


NUMBER = re.compile(r"^\+?[0-9]{1,20}$")


def normalise(number: str, country: str) -> str:
    """``number`` (digits, a leading +) in E.164 for a tenant of ``country``: national and
    international-prefix forms become ``+<cc>...`` (:func:`ccd.ivr.phone.to_e164`); what
    cannot be read as a public number (short codes, unknown country) stays as typed."""
    try:
        return to_e164(number, country) or number
    except KeyError:  # no number plan for the country: only +... numbers are E.164
        return number


async def check_number(directory: Directory, tenant_id: int, number: str) -> str:
    """The number to dial, in E.164, if the tenant may dial it; else :class:`ApiError`.

    Only digits and a leading + are accepted; the number is normalised with the tenant's
    country (:func:`normalise`) and must match one of the tenant's dial patterns, which are
    written against E.164 (sql/056: national-only by default). What was checked is exactly
    what is dialled (``ccd-outbound`` sends ``+<digits>`` to the trunk as ``<digits>``).
    """
    number = number.strip().replace(" ", "").replace("-", "")
    if not NUMBER.match(number):
        raise ApiError(f"{number!r} is not a phone number (digits and a leading + only)",
                       EXIT_USAGE)
    country, pats = await directory.dial_plan(tenant_id)
    e164 = normalise(number, country)
    if not any(p.fullmatch(e164) for p in pats):
        shown = number if e164 == number else f"{number} ({e164})"
        raise ApiError(f"{shown} is not allowed for this tenant (no dial pattern matches; "
                       "`ccd tenants dial-patterns` shows what the tenant may dial)",
                       EXIT_USAGE)
    return e164
