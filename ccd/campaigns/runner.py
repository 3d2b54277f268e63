"""One campaign's dialer: the adapter between the pure pacer and AMI, PostgreSQL and the
live model. The service calls :meth:`CampaignRunner.step` every tick (APScheduler).

* **One dialer per campaign.** The runner holds the campaign's PostgreSQL advisory lock on
  its own session (not a pooled connection) and writes every attempt row through that
  session: if the session is lost, so is the lock, and no attempt can be written, so
  nothing is dialled. Another ccd instance stays in *standby* and retries the lock.
* **Write first, then dial.** Contacts are claimed and their attempt rows inserted
  (state ``dialing``) in one transaction before the Originate is sent. The database allows
  one open attempt per contact.
* **Restart safety.** When the lock is (re)acquired, attempts left open are resolved, never
  redialled blindly: channels still up are found with AMI ``Status`` (they carry
  ``CCD_ATTEMPT``) and followed to their end; calls that ended are read from the call store
  (``calls``); what remains is marked ``unknown`` once it cannot be ringing any more, and
  retried only after that rule's delay. A call that ends later corrects it.
* Outcomes come from the OriginateResponse (``Reason``) and, for answered calls, from the
  call record when the call ends (agent, ``CCD_*`` variables set by the dialplan). Reason
  0 only says "not answered" (a SIP refusal: chan_pjsip hangs up with the response's cause,
  486 Busy Here = 17): the outcome then waits for the channel's hangup cause.
* **Nothing is dialled that Asterisk cannot run.** Before dialling, the campaign's
  dialplan context is checked (:mod:`ccd.campaigns.preflight`: ShowDialPlan, ModuleCheck)
  - again after each reconnect, every minute and after a call the PBX dropped; a campaign
  whose context needs an application that is not loaded (AMD with ``app_amd`` missing)
  does not dial, and its status and the log say what is missing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from ccd.ami.actions import AmiActionError
from ccd.ami.client import AmiError, AmiNotConnected
from ccd.ami.parser import values
from ccd.campaigns import rules
from ccd.campaigns import store as db
from ccd.campaigns.model import Campaign
from ccd.campaigns.pacer import Decision, PacerInput, PacerStats, decide
from ccd.campaigns.preflight import Verdict
from ccd.campaigns.windows import WindowError, next_open
from ccd.model import domain as d
from ccd.store.db import connect_kwargs

if TYPE_CHECKING:
    from ccd.campaigns.service import CampaignService

log = logging.getLogger("ccd.campaigns")

#: an attempt found open after a restart may still be ringing this long past its timeout
GRACE = 60.0
#: how often the slower checks (counts, orphans, completion) run, in seconds
SWEEP_EVERY = 5.0
#: an unanswered attempt with a vague Reason waits this long for its channel's hangup cause
END_WAIT = 5.0
#: a followed call that vanished from the live model without an end is looked up in the
#: call store; after this long without a trace it is ``unknown``
LOST_AFTER = 600.0
PREVIEW_HOLD = 600.0


@dataclass(slots=True)
class Inflight:
    """An attempt this runner follows."""

    attempt_id: int
    contact_id: int
    e164: str
    started: float  # runner clock
    mode: str
    state: str = "dialing"  # dialing | answered | connected
    call_id: str = ""
    channel: str = ""
    agent: str = ""
    ring: float | None = None
    orphan: bool = False  # found open after a restart / lost response: no OriginateResponse
    deadline: float = 0.0  # orphan: unknown after this
    missing_since: float | None = None  # the followed call is gone from the live model
    reason: int | None = None  # a vague OriginateResponse Reason waiting for the hangup cause
    end_wait: float = 0.0  # ... until then
    ended: d.CallRecord | None = None  # the call ended before its OriginateResponse came


class CampaignRunner:
    """Dials one campaign (when it holds the campaign's lock)."""

    def __init__(self, svc: CampaignService, campaign: Campaign) -> None:
        self.svc = svc
        self.c = campaign
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.locked = False
        self.state = campaign.state
        self.note = "starting"
        self.inflight: dict[int, Inflight] = {}
        self.by_call: dict[str, int] = {}
        self.stats: PacerStats | None = None
        self.decision: Decision | None = None
        self.counts: dict[str, Any] = {}
        self.dials = 0
        self.errors = 0
        self._updated: Any = None
        self._db = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweep_at = 0.0
        self._closed = False
        self._busy = False
        self._finishing: set[int] = set()  # outcome being written
        self.dialplan: Verdict | None = None  # the last dialplan check of this campaign

    # ------------------------------------------------------------------ helpers

    @property
    def now(self) -> float:
        return self.svc.clock()

    @property
    def settings(self) -> Any:
        return self.c.pacer_settings(self.svc.wrapup(self.c.queue))

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors += 1
            log.error("campaign %s: %s failed", self.c.name, task.get_name(),
                      exc_info=task.exception())

    # ------------------------------------------------------------------ the lock

    async def _hold_lock(self) -> bool:
        """True while this runner holds the campaign's advisory lock on its own session."""
        try:
            if self.conn is None or self.conn.closed:
                self.locked = False
                self.conn = await psycopg.AsyncConnection.connect(
                    self.svc.url, autocommit=True, **connect_kwargs("ccd-campaign"))
            if not self.locked:
                cur = await self.conn.execute("SELECT pg_try_advisory_lock(%s)",
                                              (db.lock_key(self.c.id),))
                row = await cur.fetchone()
                if not row or not row[0]:
                    self.note = "standby: another ccd instance dials this campaign"
                    return False
                self.locked = True
                log.info("campaign %s (%d): this instance dials it", self.c.name, self.c.id)
                await self._on_lock()
            return True
        except (psycopg.Error, OSError) as exc:
            await self._lost(f"database: {exc}")
            return False

    async def _lost(self, why: str) -> None:
        if self.locked:
            log.error("campaign %s: lost its database session (%s); dialling stopped",
                      self.c.name, why)
        self.locked = False
        self.note = f"not dialling: {why}"
        if self.conn is not None:
            try:
                await self.conn.close()
            except (psycopg.Error, OSError):
                log.debug("closing a broken campaign session", exc_info=True)
        self.conn = None

    async def _on_lock(self) -> None:
        """Just became the dialer: measured figures back, in-flight attempts resolved."""
        assert self.conn is not None
        s = self.settings
        now = self.now
        fig = await db.seed_figures(self.conn, self.c.id, now, s.window, s.period)
        stats = PacerStats(s, now)
        stats.seed(**fig)
        self.stats = stats
        await self._resolve_open(now)

    async def close(self) -> None:
        """Stop dialling and release the lock (attempts in flight stay open in the table
        and are resolved by whoever dials the campaign next)."""
        self._closed = True
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.conn is not None:
            try:
                if self.locked and not self.conn.closed:
                    await self.conn.execute("SELECT pg_advisory_unlock(%s)",
                                            (db.lock_key(self.c.id),))
                await self.conn.close()
            except (psycopg.Error, OSError):
                log.debug("closing campaign session", exc_info=True)
        self.conn = None
        self.locked = False

    # ------------------------------------------------------------------ the tick

    async def step(self) -> None:
        """One tick: keep the lock, follow the campaign's state, dial what the pacer says.
        A tick that finds the previous one still running returns at once."""
        if self._busy or self._closed:
            return
        self._busy = True
        try:
            await self._step()
        finally:
            self._busy = False

    async def _step(self) -> None:
        if not await self._hold_lock():
            return
        assert self.conn is not None
        now = self.now
        try:
            async with self._db:
                row = (await db.rows(self.conn, db.STATE_OF, (self.c.id,)) or [None])[0]
            if row is None:
                self.state, self.note = "deleted", "campaign deleted"
                return
            if row["updated_at"] != self._updated:
                await self._reload(row["updated_at"])
            self.state = row["state"]
            if now >= self._sweep_at:
                self._sweep_at = now + SWEEP_EVERY
                await self._sweep(now)
            if self.state != "running":
                self.note = self.state
                return
            if not self.svc.ami.connected:
                self.note = "waiting for the AMI link"
                return
            if not await self._dialplan_ok():
                return
            assert self.stats is not None
            self.decision = dec = decide(self.settings, self.stats, self._input(now))
            self.note = f"dialling ({dec.how})"
            if dec.calls > 0:
                for f in await self._claim(dec.calls, now):
                    self._spawn(self._dial(f), f"dial attempt {f.attempt_id}")
        except (psycopg.OperationalError, psycopg.InterfaceError, OSError) as exc:
            await self._lost(f"database: {exc}")

    async def _dialplan_ok(self) -> bool:
        """The campaign's dialplan can run on Asterisk now (else: not dialling, noted and
        logged once per change)."""
        v = await self.svc.checks.verdict(self.c.context, self.c.amd)
        before, self.dialplan = self.dialplan, v
        if v.ok:
            if before is not None and not before.ok:
                log.info("campaign %s: Asterisk can run context %s again; dialling resumes",
                         self.c.name, self.c.context)
            return True
        self.note = f"not dialling: {v.problem}"
        if before is None or before.ok or before.problem != v.problem:
            log.error("campaign %s: not dialling: %s", self.c.name, v.problem)
        return False

    async def _reload(self, updated: Any) -> None:
        assert self.conn is not None
        async with self._db:
            found = await db.rows(self.conn, db.CAMPAIGN_BY_ID, (self.c.id,))
        if found:
            self.c = Campaign.from_row(found[0])
            if self.stats is not None:
                self.stats.s = self.settings
        self._updated = updated

    def _input(self, now: float) -> PacerInput:
        """What the pacer needs, from the live model and the attempts in flight."""
        idle = talking = 0
        wrapping: list[float] = []
        wall = time.time()
        wrap = self.svc.wrapup(self.c.queue)
        for agent in self.svc.model.agents.values():
            if self.c.queue not in agent.memberships:
                continue
            if agent.state == "available":
                idle += 1
            elif agent.state in ("ringing", "on_call", "on_hold"):
                talking += 1
            elif agent.state == "wrapup":
                left = (agent.wrapup_until or wall) - wall
                wrapping.append(min(max(0.0, left), wrap))
        live = [f for f in self.inflight.values() if not f.orphan]
        ringing = tuple(now - f.started for f in live if f.state == "dialing")
        waiting = sum(1 for f in live if f.state == "answered")
        return PacerInput(now=now, idle=idle, talking=talking, wrapping=tuple(wrapping),
                          ringing=ringing, waiting=waiting, channels=len(live))

    # ------------------------------------------------------------------ claiming

    async def _claim(self, n: int, now: float, agent: str = "",
                     preview: bool = False) -> list[Inflight]:
        """Pick up to ``n`` due contacts; check do-not-call, dial patterns and calling
        windows now; write their attempt rows (or preview reservations)."""
        assert self.conn is not None
        c = self.c
        async with self._db, self.conn.transaction():
            cands = await db.rows(self.conn, db.CANDIDATES, {
                "campaign": c.id, "now": db.ts(now), "limit": n + 20})
            dnc: list[int] = []
            invalid: list[int] = []
            defer: list[tuple[int, float]] = []
            take: list[dict[str, Any]] = []
            for r in cands:
                if len(take) >= n:
                    break
                if r["on_dnc"]:
                    dnc.append(r["id"])
                elif not c.number_allowed(r["e164"]):
                    invalid.append(r["id"])
                else:
                    try:
                        opens = next_open(c.windows, now, r["timezone"] or c.timezone)
                    except WindowError:
                        invalid.append(r["id"])
                        continue
                    if opens is None or opens > now:
                        defer.append((r["id"], opens if opens is not None else now + 86400))
                    else:
                        take.append(r)
            if dnc:
                await self.conn.execute(db.MARK_STATUS, {"status": rules.DNC, "why": "dnc",
                                                         "ids": dnc, "now": db.ts(now)})
            if invalid:
                await self.conn.execute(db.MARK_STATUS, {
                    "status": rules.INVALID, "why": "dial patterns or time zone",
                    "ids": invalid, "now": db.ts(now)})
            if defer:
                await self.conn.execute(db.DEFER, {
                    "ids": [i for i, _ in defer], "ats": [db.ts(a) for _, a in defer],
                    "now": db.ts(now)})
            if not take:
                return []
            if preview:
                await self.conn.execute(
                    "UPDATE campaign_contacts SET status = 'preview', reserved_by = %s, "
                    "reserved_until = %s, updated_at = %s WHERE id = ANY(%s)",
                    (agent, db.ts(now + PREVIEW_HOLD), db.ts(now), [r["id"] for r in take]))
                return [Inflight(0, r["id"], r["e164"], now, "preview") for r in take]
            made = await db.rows(self.conn, db.INSERT_ATTEMPTS, {
                "tenant": c.tenant_id, "campaign": c.id, "mode": c.dial_mode,
                "now": db.ts(now), "runner": self.svc.name, "agent": agent,
                "contacts": [r["id"] for r in take],
                "nos": [int(r["attempts"]) + 1 for r in take],
                "numbers": [r["e164"] for r in take]})
            await self.conn.execute(db.MARK_DIALING, {"ids": [r["id"] for r in take],
                                                      "now": db.ts(now)})
        by_contact = {r["id"]: r for r in take}
        out = []
        for m in made:
            f = Inflight(m["id"], m["contact_id"], by_contact[m["contact_id"]]["e164"], now,
                         c.dial_mode, agent=agent)
            self.inflight[f.attempt_id] = f
            out.append(f)
        return out

    # ------------------------------------------------------------------ dialling

    async def _dial(self, f: Inflight, fields: dict[str, Any] | None = None) -> None:
        """Send the Originate of an attempt already written, and act on its response."""
        ami = self.svc.ami
        if fields is None:
            fields = self.c.originate(f.attempt_id, f.e164)
        if not ami.connected:
            await self._finish(f, rules.NOT_DIALLED, detail="AMI link down: not dialled")
            return
        self.dials += 1
        wait = self.c.ring_timeout + (60 if f.mode == "preview" else 0) + 30
        try:
            resp = await ami.originate(fields, timeout=wait)
        except AmiNotConnected as exc:
            self._orphan(f, f"AMI link lost while dialling ({exc})")
            return
        except TimeoutError:
            self._orphan(f, "no OriginateResponse in time")
            return
        except (AmiError, AmiActionError) as exc:
            await self._finish(f, rules.FAILED, detail=f"Originate refused: {exc}")
            return
        if f.attempt_id not in self.inflight:
            return  # the call's end was seen first
        reason = _int(resp.get("Reason"))
        if resp.get("Response") == "Success" or reason == rules.REASON_ANSWERED:
            await self._answered(f, resp)
        elif f.mode == "preview":
            await self._finish(f, rules.NOT_DIALLED, reason=reason,
                               detail=f"the agent's phone did not answer (Reason {reason})")
        elif reason in rules.VAGUE_REASONS:
            await self._unanswered(f, reason)
        else:
            await self._finish(f, rules.from_reason(reason), reason=reason,
                               detail=f"OriginateResponse Reason {reason}")

    async def _unanswered(self, f: Inflight, reason: int) -> None:
        """Reason 0/1: the outcome is in the hangup cause of the channel the Originate made
        (its Hangup follows the OriginateResponse); no channel at all: ``failed``."""
        if f.ended is None and self._live_call(f) is not None:
            f.reason, f.end_wait = reason, self.now + END_WAIT
            return  # _ended finishes it with the cause
        await self._finish_unanswered(f, reason, f.ended)

    async def _finish_unanswered(self, f: Inflight, reason: int,
                                 record: d.CallRecord | None) -> None:
        cause = record.hangup_cause if record is not None else None
        outcome = rules.from_failure(reason, cause)
        why = f"OriginateResponse Reason {reason}"
        if record is not None:
            why += f", hangup cause {record.hangup_cause} ({record.hangup_cause_txt})"
        elif cause is None and f.reason is not None:
            why += ", no hangup cause seen"
        await self._finish(f, outcome, reason=reason, record=record, detail=why)

    def _live_call(self, f: Inflight) -> Any:
        """The live model's call of this attempt (by its CCD_ATTEMPT variable), if up."""
        if f.call_id and f.call_id in self.svc.model.calls:
            return self.svc.model.calls[f.call_id]
        for call in self.svc.model.calls.values():
            v = call.record.variables
            if v.get("CCD_ATTEMPT") == str(f.attempt_id) and \
                    v.get("CCD_CAMPAIGN") == str(self.c.id):
                return call
        return None

    def _orphan(self, f: Inflight, why: str) -> None:
        log.warning("campaign %s attempt %d: %s; resolving it from the call's end",
                    self.c.name, f.attempt_id, why)
        f.orphan = True
        f.deadline = self.now + self.c.ring_timeout + GRACE

    async def _answered(self, f: Inflight, resp: dict[str, str]) -> None:
        uid = resp.get("Uniqueid", "")
        if uid and uid != "<unknown>":
            f.call_id = uid
            self.by_call[uid] = f.attempt_id
        f.channel = resp.get("Channel", "")
        f.ring = round(self.now - f.started, 3)
        if f.state == "dialing":
            f.state = "answered"
        await self._write(db.ANSWERED, {"id": f.attempt_id, "at": db.ts(self.now),
                                        "call_id": f.call_id, "channel": f.channel,
                                        "ring": f.ring})

    async def _write(self, sql: str, params: dict[str, Any]) -> None:
        try:
            async with self.svc.pool.connection() as conn:
                await conn.execute(sql, params)
        except (psycopg.Error, OSError) as exc:
            log.warning("campaign %s: progress not stored (%s)", self.c.name, exc)

    # ------------------------------------------------------------------ finishing

    async def _finish(self, f: Inflight, outcome: str, *, reason: int | None = None,
                      record: d.CallRecord | None = None, detail: str = "") -> None:
        """Store the outcome, plan the contact, feed the pacer."""
        if self.inflight.pop(f.attempt_id, None) is None:
            return
        if f.call_id:
            self.by_call.pop(f.call_id, None)
        self._finishing.add(f.attempt_id)
        try:
            await self._store_outcome(f, outcome, reason, record, detail)
        finally:
            self._finishing.discard(f.attempt_id)

    async def _store_outcome(self, f: Inflight, outcome: str, reason: int | None,
                             record: d.CallRecord | None, detail: str) -> None:
        now = self.now
        if reason is None and outcome in rules.LIVE:
            # the contact answered: Reason 4, even when the call's end is stored before the
            # OriginateResponse's answer (their writes race on a busy machine)
            reason = rules.REASON_ANSWERED
        talk = record.talk_seconds if record is not None else None
        agent = f.agent or (rules.record_agent(record.to_dict()) if record is not None else "")
        if self.stats is not None and outcome != rules.NOT_DIALLED and f.mode != "preview":
            live = outcome in rules.LIVE
            self.stats.record_attempt(live, f.ring if live else None)
            if live:
                self.stats.record_live(outcome in rules.ABANDONS, now)
            if outcome == rules.ANSWERED and talk is not None:
                self.stats.record_talk(talk)
        try:
            async with self.svc.pool.connection() as conn:
                plan = await db.finish_attempt(
                    conn, self.c, f.attempt_id, f.contact_id, outcome, now, reason=reason,
                    call_id=f.call_id or (record.call_id if record else ""), agent=agent,
                    ring=f.ring, talk=talk,
                    cause=record.hangup_cause if record is not None else None,
                    cause_txt=record.hangup_cause_txt if record is not None else "",
                    detail=detail)
        except (psycopg.Error, OSError) as exc:
            log.error("campaign %s attempt %d (%s): outcome not stored (%s); it will be "
                      "resolved again", self.c.name, f.attempt_id, outcome, exc)
            return
        if plan is not None:
            log.info("campaign %s attempt %d %s -> %s: %s", self.c.name, f.attempt_id,
                     f.e164, outcome, plan.why)

    # ------------------------------------------------------------------ events

    def on_event(self, e: d.DomainEvent) -> None:
        """Domain events from the bus (synchronous: work is handed to tasks)."""
        if isinstance(e, d.CallEnded):
            aid = self._attempt_of(e.call_id, e.record.variables)
            if aid is not None:
                f = self.inflight.get(aid)
                if f is not None and f.state == "dialing" and f.reason is None:
                    f.ended = e.record  # now, before any task: its OriginateResponse reads it
                self._spawn(self._ended(aid, e.record), f"call end {e.call_id}")
            else:
                self._maybe_late(e.record)
        elif isinstance(e, d.CallAnswered):
            aid = self._attempt_of(e.call_id, None)
            f = self.inflight.get(aid) if aid is not None else None
            if f is not None:
                f.state, f.agent = "connected", e.agent
                self._spawn(self._write(db.CONNECTED, {
                    "id": f.attempt_id, "at": db.ts(self.now), "agent": e.agent,
                    "call_id": e.call_id}), f"connected {e.call_id}")

    def _attempt_of(self, call_id: str, variables: dict[str, str] | None) -> int | None:
        aid = self.by_call.get(call_id)
        if aid is not None:
            return aid
        if variables is None:
            call = self.svc.model.calls.get(call_id)
            variables = call.record.variables if call is not None else {}
        if variables.get("CCD_CAMPAIGN") != str(self.c.id):
            return None
        try:
            aid = int(variables.get("CCD_ATTEMPT", ""))
        except ValueError:
            return None
        f = self.inflight.get(aid)
        if f is None:
            return None
        if not f.call_id:
            f.call_id = call_id
            self.by_call[call_id] = aid
        return aid

    async def _ended(self, aid: int, record: d.CallRecord) -> None:
        f = self.inflight.get(aid)
        if f is None:
            return
        rec = record.to_dict()
        if f.state == "dialing":
            if not f.orphan and not rules.record_answered(rec):
                if f.reason is not None:  # a vague Reason waited for this hangup cause
                    await self._finish_unanswered(f, f.reason, record)
                return  # else the OriginateResponse says why (it reads f.ended)
            outcome = rules.classify_record(f.mode, rec)
        else:  # answered (and maybe connected): the dialplan's variables and the agent say
            outcome = rules.classify_answered(f.mode, record.variables,
                                              f.agent or rules.record_agent(rec), rec)
        detail = "call ended" + (" (followed after a restart)" if f.orphan else "")
        if outcome == rules.DROPPED:
            detail = self._dropped(f, record)
        await self._finish(f, outcome, record=record, detail=detail)

    def _dropped(self, f: Inflight, record: d.CallRecord) -> str:
        """An answered contact Asterisk hung up before the call got anywhere: say so loudly,
        and have the dialplan checked again before the next call."""
        after = (record.end or 0.0) - (record.answer or record.end or 0.0)
        known = self.dialplan.problem if self.dialplan is not None and \
            not self.dialplan.ok else ""
        detail = (f"answered, then hung up by Asterisk {after:.3f} s later before reaching "
                  f"the queue or the message (hangup cause {record.hangup_cause} "
                  f"{record.hangup_cause_txt or ''}): a dialplan failure such as a missing "
                  f"application in context {self.c.context}, or Asterisk stopping; counted "
                  "as abandoned")
        log.error("campaign %s attempt %d %s: %s%s; checking the dialplan again before the "
                  "next call", self.c.name, f.attempt_id, f.e164, detail,
                  f" ({known})" if known else "")
        self.svc.checks.invalidate()
        return detail

    def _maybe_late(self, record: d.CallRecord) -> None:
        """A call of ours ended that we had marked ``unknown``: correct it."""
        if record.variables.get("CCD_CAMPAIGN") != str(self.c.id):
            return
        try:
            aid = int(record.variables.get("CCD_ATTEMPT", ""))
        except ValueError:
            return
        outcome = rules.classify_record(self.c.dial_mode, record.to_dict())

        async def fix() -> None:
            async with self.svc.pool.connection() as conn:
                if await db.correct_unknown(conn, self.c.id, aid, outcome, self.now,
                                            call_id=record.call_id,
                                            agent=rules.record_agent(record.to_dict()),
                                            talk=record.talk_seconds):
                    log.info("campaign %s attempt %d: unknown corrected to %s", self.c.name,
                             aid, outcome)

        self._spawn(fix(), f"late end {record.call_id}")

    # ------------------------------------------------------------------ resolution

    async def _resolve_open(self, now: float) -> None:
        """Open attempts this runner does not follow (left by a stopped ccd)."""
        assert self.conn is not None
        async with self._db:
            open_rows = await db.rows(self.conn, db.OPEN_ATTEMPTS, (self.c.id,))
        todo = [r for r in open_rows
                if r["id"] not in self.inflight and r["id"] not in self._finishing]
        if not todo:
            return
        live = await self._live_channels()
        for r in todo:
            f = Inflight(r["id"], r["contact_id"], r["e164"], r["created_at"].timestamp(),
                         r["mode"], state=r["state"], call_id=r["call_id"] or "",
                         channel=r["channel"] or "", agent=r["agent"] or "", orphan=True)
            f.deadline = f.started + self.c.ring_timeout + GRACE
            self.inflight[f.attempt_id] = f
            if f.call_id:
                self.by_call[f.call_id] = f.attempt_id
            await self._resolve_orphan(f, now, live)
            if f.attempt_id in self.inflight and f.call_id:
                log.info("campaign %s attempt %d: still up (call %s); followed to its end",
                         self.c.name, f.attempt_id, f.call_id)

    async def _live_channels(self) -> dict[str, tuple[str, bool]]:
        """CCD_ATTEMPT -> (Linkedid, answered) of the channels Asterisk has now (AMI
        ``Status`` with their variables)."""
        ami = self.svc.ami
        if not ami.connected:
            return {}
        try:
            resp = await ami.list_action("Status", {"Variables": "CCD_ATTEMPT,CCD_CAMPAIGN"},
                                         timeout=10.0)
        except (AmiError, TimeoutError) as exc:
            log.warning("campaign %s: AMI Status failed (%s)", self.c.name, exc)
            return {}
        out: dict[str, tuple[str, bool]] = {}
        for ev in resp.events:
            vs = dict(v.partition("=")[::2] for v in values(ev, "Variable"))
            if vs.get("CCD_CAMPAIGN") == str(self.c.id) and vs.get("CCD_ATTEMPT"):
                out[vs["CCD_ATTEMPT"]] = (ev.get("Linkedid") or ev.get("Uniqueid", ""),
                                          ev.get("ChannelState") == "6")
        return out

    def _follow(self, f: Inflight, call_id: str, answered: bool) -> None:
        f.call_id, f.orphan, f.missing_since = call_id, True, None
        if answered and f.state == "dialing":
            f.state = "answered"
        self.by_call[call_id] = f.attempt_id

    async def _resolve_orphan(self, f: Inflight, now: float,
                              live: dict[str, tuple[str, bool]] | None = None) -> None:
        """Still up (live model, AMI ``Status``): follow it; ended (call store): its outcome;
        else ``unknown`` once it cannot be ringing any more."""
        if f.call_id and f.call_id in self.svc.model.calls:
            return  # still up: its end will come
        for call in self.svc.model.calls.values():
            v = call.record.variables
            if v.get("CCD_ATTEMPT") == str(f.attempt_id) and \
                    v.get("CCD_CAMPAIGN") == str(self.c.id):
                self._follow(f, call.call_id, call.record.answer is not None)
                return
        if live is None:
            live = await self._live_channels()
        found = live.get(str(f.attempt_id))
        if found is not None:
            self._follow(f, found[0], found[1])
            return
        try:
            async with self.svc.pool.connection() as conn:
                ended = await db.rows(conn, db.ENDED_CALL, {"call_id": f.call_id,
                                                            "attempt": str(f.attempt_id)})
        except (psycopg.Error, OSError) as exc:
            log.warning("campaign %s: call store not readable (%s)", self.c.name, exc)
            return
        if ended:
            rec = d.record_from_dict(ended[0]["record"])
            f.call_id = f.call_id or rec.call_id
            await self._finish(f, rules.classify_record(f.mode, rec.to_dict()), record=rec,
                               detail="resolved from the call store after a restart")
        elif now >= f.deadline:
            await self._finish(f, rules.UNKNOWN, detail=(
                "in flight when ccd stopped; no trace in Asterisk or the call store"))

    async def _sweep(self, now: float) -> None:
        """The slower checks: orphans, lost calls, preview holds, counts, completion."""
        assert self.conn is not None
        await self._resolve_open(now)
        live: dict[str, tuple[str, bool]] | None = None
        for f in list(self.inflight.values()):
            if f.reason is not None and now >= f.end_wait and self._live_call(f) is None:
                await self._finish_unanswered(f, f.reason, f.ended)
                continue
            due = f.orphan and now >= f.deadline and f.call_id not in self.svc.model.calls
            if not due and f.call_id and f.state != "dialing" and \
                    f.call_id not in self.svc.model.calls:
                f.missing_since = f.missing_since or now
                if now - f.missing_since > 30:
                    f.orphan = True
                    f.deadline = f.missing_since + LOST_AFTER
                    due = True
            if due:
                if live is None:
                    live = await self._live_channels()
                await self._resolve_orphan(f, now, live)
        async with self._db:
            await self.conn.execute(db.RELEASE_PREVIEWS, {"campaign": self.c.id,
                                                          "now": db.ts(now)})
            counts = await db.rows(self.conn, db.CONTACT_COUNTS, {"campaign": self.c.id,
                                                                  "now": db.ts(now)})
            self.counts = {"due": sum(int(r["due"]) for r in counts),
                           **{r["status"]: int(r["n"]) for r in counts}}
            if self.state == "running" and not self.inflight:
                left = sum(self.counts.get(st, 0)
                           for st in (rules.PENDING, rules.DIALING, rules.PREVIEW))
                total = sum(int(r["n"]) for r in counts)
                if left == 0 and total > 0:
                    await self.conn.execute(db.SET_STATE, {"state": "completed", "id": self.c.id,
                                                           "now": db.ts(now)})
                    self.state = "completed"
                    log.info("campaign %s: every contact is done", self.c.name)

    # ------------------------------------------------------------------ preview

    async def preview_next(self, agent: str) -> Inflight | None:
        """Reserve the next due contact for ``agent`` (or the one it already holds)."""
        if not self.locked or self.conn is None:
            raise RuntimeError("standby")
        if not await self._dialplan_ok():
            raise RuntimeError(self.note)
        now = self.now
        async with self._db:
            held = await db.rows(self.conn, db.PREVIEW_HELD, {
                "campaign": self.c.id, "now": db.ts(now), "contact": None, "agent": agent})
        if held:
            return Inflight(0, held[0]["id"], held[0]["e164"], now, "preview")
        got = await self._claim(1, now, agent=agent, preview=True)
        return got[0] if got else None

    async def preview_dial(self, agent: str, contact_id: int, name: str) -> Inflight:
        """Dial a contact the agent holds: checks again (do-not-call, window), writes the
        attempt, then rings the agent and the dialplan dials the contact."""
        if not self.locked or self.conn is None:
            raise RuntimeError("standby")
        if not await self._dialplan_ok():
            raise RuntimeError(self.note)
        now = self.now
        c = self.c
        async with self._db, self.conn.transaction():
            found = await db.rows(self.conn, db.PREVIEW_HELD, {
                "campaign": c.id, "now": db.ts(now), "contact": contact_id, "agent": agent})
            if not found:
                raise LookupError("that contact is not reserved for this agent "
                                  "(campaign.preview.next first)")
            r = found[0]
            if r["on_dnc"]:
                await self.conn.execute(db.MARK_STATUS, {"status": rules.DNC, "why": "dnc",
                                                         "ids": [r["id"]], "now": db.ts(now)})
                raise PermissionError(f"{r['e164']} is on a do-not-call list")
            opens = next_open(c.windows, now, r["timezone"] or c.timezone)
            if opens is None or opens > now:
                await self.conn.execute(
                    "UPDATE campaign_contacts SET status = 'pending', reserved_by = '', "
                    "reserved_until = NULL, next_at = %s WHERE id = %s",
                    (db.ts(opens or now + 86400), r["id"]))
                raise PermissionError("outside the contact's calling window")
            if not c.number_allowed(r["e164"]):
                raise PermissionError(f"{r['e164']} is not allowed by the dial patterns")
            made = await db.rows(self.conn, db.INSERT_ATTEMPTS, {
                "tenant": c.tenant_id, "campaign": c.id, "mode": "preview", "now": db.ts(now),
                "runner": self.svc.name, "agent": agent, "contacts": [r["id"]],
                "nos": [int(r["attempts"]) + 1], "numbers": [r["e164"]]})
            await self.conn.execute(db.MARK_DIALING, {"ids": [r["id"]], "now": db.ts(now)})
        f = Inflight(made[0]["id"], r["id"], r["e164"], now, "preview", agent=agent)
        self.inflight[f.attempt_id] = f
        self._spawn(self._dial(f, c.originate_preview(f.attempt_id, f.e164, agent, name)),
                    f"preview dial {f.attempt_id}")
        return f

    # ------------------------------------------------------------------ status

    @property
    def blocked(self) -> Verdict | None:
        """The failed dialplan check that stops this campaign dialling (None: not blocked)."""
        return self.dialplan if self.dialplan is not None and not self.dialplan.ok else None

    def status(self) -> dict[str, Any]:
        now = self.now
        inp = self._input(now)
        flights = list(self.inflight.values())
        out: dict[str, Any] = {
            "id": self.c.id, "name": self.c.name, "tenant": self.c.tenant_slug,
            "tenant_id": self.c.tenant_id, "kind": self.c.kind, "mode": self.c.dial_mode,
            "queue": self.c.queue, "state": self.state, "dialer": self.svc.name,
            "dialling": self.locked and self.state == "running" and self.blocked is None,
            "locked": self.locked, "note": self.note,
            "dialplan": self.dialplan.to_dict() if self.dialplan is not None else None,
            "in_flight": {"ringing": sum(f.state == "dialing" and not f.orphan for f in flights),
                          "waiting": sum(f.state == "answered" for f in flights),
                          "connected": sum(f.state == "connected" for f in flights),
                          "unresolved": sum(f.orphan for f in flights)},
            "agents": {"idle": inp.idle, "busy": inp.talking, "wrapup": len(inp.wrapping),
                       "staffed": inp.idle + inp.talking + len(inp.wrapping)},
            "contacts": dict(self.counts), "dials": self.dials, "errors": self.errors,
            "decision": self.decision.to_dict() if self.decision else None,
        }
        if self.stats is not None:
            out["pacer"] = self.stats.to_dict(now)
            out["abandonment"] = out["pacer"].pop("abandonment")
        return out


def _int(v: str | None) -> int:
    try:
        return int(v or 0)
    except ValueError:
        return 0

