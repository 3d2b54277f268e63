"""Customer lookup and IVR records: the :class:`Directory` the engine talks to.

:class:`PgDirectory` reads 001's ``tenants``/``dids``/``customers``/``customer_phones``
and 010's ``ivr_routes``/``business_hours``/``holidays``, and writes
``callback_requests`` and ``ivr_sessions``. Every customer query carries the tenant id:
one tenant's caller is never matched against another tenant's customers.
:class:`MemoryDirectory` is the same without a database (tests, benchmarks, ccd-agi
without ``--database-url``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from ccd.ivr.calendar import Calendar, Ranges, parse_range

log = logging.getLogger("ccd.ivr")


@dataclass(frozen=True, slots=True)
class Tenant:
    id: int
    slug: str
    timezone: str = "UTC"
    default_country: str = "US"


@dataclass(frozen=True, slots=True)
class Customer:
    id: int
    name: str
    account_no: str | None = None
    vip: bool = False
    language: str | None = None


@dataclass(frozen=True, slots=True)
class CalendarRows:
    """A tenant's own hours/holidays for one calendar name (``weekly`` None = not set)."""

    weekly: tuple[Ranges, ...] | None
    holidays: frozenset[date]
    special: dict[date, Ranges]

    def apply(self, base: Calendar, timezone: str) -> Calendar:
        return base.with_overrides(timezone=timezone, weekly=self.weekly,
                                   holidays=self.holidays, special=self.special)


@dataclass(slots=True)
class CallbackRequest:
    tenant_id: int
    uniqueid: str
    e164: str
    queue: str
    language: str
    customer_id: int | None
    requested_at: datetime


@dataclass(slots=True)
class IvrRecord:
    """What one IVR session did; stored in ``ivr_sessions``."""

    tenant_id: int
    uniqueid: str
    channel: str
    flow: str
    did: str
    caller_num: str
    caller_e164: str | None
    customer_id: int | None
    language: str
    path: list[dict[str, str]]
    path_text: str
    outcome: str
    queue: str
    priority: int | None
    started_at: datetime
    ended_at: datetime


class Directory(Protocol):
    """What the IVR engine needs from storage."""

    async def resolve(self, did: str) -> tuple[Tenant, str | None]:
        """The tenant of a dialled number and the flow routed to it (None: default)."""
        ...

    async def customer_by_phone(self, tenant_id: int, e164: str) -> Customer | None: ...

    async def customer_by_account(self, tenant_id: int, account_no: str) -> Customer | None: ...

    async def calendar_rows(self, tenant_id: int, calendar: str) -> CalendarRows: ...

    async def queue_surveys(self, queue: str) -> bool:
        """Whether callers of ``queue`` are offered the post-call survey."""
        ...

    async def queue_tenant(self, queue: str) -> int | None:
        """The tenant that owns ``queue`` (None: ccd does not know the queue)."""
        ...

    async def save_callback(self, req: CallbackRequest) -> bool:
        """Store a callback request; False if one is already pending for that number."""
        ...

    async def save_session(self, rec: IvrRecord) -> None: ...


DEFAULT_TENANT = Tenant(0, "default")


@dataclass
class MemoryDirectory:
    """A :class:`Directory` in memory."""

    tenant: Tenant = DEFAULT_TENANT
    dids: dict[str, tuple[Tenant, str | None]] = field(default_factory=dict)
    phones: dict[tuple[int, str], Customer] = field(default_factory=dict)
    accounts: dict[tuple[int, str], Customer] = field(default_factory=dict)
    calendars: dict[tuple[int, str], CalendarRows] = field(default_factory=dict)
    callbacks: list[CallbackRequest] = field(default_factory=list)
    sessions: list[IvrRecord] = field(default_factory=list)
    survey_queues: set[str] = field(default_factory=set)
    queue_tenants: dict[str, int] = field(default_factory=dict)

    async def queue_surveys(self, queue: str) -> bool:
        return queue in self.survey_queues

    async def queue_tenant(self, queue: str) -> int | None:
        return self.queue_tenants.get(queue)

    def add_customer(self, tenant_id: int, customer: Customer, *phones: str) -> None:
        for p in phones:
            self.phones[(tenant_id, p)] = customer
        if customer.account_no:
            self.accounts[(tenant_id, customer.account_no)] = customer

    async def resolve(self, did: str) -> tuple[Tenant, str | None]:
        return self.dids.get(did, (self.tenant, None))

    async def customer_by_phone(self, tenant_id: int, e164: str) -> Customer | None:
        return self.phones.get((tenant_id, e164))

    async def customer_by_account(self, tenant_id: int, account_no: str) -> Customer | None:
        return self.accounts.get((tenant_id, account_no))

    async def calendar_rows(self, tenant_id: int, calendar: str) -> CalendarRows:
        return self.calendars.get((tenant_id, calendar),
                                  CalendarRows(None, frozenset(), {}))

    async def save_callback(self, req: CallbackRequest) -> bool:
        if any(c.tenant_id == req.tenant_id and c.e164 == req.e164 for c in self.callbacks):
            return False
        self.callbacks.append(req)
        return True

    async def save_session(self, rec: IvrRecord) -> None:
        self.sessions.append(rec)


