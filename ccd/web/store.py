"""The panel's database access (users, customers, tickets, wrap-ups, call history).

Blocking psycopg on a :class:`psycopg_pool.ConnectionPool` (the panel runs in threads).
Rules kept by every method:

* every query of tenant data takes ``tenant_id`` and filters on it; references between
  tenant rows are checked by composite foreign keys (sql/040_panel.sql) as well;
* values are always bound parameters; the only SQL built at run time is made of
  :class:`psycopg.sql.SQL` constants picked from the whitelists below (sort columns,
  filter clauses), never of text that came from a request.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from ccd.ivr.phone import plan_for, to_e164
from ccd.security import hash_password, needs_rehash, verify_password

ROLES = ("agent", "supervisor", "admin")
STATUSES = ("new", "open", "pending", "resolved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
#: the ticket status flow (sql/040_panel.sql enforces the same in a trigger)
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("open", "pending", "resolved"),
    "open": ("pending", "resolved"),
    "pending": ("open", "resolved"),
    "resolved": ("open", "closed"),
    "closed": (),
}
#: ticket list sort keys -> SQL expressions (the only sortable columns)
SORTS: dict[str, sql.Composable] = {
    "id": sql.SQL("t.id"),
    "created": sql.SQL("t.created_at"),
    "updated": sql.SQL("t.updated_at"),
    "due": sql.SQL("t.due_at"),
    "priority": sql.SQL("array_position(ARRAY['low','normal','high','urgent'], t.priority)"),
    "status": sql.SQL("array_position(ARRAY['new','open','pending','resolved','closed'],"
                      " t.status)"),
}
ORDERS: dict[str, sql.Composable] = {"asc": sql.SQL("ASC NULLS LAST"),
                                     "desc": sql.SQL("DESC NULLS LAST")}
PER_PAGE = 25
MAX_TEXT = 200

class StoreError(Exception):
    """A request the data does not allow (unknown reference, bad transition ...)."""


class NotFound(StoreError):
    """No such row in the user's tenant."""


