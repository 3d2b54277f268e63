"""Campaigns in the daemon: runners on APScheduler, scheduled actions, the control API.

* Every ``tick`` seconds each active campaign's :class:`CampaignRunner` steps (an
  ``interval`` job per campaign); every 5 s :meth:`CampaignService.sync` brings the runners
  in line with the database (campaigns started or stopped by another instance, resumed
  after a restart) and picks up scheduled actions.
* ``campaign_schedule`` rows (start / pause / stop at a time) become ``date`` jobs; one that
  fell due while ccd was down runs at start. An instance claims a row before acting on it,
  so with several instances each action runs once.
* API methods (:meth:`CampaignService.methods`): ``campaigns.status`` (wallboard),
  ``campaign.start|pause|stop``, ``campaign.preview.next|dial|skip`` (agent console),
  ``campaign.disposition``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ccd.api import ApiError
from ccd.campaigns import rules
from ccd.campaigns import store as db
from ccd.campaigns.model import Campaign
from ccd.campaigns.pacer import PacerSettings, PacerStats
from ccd.campaigns.preflight import DialplanCheck
from ccd.campaigns.runner import CampaignRunner
from ccd.model import domain as d
from ccd.services.directory import Directory

if TYPE_CHECKING:
    from ccd.config import Config
    from ccd.daemon import Daemon

log = logging.getLogger("ccd.campaigns")

EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_NOT_FOUND = 2, 3, 4
DISPOSITION = re.compile(r"^[a-z0-9_-]{1,32}$")
#: action -> states it may be applied in, and the state it leads to
TRANSITIONS = {"start": (("draft", "paused", "stopped", "completed", "running"), "running"),
               "pause": (("running", "paused"), "paused"),
               "stop": (("running", "paused", "draft", "stopped", "completed"), "stopped")}
SYNC_EVERY = 5.0
Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def _str(params: dict[str, Any], key: str) -> str:
    v = params.get(key)
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if not isinstance(v, str) or not v.strip():
        raise ApiError(f"missing parameter {key!r}", EXIT_USAGE)
    return v.strip()


def parse_when(text: str) -> float:
    """ISO 8601 time (UTC when it has no offset) -> epoch."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ApiError(f"{text!r} is not a time like 2030-01-07T09:00:00+01:00",
                       EXIT_USAGE) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