class PgDirectory:
    """A :class:`Directory` on PostgreSQL through a psycopg ``AsyncConnectionPool``.

    Tenants, DID routes and queue owners change rarely: they are cached for
    ``cache_seconds``. Customers, calendars (business hours, holidays) and survey settings
    are read fresh for every call, so a change applies to the next call. No query may keep a caller
    waiting longer than ``timeout`` seconds (pool wait included): a slow or absent
    database makes a lookup fail fast, and the engine goes on without it.
    """

    def __init__(self, pool: Any, *, cache_seconds: float = 30.0, timeout: float = 2.0) -> None:
        self.pool = pool
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}

    def _cached(self, key: tuple[Any, ...]) -> Any:
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.cache_seconds:
            return hit[1]
        return None

    def _store(self, key: tuple[Any, ...], value: Any) -> Any:
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), value)
        return value

    async def _one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        async with asyncio.timeout(self.timeout), self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchone()

    async def _all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async with asyncio.timeout(self.timeout), self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def queue_surveys(self, queue: str) -> bool:
        # read for every call: switching surveys on or off applies to the next call
        row = await self._one("SELECT surveys FROM queues WHERE name = %s", (queue,))
        return bool(row and row[0])

    async def queue_tenant(self, queue: str) -> int | None:
        key = ("queue-tenant", queue)
        hit = self._cached(key)
        if hit is not None:
            return int(hit) if hit >= 0 else None
        row = await self._one("SELECT tenant_id FROM queues WHERE name = %s", (queue,))
        self._store(key, int(row[0]) if row else -1)
        return int(row[0]) if row else None

    async def resolve(self, did: str) -> tuple[Tenant, str | None]:
        key = ("did", did)
        hit = self._cached(key)
        if hit is not None:
            return hit
        row = await self._one(
            """
            SELECT t.id, t.slug, t.timezone, t.default_country, r.flow
              FROM tenants t
              LEFT JOIN dids d ON d.number = %s
              LEFT JOIN ivr_routes r ON r.number = d.number AND r.tenant_id = d.tenant_id
             WHERE t.id = COALESCE(d.tenant_id, ccd_default_tenant())
            """, (did,))
        if row is None:
            raise LookupError("no default tenant in the database (migration 001 not applied?)")
        return self._store(key, (Tenant(row[0], row[1], row[2], row[3]), row[4]))

    async def customer_by_phone(self, tenant_id: int, e164: str) -> Customer | None:
        row = await self._one(
            """
            SELECT c.id, c.name, c.account_no, c.vip, c.language
              FROM customer_phones p
              JOIN customers c ON c.tenant_id = p.tenant_id AND c.id = p.customer_id
             WHERE p.tenant_id = %s AND p.e164 = %s
            """, (tenant_id, e164))
        return Customer(*row) if row else None

    async def customer_by_account(self, tenant_id: int, account_no: str) -> Customer | None:
        row = await self._one(
            """
            SELECT id, name, account_no, vip, language
              FROM customers WHERE tenant_id = %s AND account_no = %s
            """, (tenant_id, account_no))
        return Customer(*row) if row else None

    async def calendar_rows(self, tenant_id: int, calendar: str) -> CalendarRows:
        hours = await self._all(
            """
            SELECT weekday, opens::text, closes::text FROM business_hours
             WHERE tenant_id = %s AND calendar = %s ORDER BY weekday, opens
            """, (tenant_id, calendar))
        days = await self._all(
            """
            SELECT day, opens::text, closes::text FROM holidays
             WHERE tenant_id = %s AND calendar = %s ORDER BY day, opens
            """, (tenant_id, calendar))
        weekly: tuple[Ranges, ...] | None = None
        if hours:
            week: list[list[tuple[Any, Any]]] = [[] for _ in range(7)]
            for wd, opens, closes in hours:
                week[wd].append(parse_range(f"{_hm(opens)}-{_hm(closes)}"))
            weekly = tuple(tuple(d) for d in week)
        closed: set[date] = set()
        special: dict[date, list[tuple[Any, Any]]] = {}
        for day, opens, closes in days:
            if opens is None:
                closed.add(day)
            else:
                special.setdefault(day, []).append(parse_range(f"{_hm(opens)}-{_hm(closes)}"))
        return CalendarRows(weekly, frozenset(closed),
                            {d: tuple(r) for d, r in special.items()})

    async def save_callback(self, req: CallbackRequest) -> bool:
        row = await self._one(
            """
            INSERT INTO callback_requests
                   (tenant_id, uniqueid, e164, customer_id, queue, language, requested_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (tenant_id, e164) WHERE status = 'pending' DO NOTHING
            RETURNING id
            """, (req.tenant_id, req.uniqueid, req.e164, req.customer_id, req.queue,
                  req.language, req.requested_at))
        return row is not None

    async def save_session(self, rec: IvrRecord) -> None:
        async with asyncio.timeout(self.timeout), self.pool.connection() as conn:
            await conn.execute(
                """
                INSERT INTO ivr_sessions
                       (tenant_id, uniqueid, channel, flow, did, caller_num, caller_e164,
                        customer_id, language, path, path_text, outcome, queue, priority,
                        started_at, ended_at)
                VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s)
                """, (rec.tenant_id, rec.uniqueid, rec.channel, rec.flow, rec.did,
                      rec.caller_num, rec.caller_e164, rec.customer_id, rec.language,
                      json.dumps(rec.path, ensure_ascii=False), rec.path_text, rec.outcome,
                      rec.queue, rec.priority, rec.started_at, rec.ended_at))


def _hm(t: str) -> str:
    """``'09:00:00'`` -> ``'09:00'`` (``'24:00:00'`` -> ``'24:00'``)."""
    return t[:5]