@dataclass(frozen=True, slots=True)
class User:
    """A logged-in panel user with its tenant and (optional) agent phone."""

    id: int
    tenant_id: int
    username: str
    role: str
    agent_id: int | None
    language: str
    session_epoch: int
    agent_interface: str = ""
    agent_name: str = ""
    agent_extension: str = ""
    tenant_name: str = ""

    def at_least(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def supervisor(self) -> bool:
        return self.at_least("supervisor")


@dataclass(frozen=True, slots=True)
class TicketQuery:
    """Validated ticket-list parameters (see :func:`ticket_query`)."""

    status: str = "active"
    priority: str = ""
    assignee: str = ""
    customer_id: int | None = None
    text: str = ""
    overdue: bool = False
    sort: str = "updated"
    order: str = "desc"
    page: int = 1


def parse_id(v: Any) -> int | None:
    try:
        n = int(str(v))
    except (TypeError, ValueError):
        return None
    return n if 0 < n < 2**62 else None


def ticket_query(args: Any) -> TicketQuery:
    """Request arguments -> :class:`TicketQuery`; anything not whitelisted is dropped."""
    status = str(args.get("status", "active"))
    if status not in (*STATUSES, "active", ""):
        status = "active"
    priority = str(args.get("priority", ""))
    if priority not in PRIORITIES:
        priority = ""
    assignee = str(args.get("assignee", ""))
    kind, _, ident = assignee.partition(":")
    if not (assignee in ("", "me", "none") or (kind in ("agent", "queue") and parse_id(ident))):
        assignee = ""
    sort = str(args.get("sort", "updated"))
    order = str(args.get("order", "desc"))
    page = parse_id(args.get("page")) or 1
    return TicketQuery(status=status, priority=priority, assignee=assignee,
                       customer_id=parse_id(args.get("customer")),
                       text=str(args.get("q", ""))[:MAX_TEXT].strip(),
                       overdue=str(args.get("overdue", "")) in ("1", "on", "true"),
                       sort=sort if sort in SORTS else "updated",
                       order=order if order in ORDERS else "desc", page=min(page, 10000))


def _like(text: str) -> str:
    """``text`` as an ILIKE pattern matching it literally anywhere."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def number_variants(e164: str, country: str) -> list[str]:
    """How a trunk may have written an E.164 number: as is, without ``+``, national."""
    out = [e164, e164.lstrip("+")]
    try:
        plan = plan_for(country)
    except KeyError:
        return out
    cc = "+" + plan.country_code
    if e164.startswith(cc):
        national = e164[len(cc):]
        out += [national, plan.trunk_prefix + national]
    return sorted(set(out))


class PanelStore:
    """Every query the panel makes."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        #: what unknown usernames are checked against (same argon2 parameters, same work)
        self._dummy_hash = hash_password(secrets.token_urlsafe(24))
        self._sweep_lock = threading.Lock()
        self._next_sweep = 0.0

    # ------------------------------------------------------------------ helpers

    def _all(self, query: Any, params: Any = None, timeout: float | None = None
             ) -> list[dict[str, Any]]:
        with self.pool.connection(timeout=timeout) as conn:
            cur = conn.cursor(row_factory=dict_row)
            cur.execute(query, params)
            return cur.fetchall()

    def _one(self, query: Any, params: Any = None, timeout: float | None = None
             ) -> dict[str, Any] | None:
        rows = self._all(query, params, timeout)
        return rows[0] if rows else None

    # ------------------------------------------------------------------ users

    _USER = """
        SELECT u.id, u.tenant_id, u.username, u.role, u.agent_id, u.language, u.session_epoch,
               COALESCE(a.interface, '') AS agent_interface, COALESCE(a.name, '') AS agent_name,
               COALESCE(a.extension, '') AS agent_extension, t.name AS tenant_name
        FROM users u JOIN tenants t ON t.id = u.tenant_id
        LEFT JOIN agents a ON a.id = u.agent_id AND a.tenant_id = u.tenant_id
    """

    def user(self, user_id: int) -> User | None:
        row = self._one(self._USER + " WHERE u.id = %s", (user_id,))
        return User(**row) if row else None

    #: one atomic statement: reserve an attempt for the username (real or not) unless it is
    #: locked, and read the account if there is one. ON CONFLICT DO UPDATE takes the row
    #: lock, and its WHERE is re-checked on the newest row version, so concurrent logins
    #: are granted one by one and none after the one that reached the limit.
    _RESERVE = """
        WITH r AS (
            INSERT INTO login_throttle AS t (username, failures, locked_until, updated_at)
            VALUES (%(u)s, 1, CASE WHEN %(n)s <= 1 THEN now() + make_interval(mins => %(m)s)
                              END, now())
            ON CONFLICT (username) DO UPDATE SET
                failures = CASE WHEN t.locked_until IS NOT NULL OR t.updated_at
                           <= now() - make_interval(mins => %(m)s) THEN 1
                           ELSE t.failures + 1 END,
                locked_until = CASE WHEN (CASE WHEN t.locked_until IS NOT NULL OR t.updated_at
                               <= now() - make_interval(mins => %(m)s) THEN 1
                               ELSE t.failures + 1 END) >= %(n)s
                               THEN now() + make_interval(mins => %(m)s) END,
                updated_at = now()
            WHERE t.locked_until IS NULL OR t.locked_until <= now()
            RETURNING failures)
        SELECT r.failures, u.id, u.password_hash FROM r
        LEFT JOIN users u ON u.username = %(u)s
    """

    def authenticate(self, username: str, password: str, attempts: int,
                     minutes: int) -> tuple[User | None, str]:
        """``(user, "")`` or ``(None, "failed" | "locked")``.

        Every attempt is first reserved in ``login_throttle`` (:attr:`_RESERVE`), keyed by
        the username as typed whether an account has it or not; a locked username is
        refused without looking at the password. A granted attempt counts as failed until
        the password proves right (which clears the count), so at most ``attempts``
        password checks run per ``minutes`` window however many requests race. An unknown
        username is checked against a dummy argon2 hash: the same answers, the same work.
        """
        self._sweep(minutes)
        row = self._one(self._RESERVE, {"u": username, "n": attempts, "m": minutes})
        if row is None:
            return None, "locked"
        if row["id"] is None:
            verify_password(self._dummy_hash, password)
            ok = False
        else:
            ok = verify_password(row["password_hash"], password)
        if not ok:
            return None, "locked" if row["failures"] >= attempts else "failed"
        new_hash = hash_password(password) if needs_rehash(row["password_hash"]) else None
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("DELETE FROM login_throttle WHERE username = %s", (username,))
            if new_hash is not None:
                conn.execute("UPDATE users SET password_hash = %s WHERE id = %s",
                             (new_hash, row["id"]))
        return self.user(row["id"]), ""

    def _sweep(self, minutes: int) -> None:
        """Forget login attempts whose window is over (at most once a minute): such a row
        means the same as no row, and unknown usernames must not grow the table forever."""
        now = time.monotonic()
        with self._sweep_lock:
            if now < self._next_sweep:
                return
            self._next_sweep = now + 60.0
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM login_throttle WHERE updated_at <= now() - make_interval("
                         "mins => %(m)s) AND (locked_until IS NULL OR locked_until <= now())",
                         {"m": minutes})

    def end_sessions(self, user_id: int) -> None:
        """Invalidate every session cookie of the user (logout)."""
        self._all("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = %s "
                  "RETURNING id", (user_id,))

    def set_language(self, user_id: int, language: str) -> None:
        self._all("UPDATE users SET language = %s WHERE id = %s RETURNING id",
                  (language, user_id))

    # ------------------------------------------------------------------ tenant set-up

    def tenant(self, tenant_id: int) -> dict[str, Any]:
        row = self._one("SELECT id, slug, name, timezone, default_country FROM tenants "
                        "WHERE id = %s", (tenant_id,))
        if row is None:
            raise NotFound(f"tenant {tenant_id}")
        return row

    def agents(self, tenant_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT id, name, interface, extension, role FROM agents "
                         "WHERE tenant_id = %s ORDER BY name, id", (tenant_id,))

    def agent(self, tenant_id: int, agent_id: int) -> dict[str, Any]:
        row = self._one("SELECT id, name, interface, extension, role FROM agents "
                        "WHERE tenant_id = %s AND id = %s", (tenant_id, agent_id))
        if row is None:
            raise NotFound(f"agent {agent_id}")
        return row

    def queues(self, tenant_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT id, name, display_name, sl_threshold_seconds FROM queues "
                         "WHERE tenant_id = %s ORDER BY name", (tenant_id,))

    def queue(self, tenant_id: int, queue_id: int) -> dict[str, Any]:
        row = self._one("SELECT id, name, display_name FROM queues WHERE tenant_id = %s "
                        "AND id = %s", (tenant_id, queue_id))
        if row is None:
            raise NotFound(f"queue {queue_id}")
        return row

    def directory_maps(self) -> tuple[dict[str, tuple[int, int, str]], dict[str, int]]:
        """``{interface: (agent_id, tenant_id, name)}`` and ``{queue: tenant_id}`` (hub)."""
        agents = {r["interface"]: (r["id"], r["tenant_id"], r["name"]) for r in self._all(
            "SELECT id, tenant_id, interface, name FROM agents")}
        queues = {r["name"]: r["tenant_id"] for r in self._all(
            "SELECT name, tenant_id FROM queues")}
        return agents, queues

    def disposition_codes(self, tenant_id: int) -> list[dict[str, Any]]:
        return self._all("SELECT DISTINCT ON (code) code, label, label_zh FROM disposition_codes "
                         "WHERE tenant_id IS NULL OR tenant_id = %s "
                         "ORDER BY code, tenant_id NULLS LAST", (tenant_id,))

    # ------------------------------------------------------------------ customers

    def customer(self, tenant_id: int, customer_id: int,
                 timeout: float | None = None) -> dict[str, Any] | None:
        return self._one(self._CUSTOMER + " WHERE c.tenant_id = %s AND c.id = %s",
                         (tenant_id, customer_id), timeout)

    def customer_by_phone(self, tenant_id: int, e164: str,
                          timeout: float | None = None) -> dict[str, Any] | None:
        return self._one(self._CUSTOMER + " JOIN customer_phones p ON p.tenant_id = "
                         "c.tenant_id AND p.customer_id = c.id WHERE p.tenant_id = %s "
                         "AND p.e164 = %s", (tenant_id, e164), timeout)

    def search_customers(self, tenant_id: int, text: str) -> list[dict[str, Any]]:
        text = text[:MAX_TEXT].strip()
        return self._all(
            "SELECT c.id, c.name, c.account_no, c.vip, "
            " (SELECT string_agg(p.e164, ', ' ORDER BY p.id) FROM customer_phones p "
            "  WHERE p.tenant_id = c.tenant_id AND p.customer_id = c.id) AS phones "
            "FROM customers c WHERE c.tenant_id = %(t)s AND (%(q)s = '' "
            " OR c.name ILIKE %(like)s OR c.account_no = %(q)s OR EXISTS (SELECT 1 FROM "
            " customer_phones p WHERE p.tenant_id = c.tenant_id AND p.customer_id = c.id "
            " AND p.e164 LIKE %(like)s)) ORDER BY c.name, c.id LIMIT 50",
            {"t": tenant_id, "q": text, "like": _like(text)})

    def create_customer(self, tenant_id: int, name: str, phone: str, *, account_no: str = "",
                        notes: str = "", vip: bool = False) -> tuple[int, bool]:
        """``(customer id, created)``; an existing customer with that phone is returned."""
        country = self.tenant(tenant_id)["default_country"]
        e164 = to_e164(phone, country) if phone else None
        if phone and e164 is None:
            raise StoreError(f"{phone!r} is not a phone number")
        if e164:
            existing = self.customer_by_phone(tenant_id, e164)
            if existing is not None:
                return existing["id"], False
        name = name.strip()[:MAX_TEXT]
        if not name:
            raise StoreError("a customer needs a name")
        try:
            with self.pool.connection() as conn, conn.transaction():
                cid = conn.execute(
                    "INSERT INTO customers (tenant_id, name, account_no, vip, notes) "
                    "VALUES (%s, %s, NULLIF(%s, ''), %s, %s) RETURNING id",
                    (tenant_id, name, account_no.strip()[:64], vip, notes[:4000])).fetchone()[0]
                if e164:
                    conn.execute("INSERT INTO customer_phones (tenant_id, customer_id, e164) "
                                 "VALUES (%s, %s, %s)", (tenant_id, cid, e164))
        except psycopg.errors.UniqueViolation as exc:
            raise StoreError("a customer with this account or phone already exists") from exc
        return cid, True

    def campaign_contact(self, tenant_id: int, campaign_id: int, attempt_id: int,
                         timeout: float | None = None) -> dict[str, Any] | None:
        """The contact a campaign attempt calls (the screen pop of a campaign call: the
        channel's caller ID is the campaign's own number). Only within ``tenant_id``."""
        return self._one(
            "SELECT a.id AS attempt_id, a.attempt_no, a.campaign_id, c.name AS campaign, "
            "       ct.id AS contact_id, ct.e164, ct.name, ct.language, ct.data "
            "FROM campaign_attempts a "
            "JOIN campaign_contacts ct ON ct.id = a.contact_id AND ct.tenant_id = a.tenant_id "
            "JOIN campaigns c ON c.id = a.campaign_id AND c.tenant_id = a.tenant_id "
            "WHERE a.id = %(a)s AND a.campaign_id = %(c)s AND a.tenant_id = %(t)s",
            {"a": attempt_id, "c": campaign_id, "t": tenant_id}, timeout)

    def pop_lookup(self, tenant_id: int, country: str, *, customer_id: int | None,
                   e164: str | None, exclude_call: str, timeout: float | None = None
                   ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[dict[str, Any]]]:
        """The screen pop's data in one connection: the customer (by id, else by phone),
        its recent calls and open tickets."""
        if customer_id is None and not e164:
            return None, [], []
        with self.pool.connection(timeout=timeout) as conn:
            cur = conn.cursor(row_factory=dict_row)
            # by the IVR's customer id first, else by caller ID: one round trip
            cur.execute(self._CUSTOMER + " WHERE c.tenant_id = %(t)s AND (c.id = %(id)s OR "
                        "c.id = (SELECT customer_id FROM customer_phones WHERE tenant_id = %(t)s"
                        " AND e164 = %(e164)s)) ORDER BY c.id = %(id)s DESC NULLS LAST LIMIT 1",
                        {"t": tenant_id, "id": customer_id, "e164": e164})
            cust = cur.fetchone()
            if cust is None:
                return None, [], []
            # its recent calls and open tickets: a second and last round trip
            p = self._call_match(tenant_id, cust, country) | {"x": exclude_call, "n": 5,
                                                              "k": 10}
            cur.execute("SELECT (SELECT COALESCE(json_agg(r), '[]') FROM (" + self._RECENT
                        + ") r) AS recent, (SELECT COALESCE(json_agg(k), '[]') FROM ("
                        + self._OPEN_TICKETS_NAMED + ") k) AS tickets", p)
            row = cur.fetchone()
            assert row is not None
            return cust, row["recent"], row["tickets"]

    _CUSTOMER = """
        SELECT c.id, c.name, c.account_no, c.vip, c.language, c.notes, c.created_at,
               ARRAY(SELECT e164 FROM customer_phones WHERE tenant_id = c.tenant_id
                     AND customer_id = c.id ORDER BY id) AS phones
        FROM customers c"""

    def _call_match(self, tenant_id: int, customer: dict[str, Any],
                    country: str | None = None) -> dict[str, Any]:
        if country is None:
            country = self.tenant(tenant_id)["default_country"]
        nums: list[str] = []
        for p in customer.get("phones", []):
            nums += number_variants(p, country)
        return {"t": tenant_id, "c": customer["id"], "cs": str(customer["id"]), "nums": nums}

    #: a customer's calls: by customer id, caller number, the IVR's CCD_CUSTOMER_ID or a
    #: wrap-up naming the customer (a UNION, so that each branch uses its index)
    _CALLS_OF = """
        FROM calls c WHERE c.tenant_id = %(t)s AND c.call_id IN (
            SELECT call_id FROM calls WHERE tenant_id = %(t)s AND customer_id = %(c)s
            UNION SELECT call_id FROM calls WHERE tenant_id = %(t)s
                AND caller_num = ANY(%(nums)s::text[]) AND caller_num <> ''
            UNION SELECT call_id FROM calls WHERE variables ? 'CCD_CUSTOMER_ID'
                AND variables ->> 'CCD_CUSTOMER_ID' = %(cs)s AND tenant_id = %(t)s
            UNION SELECT call_id FROM call_dispositions WHERE tenant_id = %(t)s
                AND customer_id = %(c)s)
    """

    def recent_calls(self, tenant_id: int, customer: dict[str, Any], exclude: str = "",
                     limit: int = 5, timeout: float | None = None) -> list[dict[str, Any]]:
        """The customer's latest calls with their wrap-up, newest first."""
        p = self._call_match(tenant_id, customer) | {"x": exclude, "n": limit}
        return self._all(self._RECENT, p, timeout)

    _RECENT = (
        "SELECT c.call_id, extract(epoch FROM c.started_at)::float8 AS started_at, "
        " c.direction, c.outcome, c.queue, c.agent_name, c.talk_seconds::float8 AS talk_seconds,"
        " (SELECT string_agg(d.code || CASE WHEN d.notes <> '' "
        "   THEN ': ' || d.notes ELSE '' END, '; ') FROM call_dispositions d "
        "   WHERE d.call_id = c.call_id) AS wrapup " + _CALLS_OF
        + " AND c.call_id <> %(x)s ORDER BY c.started_at DESC LIMIT %(n)s")

    def timeline(self, tenant_id: int, customer: dict[str, Any]) -> list[dict[str, Any]]:
        """Calls, wrap-ups, tickets and ticket activity of a customer, newest first."""
        p = self._call_match(tenant_id, customer)
        return self._all(
            "SELECT * FROM ("
            " SELECT 'call' AS kind, c.started_at AS at, c.call_id AS ref, "
            "  c.direction || ' ' || c.outcome AS title, c.agent_name AS who, c.queue AS body "
            + self._CALLS_OF +
            " UNION ALL SELECT 'wrapup', d.created_at, d.call_id, d.code, "
            "  COALESCE(u.username, ''), d.notes FROM call_dispositions d "
            "  LEFT JOIN users u ON u.id = d.user_id "
            "  WHERE d.tenant_id = %(t)s AND d.customer_id = %(c)s"
            " UNION ALL SELECT 'ticket', t.created_at, t.id::text, t.subject, '', t.status "
            "  FROM tickets t WHERE t.tenant_id = %(t)s AND t.customer_id = %(c)s"
            " UNION ALL SELECT 'ticket_' || e.kind, e.created_at, t.id::text, t.subject, "
            "  COALESCE(u.username, ''), CASE WHEN e.kind = 'comment' THEN e.body "
            "  ELSE e.old_value || ' -> ' || e.new_value END FROM ticket_events e "
            "  JOIN tickets t ON t.tenant_id = e.tenant_id AND t.id = e.ticket_id "
            "  LEFT JOIN users u ON u.id = e.user_id "
            "  WHERE e.tenant_id = %(t)s AND t.customer_id = %(c)s "
            "  AND e.kind IN ('comment', 'status')"
            ") x ORDER BY at DESC LIMIT 200", p)

    # ------------------------------------------------------------------ calls

    def agent_handled_call(self, interface: str, call_id: str) -> bool:
        """True if the stored call shows this agent on it (answered, transfer, events)."""
        row = self._one(
            "SELECT 1 AS ok FROM calls WHERE call_id = %(c)s AND (agent = %(a)s OR "
            " record -> 'segments' @> jsonb_build_array(jsonb_build_object('agent', %(a)s::text)))"
            " UNION ALL SELECT 1 FROM call_events WHERE call_id = %(c)s AND agent = %(a)s "
            "LIMIT 1", {"c": call_id, "a": interface})
        return row is not None

    def call_tenant(self, call_id: str) -> int | None:
        row = self._one("SELECT tenant_id FROM calls WHERE call_id = %s", (call_id,))
        return int(row["tenant_id"]) if row else None

    def save_disposition(self, tenant_id: int, user: User, call_id: str, code: str,
                         notes: str, customer_id: int | None, wait: float = 5.0) -> int:
        """Store (or replace) the agent's wrap-up of a call; waits up to ``wait`` seconds
        for the call's row (the event writer may be a moment behind)."""
        codes = {c["code"] for c in self.disposition_codes(tenant_id)}
        if code not in codes:
            raise StoreError(f"unknown disposition {code!r}")
        if customer_id is not None and self.customer(tenant_id, customer_id) is None:
            raise NotFound(f"customer {customer_id}")
        end = time.monotonic() + wait
        while True:
            row = self._one(
                "INSERT INTO call_dispositions (tenant_id, call_id, agent_id, user_id, code, "
                " notes, customer_id) SELECT %(t)s, c.call_id, %(a)s, %(u)s, %(code)s, "
                " %(notes)s, %(cust)s FROM calls c WHERE c.call_id = %(call)s "
                "ON CONFLICT (call_id, agent_id) DO UPDATE SET code = EXCLUDED.code, "
                " notes = EXCLUDED.notes, customer_id = EXCLUDED.customer_id, "
                " user_id = EXCLUDED.user_id, updated_at = now() RETURNING id",
                {"t": tenant_id, "a": user.agent_id, "u": user.id, "code": code,
                 "notes": notes[:4000], "cust": customer_id, "call": call_id})
            if row is not None:
                return int(row["id"])
            if time.monotonic() > end:
                raise NotFound(f"call {call_id} is not stored yet; try again in a moment")
            time.sleep(0.2)

    # ------------------------------------------------------------------ tickets

    def _check_assignee(self, tenant_id: int, assignee: str) -> tuple[int | None, int | None]:
        """``agent:ID`` / ``queue:ID`` / ``""`` -> (agent id, queue id), both in the tenant."""
        if not assignee:
            return None, None
        kind, _, ident = assignee.partition(":")
        n = parse_id(ident)
        if kind == "agent" and n:
            return self.agent(tenant_id, n)["id"], None
        if kind == "queue" and n:
            return None, self.queue(tenant_id, n)["id"]
        raise StoreError(f"bad assignee {assignee!r}")

    def create_ticket(self, tenant_id: int, user: User, *, subject: str, description: str = "",
                      priority: str = "normal", customer_id: int | None = None,
                      call_id: str = "", assignee: str = "",
                      due_at: datetime | None = None) -> int:
        subject = subject.strip()[:MAX_TEXT]
        if not subject:
            raise StoreError("a ticket needs a subject")
        if priority not in PRIORITIES:
            raise StoreError(f"bad priority {priority!r}")
        if customer_id is not None and self.customer(tenant_id, customer_id) is None:
            raise NotFound(f"customer {customer_id}")
        agent_id, queue_id = self._check_assignee(tenant_id, assignee)
        with self.pool.connection() as conn, conn.transaction():
            tid = conn.execute(
                "INSERT INTO tickets (tenant_id, subject, description, priority, customer_id, "
                " call_id, assignee_agent_id, assignee_queue_id, due_at, created_by) "
                "VALUES (%s, %s, %s, %s, %s, NULLIF(%s, ''), %s, %s, %s, %s) RETURNING id",
                (tenant_id, subject, description[:10000], priority, customer_id, call_id[:64],
                 agent_id, queue_id, due_at, user.id)).fetchone()[0]
            conn.execute("INSERT INTO ticket_events (tenant_id, ticket_id, user_id, kind, "
                         "new_value) VALUES (%s, %s, %s, 'created', 'new')",
                         (tenant_id, tid, user.id))
        return int(tid)

    def ticket(self, tenant_id: int, ticket_id: int) -> dict[str, Any]:
        row = self._one(
            "SELECT t.*, cu.name AS customer_name, a.name AS agent_name, q.name AS queue_name, "
            " u.username AS created_by_name FROM tickets t "
            "LEFT JOIN customers cu ON cu.tenant_id = t.tenant_id AND cu.id = t.customer_id "
            "LEFT JOIN agents a ON a.tenant_id = t.tenant_id AND a.id = t.assignee_agent_id "
            "LEFT JOIN queues q ON q.tenant_id = t.tenant_id AND q.id = t.assignee_queue_id "
            "LEFT JOIN users u ON u.id = t.created_by "
            "WHERE t.tenant_id = %s AND t.id = %s", (tenant_id, ticket_id))
        if row is None:
            raise NotFound(f"ticket {ticket_id}")
        row["next_statuses"] = TRANSITIONS[row["status"]]
        return row

    def ticket_events(self, tenant_id: int, ticket_id: int) -> list[dict[str, Any]]:
        return self._all(
            "SELECT e.kind, e.body, e.old_value, e.new_value, e.created_at, "
            " COALESCE(u.username, '') AS who FROM ticket_events e "
            "LEFT JOIN users u ON u.id = e.user_id "
            "WHERE e.tenant_id = %s AND e.ticket_id = %s ORDER BY e.id", (tenant_id, ticket_id))

    def _event(self, conn: psycopg.Connection[Any], tenant_id: int, ticket_id: int, user: User,
               kind: str, old: str = "", new: str = "", body: str = "") -> None:
        conn.execute("INSERT INTO ticket_events (tenant_id, ticket_id, user_id, kind, old_value, "
                     "new_value, body) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                     (tenant_id, ticket_id, user.id, kind, old, new, body))

    def set_status(self, tenant_id: int, ticket_id: int, user: User, status: str) -> None:
        current = self.ticket(tenant_id, ticket_id)["status"]
        if status not in TRANSITIONS[current]:
            raise StoreError(f"a {current} ticket cannot become {status}")
        with self.pool.connection() as conn, conn.transaction():
            cur = conn.execute("UPDATE tickets SET status = %s WHERE tenant_id = %s AND id = %s "
                               "AND status = %s", (status, tenant_id, ticket_id, current))
            if cur.rowcount != 1:
                raise StoreError("the ticket changed meanwhile; reload it")
            self._event(conn, tenant_id, ticket_id, user, "status", current, status)

    def assign(self, tenant_id: int, ticket_id: int, user: User, assignee: str) -> None:
        t = self.ticket(tenant_id, ticket_id)
        agent_id, queue_id = self._check_assignee(tenant_id, assignee)
        old = t["agent_name"] or t["queue_name"] or ""
        new = (self.agent(tenant_id, agent_id)["name"] if agent_id else
               self.queue(tenant_id, queue_id)["name"] if queue_id else "")
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("UPDATE tickets SET assignee_agent_id = %s, assignee_queue_id = %s "
                         "WHERE tenant_id = %s AND id = %s",
                         (agent_id, queue_id, tenant_id, ticket_id))
            self._event(conn, tenant_id, ticket_id, user, "assigned", old, new)

    def set_due(self, tenant_id: int, ticket_id: int, user: User, due: datetime | None) -> None:
        t = self.ticket(tenant_id, ticket_id)
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("UPDATE tickets SET due_at = %s WHERE tenant_id = %s AND id = %s",
                         (due, tenant_id, ticket_id))
            self._event(conn, tenant_id, ticket_id, user, "due",
                        t["due_at"].isoformat() if t["due_at"] else "",
                        due.isoformat() if due else "")

    def add_comment(self, tenant_id: int, ticket_id: int, user: User, body: str) -> None:
        body = body.strip()
        if not body:
            raise StoreError("an empty comment")
        self.ticket(tenant_id, ticket_id)
        with self.pool.connection() as conn, conn.transaction():
            self._event(conn, tenant_id, ticket_id, user, "comment", body=body[:10000])
            conn.execute("UPDATE tickets SET updated_at = now() WHERE tenant_id = %s AND id = %s",
                         (tenant_id, ticket_id))

    _OPEN_TICKETS = (
        "SELECT id, subject, status, priority, due_at, updated_at FROM tickets "
        "WHERE tenant_id = %s AND customer_id = %s AND status NOT IN ('resolved', 'closed') "
        "ORDER BY updated_at DESC LIMIT %s")

    _OPEN_TICKETS_NAMED = (
        "SELECT id, subject, status, priority, extract(epoch FROM due_at) AS due_at, "
        "extract(epoch FROM updated_at) AS updated_at FROM tickets WHERE tenant_id = %(t)s "
        "AND customer_id = %(c)s AND status NOT IN ('resolved', 'closed') "
        "ORDER BY tickets.updated_at DESC LIMIT %(k)s")

    def open_tickets(self, tenant_id: int, customer_id: int, limit: int = 10,
                     timeout: float | None = None) -> list[dict[str, Any]]:
        return self._all(self._OPEN_TICKETS, (tenant_id, customer_id, limit), timeout)

    def list_tickets(self, tenant_id: int, user: User, q: TicketQuery
                     ) -> tuple[list[dict[str, Any]], int]:
        """One page of tickets and the total count. ``q`` is already whitelisted."""
        where: list[sql.Composable] = [sql.SQL("t.tenant_id = %(t)s")]
        p: dict[str, Any] = {"t": tenant_id}
        if q.status == "active":
            where.append(sql.SQL("t.status NOT IN ('resolved', 'closed')"))
        elif q.status:
            where.append(sql.SQL("t.status = %(status)s"))
            p["status"] = q.status
        if q.priority:
            where.append(sql.SQL("t.priority = %(priority)s"))
            p["priority"] = q.priority
        kind, _, ident = q.assignee.partition(":")
        if q.assignee == "me":
            where.append(sql.SQL("t.assignee_agent_id = %(me)s"))
            p["me"] = user.agent_id or -1
        elif q.assignee == "none":
            where.append(sql.SQL("t.assignee_agent_id IS NULL AND t.assignee_queue_id IS NULL"))
        elif kind == "agent":
            where.append(sql.SQL("t.assignee_agent_id = %(aid)s"))
            p["aid"] = int(ident)
        elif kind == "queue":
            where.append(sql.SQL("t.assignee_queue_id = %(qid)s"))
            p["qid"] = int(ident)
        if q.customer_id is not None:
            where.append(sql.SQL("t.customer_id = %(cust)s"))
            p["cust"] = q.customer_id
        if q.overdue:
            where.append(sql.SQL("t.due_at < now() AND t.status NOT IN ('resolved', 'closed')"))
        if q.text:
            where.append(sql.SQL("(t.subject ILIKE %(like)s OR t.description ILIKE %(like)s "
                                 "OR t.id::text = %(text)s OR cu.name ILIKE %(like)s)"))
            p["like"], p["text"] = _like(q.text), q.text.lstrip("#")
        cond = sql.SQL(" AND ").join(where)
        base = sql.SQL("FROM tickets t LEFT JOIN customers cu ON cu.tenant_id = t.tenant_id "
                       "AND cu.id = t.customer_id LEFT JOIN agents a ON a.tenant_id = t.tenant_id"
                       " AND a.id = t.assignee_agent_id LEFT JOIN queues qu ON qu.tenant_id = "
                       "t.tenant_id AND qu.id = t.assignee_queue_id WHERE {}").format(cond)
        total = self._one(sql.SQL("SELECT count(*) AS n {}").format(base), p)
        p["limit"], p["offset"] = PER_PAGE, (q.page - 1) * PER_PAGE
        rows = self._all(sql.SQL(
            "SELECT t.id, t.subject, t.status, t.priority, t.due_at, t.created_at, t.updated_at,"
            " t.customer_id, cu.name AS customer_name, COALESCE(a.name, qu.name, '') AS assignee,"
            " (t.due_at < now() AND t.status NOT IN ('resolved', 'closed')) AS overdue "
            "{} ORDER BY {} {}, t.id DESC LIMIT %(limit)s OFFSET %(offset)s").format(
                base, SORTS[q.sort], ORDERS[q.order]), p)
        return rows, int(total["n"]) if total else 0

    # ------------------------------------------------------------------ statistics

    def queue_stats_today(self, tenant_id: int, day_start: datetime) -> list[dict[str, Any]]:
        """Stored per-interval queue figures (refreshed every 5 minutes by the stats job)."""
        return self._all(
            "SELECT queue, extract(epoch FROM interval_start)::float8 AS start, offered, "
            " answered, abandoned, exited, answered_in_sl, abandoned_short, "
            " service_level::float8 AS service_level FROM queue_stats "
            "WHERE tenant_id = %s AND interval_start >= %s ORDER BY interval_start, queue",
            (tenant_id, day_start))