class CampaignService:
    """All campaigns of one ccd instance."""

    def __init__(self, config: Config, daemon: Daemon, url: str,
                 scheduler: AsyncIOScheduler, *, clock: Callable[[], float] = time.time,
                 tick: float = 1.0, name: str | None = None) -> None:
        self.config = config
        self.daemon = daemon
        self.url = url
        self.scheduler = scheduler
        self.clock = clock
        self.tick = tick
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.runners: dict[int, CampaignRunner] = {}
        self.directory = Directory(daemon.pool)
        #: can Asterisk run each campaign's dialplan? (shared: one Asterisk)
        self.checks = DialplanCheck(lambda: self.daemon.client, self.clock)
        self._scheduled: set[int] = set()
        self._sync_lock = asyncio.Lock()
        self._started = False

    @property
    def ami(self) -> Any:
        return self.daemon.client

    @property
    def model(self) -> Any:
        return self.daemon.model

    @property
    def pool(self) -> Any:
        return self.daemon.pool

    def wrapup(self, queue: str) -> float:
        cfg = self.model.config
        return float(cfg.wrapup.get(queue, cfg.default_wrapup))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Subscribe to the bus, resume active campaigns, schedule the periodic sync."""
        self.daemon.bus.subscribe("campaigns", self.on_event)
        self._started = True
        try:
            await self.sync()
        except (psycopg.Error, OSError) as exc:
            log.warning("campaigns not resumed yet (database: %s); retrying", exc)
        self.scheduler.add_job(self._sync_job, "interval", seconds=SYNC_EVERY,
                               id="campaigns-sync", max_instances=1, coalesce=True,
                               misfire_grace_time=None, replace_existing=True)

    async def stop(self) -> None:
        """Stop dialling (calls in progress go on; their attempts are resolved next time)."""
        self._started = False
        self.daemon.bus.unsubscribe(self.on_event)
        for job_id in ["campaigns-sync", *(f"campaign-{i}" for i in self.runners),
                       *(f"campaign-schedule-{i}" for i in self._scheduled)]:
            self._remove_job(job_id)
        self._scheduled.clear()
        for r in list(self.runners.values()):
            await r.close()
        self.runners.clear()

    def _remove_job(self, job_id: str) -> None:
        with contextlib.suppress(JobLookupError):
            self.scheduler.remove_job(job_id)

    def _when(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, UTC)

    async def _sync_job(self) -> None:
        try:
            await self.sync()
        except (psycopg.Error, OSError) as exc:
            log.warning("campaign sync failed (database: %s)", exc)

    async def sync(self) -> None:
        """Runners for the campaigns the database says are active; scheduled actions."""
        if not self._started:
            return
        async with self._sync_lock:
            async with self.pool.connection() as conn:
                active = await db.rows(conn, db.ACTIVE_CAMPAIGNS, ())
                pending = await db.rows(
                    conn, "SELECT id, at FROM campaign_schedule WHERE done_at IS NULL", ())
            ids = set()
            for row in active:
                ids.add(row["id"])
                if row["id"] not in self.runners:
                    runner = CampaignRunner(self, Campaign.from_row(row))
                    self.runners[row["id"]] = runner
                    self.scheduler.add_job(
                        runner.step, "interval", seconds=self.tick, id=f"campaign-{row['id']}",
                        max_instances=2, coalesce=True, misfire_grace_time=None,
                        replace_existing=True,
                        next_run_time=self._when(self.clock()))
                    log.info("campaign %s (%d) %s: runner started", row["name"], row["id"],
                             row["state"])
            for cid, runner in list(self.runners.items()):
                if cid not in ids and not runner.inflight:
                    self._remove_job(f"campaign-{cid}")
                    await runner.close()
                    del self.runners[cid]
                    log.info("campaign %s (%d): runner stopped", runner.c.name, cid)
            for row in pending:
                if row["id"] not in self._scheduled:
                    self._scheduled.add(row["id"])
                    self.scheduler.add_job(self._run_scheduled, "date",
                                           run_date=row["at"], args=[row["id"]],
                                           id=f"campaign-schedule-{row['id']}",
                                           misfire_grace_time=None, replace_existing=True)

    async def _run_scheduled(self, row_id: int) -> None:
        """A scheduled start / pause / stop is due: claim it, apply it, record the result."""
        now = self.clock()
        async with self.pool.connection() as conn:
            got = await db.rows(conn, "UPDATE campaign_schedule SET done_at = %s WHERE id = %s "
                                "AND done_at IS NULL RETURNING campaign_id, action",
                                (db.ts(now), row_id))
        if not got:
            return
        try:
            res = await self.set_state(str(got[0]["campaign_id"]), got[0]["action"])
            result = f"{got[0]['action']}: {res['state']}"
        except ApiError as exc:
            result = f"{got[0]['action']} failed: {exc}"
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE campaign_schedule SET result = %s WHERE id = %s",
                               (result, row_id))
        log.info("scheduled campaign action %d: %s", row_id, result)

    # ------------------------------------------------------------------ events

    def on_event(self, e: d.DomainEvent) -> None:
        if e.kind in ("call_ended", "answered"):
            for r in list(self.runners.values()):
                r.on_event(e)

    # ------------------------------------------------------------------ actions

    async def find(self, ident: str, tenant_id: int | None = None) -> Campaign:
        async with self.pool.connection() as conn:
            found = await db.rows(conn, db.FIND_CAMPAIGN, {"ident": ident, "tenant": tenant_id})
        if not found:
            raise ApiError(f"no campaign {ident!r} (`ccd campaign` lists them)", EXIT_NOT_FOUND)
        if len(found) > 1:
            raise ApiError(f"{ident!r} names campaigns of {len(found)} tenants; give --tenant "
                           "or the id", EXIT_USAGE)
        return Campaign.from_row(found[0])

    async def set_state(self, ident: str, action: str, at: str | None = None,
                        tenant_id: int | None = None) -> dict[str, Any]:
        """Start, pause or stop a campaign now, or at ``at`` (ISO time)."""
        if action not in TRANSITIONS:
            raise ApiError(f"unknown action {action!r}", EXIT_USAGE)
        c = await self.find(ident, tenant_id)
        if at:
            when = parse_when(at)
            async with self.pool.connection() as conn:
                row = await db.rows(conn, "INSERT INTO campaign_schedule (tenant_id, "
                                    "campaign_id, action, at) VALUES (%s, %s, %s, %s) "
                                    "RETURNING id", (c.tenant_id, c.id, action, db.ts(when)))
            await self.sync()
            return {"campaign": c.name, "id": c.id, "scheduled": action,
                    "at": self._when(when).isoformat(), "schedule_id": row[0]["id"],
                    "state": c.state}
        allowed, target = TRANSITIONS[action]
        if c.state not in allowed:
            raise ApiError(f"campaign {c.name} is {c.state}: cannot {action} it", EXIT_USAGE)
        now = self.clock()
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(db.SET_STATE, {"state": target, "id": c.id, "now": db.ts(now)})
            if target == "stopped":
                await conn.execute(
                    "UPDATE campaign_contacts SET status = 'pending', reserved_by = '', "
                    "reserved_until = NULL WHERE campaign_id = %s AND status = 'preview'",
                    (c.id,))
        log.info("campaign %s (%d): %s -> %s", c.name, c.id, c.state, target)
        await self.sync()
        runner = self.runners.get(c.id)
        if runner is not None:
            runner.state = target
        return {"campaign": c.name, "id": c.id, "state": target, "previous": c.state}

    async def statuses(self, ident: str | None = None,
                       tenant_id: int | None = None) -> list[dict[str, Any]]:
        """Live status of the campaigns (figures from the database for those this
        instance does not dial)."""
        now = self.clock()
        async with self.pool.connection() as conn:
            if ident:
                rows = await db.rows(conn, db.FIND_CAMPAIGN, {"ident": ident,
                                                              "tenant": tenant_id})
                if not rows:
                    raise ApiError(f"no campaign {ident!r}", EXIT_NOT_FOUND)
            else:
                rows = await db.rows(conn, f"SELECT {db.CAMPAIGN_COLUMNS} FROM campaigns c "
                                     "JOIN tenants t ON t.id = c.tenant_id WHERE "
                                     "(%(t)s::bigint IS NULL OR c.tenant_id = %(t)s::bigint) "
                                     "ORDER BY c.id", {"t": tenant_id})
            out = []
            for row in rows:
                r = self.runners.get(row["id"])
                if r is not None and r.stats is not None:
                    out.append(r.status())
                    continue
                c = Campaign.from_row(row)
                st = await figures_status(conn, c, now)
                if r is not None:
                    st.update({"dialer": self.name, "note": r.note, "locked": r.locked})
                out.append(st)
        return out

    # ------------------------------------------------------------------ preview

    async def _preview_runner(self, p: dict[str, Any]) -> tuple[CampaignRunner, Any]:
        c = await self.find(_str(p, "campaign"), p.get("tenant_id"))
        if c.dial_mode != "preview":
            raise ApiError(f"campaign {c.name} is {c.dial_mode}, not preview", EXIT_USAGE)
        runner = self.runners.get(c.id)
        if runner is None or runner.state != "running":
            raise ApiError(f"campaign {c.name} is not running", EXIT_USAGE)
        if not runner.locked:
            raise ApiError(f"campaign {c.name} is dialled by another ccd instance ({runner.note})",
                           EXIT_UNAVAILABLE)
        agent = await self.directory.agent(_str(p, "agent"), c.tenant_id)
        if c.queue not in {q for q, _ in agent.skills}:
            raise ApiError(f"{agent.name} is not in queue {c.queue} of campaign {c.name}",
                           EXIT_USAGE)
        return runner, agent

    async def preview_next(self, p: dict[str, Any]) -> dict[str, Any]:
        runner, agent = await self._preview_runner(p)
        try:
            f = await runner.preview_next(agent.interface)
        except RuntimeError as exc:
            raise ApiError(f"campaign {runner.c.name}: {exc}", EXIT_UNAVAILABLE) from exc
        if f is None:
            return {"campaign": runner.c.name, "contact": None,
                    "reason": "no contact is due now (calling windows, retries)"}
        return {"campaign": runner.c.name, "agent": agent.interface,
                "contact": await self.contact_view(f.contact_id)}

    async def preview_dial(self, p: dict[str, Any]) -> dict[str, Any]:
        runner, agent = await self._preview_runner(p)
        contact = await self.contact_view(int(_str(p, "contact_id")))
        try:
            f = await runner.preview_dial(agent.interface, contact["id"], contact["name"])
        except LookupError as exc:
            raise ApiError(str(exc), EXIT_NOT_FOUND) from exc
        except PermissionError as exc:
            raise ApiError(f"not dialled: {exc}", EXIT_USAGE) from exc
        except RuntimeError as exc:
            raise ApiError(f"campaign {runner.c.name}: {exc}", EXIT_UNAVAILABLE) from exc
        return {"campaign": runner.c.name, "attempt_id": f.attempt_id,
                "contact_id": f.contact_id, "e164": f.e164, "agent": agent.interface}

    async def preview_skip(self, p: dict[str, Any]) -> dict[str, Any]:
        runner, agent = await self._preview_runner(p)
        try:
            delay = float(p.get("delay") or 900)
        except (TypeError, ValueError):
            delay = math.nan
        if not 0 <= delay <= rules.MAX_DELAY:  # also refuses nan and inf
            raise ApiError(f"delay must be 0-{rules.MAX_DELAY:.0f} seconds", EXIT_USAGE)
        now = self.clock()
        async with self.pool.connection() as conn:
            got = await db.rows(conn, "UPDATE campaign_contacts SET status = 'pending', "
                                "reserved_by = '', reserved_until = NULL, next_at = %s "
                                "WHERE id = %s AND campaign_id = %s AND status = 'preview' "
                                "AND reserved_by = %s RETURNING id",
                                (db.ts(now + delay), int(_str(p, "contact_id")), runner.c.id,
                                 agent.interface))
        if not got:
            raise ApiError("that contact is not reserved for this agent", EXIT_NOT_FOUND)
        return {"campaign": runner.c.name, "contact_id": got[0]["id"],
                "next_at": self._when(now + delay).isoformat()}

    async def contact_view(self, contact_id: int) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            found = await db.rows(conn, "SELECT id, e164, name, timezone, language, data, "
                                  "status, attempts, last_outcome, next_at, reserved_by, "
                                  "reserved_until FROM campaign_contacts WHERE id = %s",
                                  (contact_id,))
            if not found:
                raise ApiError(f"no contact {contact_id}", EXIT_NOT_FOUND)
            history = await db.rows(conn, "SELECT id, created_at, outcome, agent, "
                                    "disposition, note FROM campaign_attempts WHERE "
                                    "contact_id = %s ORDER BY id DESC LIMIT 10", (contact_id,))
        return {**found[0], "history": history}

    # ------------------------------------------------------------------ dispositions

    async def disposition(self, p: dict[str, Any]) -> dict[str, Any]:
        """An agent's disposition of an attempt; ``dnc`` adds the number to the tenant's
        do-not-call list, ``wrong_number`` retires it, ``callback`` (with
        ``callback_at``) sets when to call again."""
        disp = _str(p, "disposition").lower()
        if not DISPOSITION.match(disp):
            raise ApiError("a disposition is a code like sale, callback, dnc, wrong_number",
                           EXIT_USAGE)
        callback = parse_when(str(p["callback_at"])) if p.get("callback_at") else None
        if disp == "callback" and callback is None:
            raise ApiError("a callback needs callback_at", EXIT_USAGE)
        note = str(p.get("note") or "")[:500]
        now = self.clock()
        async with self.pool.connection() as conn, conn.transaction():
            if p.get("attempt_id"):
                found = await db.rows(conn, "SELECT * FROM campaign_attempts WHERE id = %s "
                                      "FOR UPDATE", (int(p["attempt_id"]),))
            else:
                found = await db.rows(conn, "SELECT * FROM campaign_attempts WHERE call_id = %s"
                                      " ORDER BY id DESC LIMIT 1 FOR UPDATE",
                                      (_str(p, "call_id"),))
            tenant = p.get("tenant_id")
            if not found or (tenant is not None and found[0]["tenant_id"] != tenant):
                raise ApiError("no such campaign attempt", EXIT_NOT_FOUND)
            a = found[0]
            await conn.execute("UPDATE campaign_attempts SET disposition = %s, note = %s, "
                               "callback_at = %s WHERE id = %s",
                               (disp, note, db.ts(callback), a["id"]))
            if disp in ("dnc", "do_not_call"):
                await conn.execute("INSERT INTO dnc (tenant_id, e164, source, note) VALUES "
                                   "(%s, %s, 'agent', %s) ON CONFLICT DO NOTHING",
                                   (a["tenant_id"], a["e164"], note))
                await conn.execute("UPDATE campaign_contacts SET status = 'dnc', next_at = NULL"
                                   " WHERE id = %s", (a["contact_id"],))
            elif disp == "wrong_number":
                await conn.execute("UPDATE campaign_contacts SET status = 'invalid', "
                                   "next_at = NULL WHERE id = %s", (a["contact_id"],))
            elif disp == "callback" and a["state"] == "done":
                await conn.execute("UPDATE campaign_contacts SET status = 'pending', "
                                   "next_at = %s, updated_at = %s WHERE id = %s AND status "
                                   "NOT IN ('dnc', 'invalid', 'cancelled')",
                                   (db.ts(callback), db.ts(now), a["contact_id"]))
        return {"attempt_id": a["id"], "disposition": disp, "e164": a["e164"]}

    # ------------------------------------------------------------------ API

    def methods(self) -> dict[str, Handler]:
        """Control-API methods to register on the daemon's API server."""

        def action(name: str) -> Handler:
            async def fn(p: dict[str, Any]) -> Any:
                return await self.set_state(_str(p, "campaign"), name, p.get("at"),
                                            p.get("tenant_id"))
            return fn

        async def status(p: dict[str, Any]) -> Any:
            return await self.statuses(p.get("campaign"), p.get("tenant_id"))

        return {"campaigns.status": status, "campaign.start": action("start"),
                "campaign.pause": action("pause"), "campaign.stop": action("stop"),
                "campaign.preview.next": self.preview_next,
                "campaign.preview.dial": self.preview_dial,
                "campaign.preview.skip": self.preview_skip,
                "campaign.disposition": self.disposition}


async def figures_status(conn: psycopg.AsyncConnection[Any], c: Campaign,
                         now: float) -> dict[str, Any]:
    """A campaign's status from the database alone (no live part)."""
    s: PacerSettings = c.pacer_settings()
    stats = PacerStats(s, now)
    stats.seed(**await db.seed_figures(conn, c.id, now, s.window, s.period))
    counts = await db.rows(conn, db.CONTACT_COUNTS, {"campaign": c.id, "now": db.ts(now)})
    open_ = await db.rows(conn, "SELECT state, count(*) AS n FROM campaign_attempts WHERE "
                          "campaign_id = %s AND state <> 'done' GROUP BY state", (c.id,))
    return {"id": c.id, "name": c.name, "tenant": c.tenant_slug, "tenant_id": c.tenant_id,
            "kind": c.kind, "mode": c.dial_mode, "queue": c.queue, "state": c.state,
            "dialer": None, "dialling": False, "locked": False, "note": "",
            "in_flight": {r["state"]: int(r["n"]) for r in open_},
            "contacts": {"due": sum(int(r["due"]) for r in counts),
                         **{r["status"]: int(r["n"]) for r in counts}},
            "abandonment": stats.rates(now),
            "pacer": {k: v for k, v in stats.to_dict(now).items() if k != "abandonment"}}

