"""Attach the services, live statistics and scheduled jobs to a running daemon."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ccd.api import ApiError
from ccd.campaigns.service import CampaignService
from ccd.config import Config
from ccd.daemon import Daemon
from ccd.heap import settle_heap
from ccd.jobs import stats as stats_job
from ccd.jobs.retention import run_retention
from ccd.model.stats import StatsCollector, interval_start
from ccd.recfiles import Refused, ensure_dirs
from ccd.services.agents import AgentService, agent_view
from ccd.services.calls import CallService
from ccd.services.directory import Directory
from ccd.services.recording import RecordingPolicy
from ccd.store.db import connect

log = logging.getLogger(__name__)


def _str(params: dict[str, Any], key: str) -> str:
    v = params.get(key)
    if not isinstance(v, str) or not v:
        raise ApiError(f"missing parameter {key!r}", 2)
    return v


class Services:
    """Everything the CLI and the panel can ask the daemon to do."""

    def __init__(self, config: Config, daemon: Daemon, url: str) -> None:
        self.config = config
        self.daemon = daemon
        self.url = url
        self.directory = Directory(daemon.pool)
        self.agents = AgentService(daemon.client, daemon.model, self.directory,
                                   clock=daemon.model_now)
        self.calls = CallService(config, daemon.client, daemon.model, self.directory,
                                 clock=daemon.model_now)
        self.recording = RecordingPolicy(self.calls)
        self.live_stats = StatsCollector()
        self.stats_day = 0.0
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.campaigns = CampaignService(config, daemon, url, self.scheduler)

    async def sync_queue_settings(self) -> None:
        """Wrap-up times and SL thresholds per queue from the database into the live model
        and statistics (the same values as queues.conf, where Asterisk enforces wrap-up),
        and the agents' interfaces."""
        try:
            queues = await self.directory.queues(refresh=True)
        except Exception as exc:
            log.warning("queue settings not refreshed (database: %s)", exc)
            return
        for name, q in queues.items():
            if q.wrapup_seconds:
                self.daemon.model.config.wrapup[name] = float(q.wrapup_seconds)
            self.live_stats.sl_threshold[name] = float(q.sl_threshold_seconds)
        try:  # an Originate of a known agent's phone is that agent's call (whoever sent it);
            # an adopted channel called on one of the DIDs is an inbound call
            agents = await self.directory.agents()
            dids = await self.directory.dids()
        except Exception as exc:
            log.warning("agent interfaces and DIDs not refreshed (database: %s)", exc)
            return
        self.daemon.model.config.agent_interfaces = frozenset(a["interface"] for a in agents)
        self.daemon.model.config.dids = frozenset(dids)

    async def start(self) -> None:
        d = self.daemon
        await self.sync_queue_settings()
        d.bus.subscribe("recording", self.recording)
        d.bus.subscribe("live-stats", self._live_stats)
        d.resync_hooks.append(self.agents.relog)
        d.resync_hooks.append(self.recording.after_resync)
        await self._seed_stats()
        for name, fn in self._methods().items():
            d.api.register(name, fn)
        self.scheduler.add_job(self.retention, "cron", hour=self.config.recording.retention_hour,
                               minute=17, id="retention", max_instances=1, coalesce=True)
        await self.prepare_recording_dirs()
        self.scheduler.add_job(self.prepare_recording_dirs, "cron", hour=23, minute=40,
                               id="recording-dirs", max_instances=1, coalesce=True)
        self.scheduler.add_job(self.refresh_stats, "interval", minutes=5, id="stats",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.sync_queue_settings, "interval", minutes=1,
                               id="queue-settings", max_instances=1, coalesce=True)
        if self.config.runtime.heap_settle_interval > 0:
            self.scheduler.add_job(self.settle_heap, "interval",
                                   seconds=self.config.runtime.heap_settle_interval,
                                   id="heap-settle", max_instances=1, coalesce=True)
        for name, fn in self.campaigns.methods().items():
            d.api.register(name, fn)
        await self.campaigns.start()
        self.scheduler.start()

    async def stop(self) -> None:
        await self.campaigns.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def settle_heap(self) -> None:
        """Freeze what became long-lived since the last settle (:mod:`ccd.heap`)."""
        s = settle_heap()
        log.debug("heap settled: %d objects frozen, %d collected, %.0f ms", s.frozen,
                  s.collected, s.seconds * 1000)

    # ------------------------------------------------------------------ statistics

    def _live_stats(self, event: Any) -> None:
        if not math.isfinite(event.ts):
            return
        day = interval_start(event.ts, 86400)
        if day > self.stats_day:  # a new UTC day: today's figures start from zero
            self.live_stats = StatsCollector(dict(self.live_stats.sl_threshold),
                                             window=(day, day + 86400))
            self.stats_day = day
        self.live_stats.feed(event)

    async def _seed_stats(self) -> None:
        """Today's figures so far, from the stored events (the daemon may have restarted)."""
        self.stats_day = interval_start(time.time(), 86400)
        start = datetime.fromtimestamp(self.stats_day, UTC)
        try:
            def load() -> StatsCollector:
                with connect(self.url, application_name="ccd-stats") as conn:
                    st = StatsCollector(stats_job.thresholds(conn),
                                        window=(self.stats_day, self.stats_day + 86400))
                    st.feed_all(stats_job.load_events(conn, start, start + timedelta(days=1)))
                    return st
            self.live_stats = await asyncio.to_thread(load)
        except Exception as exc:
            log.warning("today's statistics start from zero (database: %s)", exc)
            self.live_stats = StatsCollector(dict(self.live_stats.sl_threshold),
                                             window=(self.stats_day, self.stats_day + 86400))

    async def refresh_stats(self) -> int:
        now = datetime.now(UTC)
        start = datetime.fromtimestamp(interval_start(now.timestamp()) - 3600, UTC)
        return await asyncio.to_thread(stats_job.refresh, self.url, start, now)

    async def prepare_recording_dirs(self) -> int:
        """``<recording.dir>/<slug>/YYYY/MM/DD`` of today and tomorrow (UTC) for every tenant,
        with ``recording.dir_mode``: recordings the dialplan starts by itself (the safety net)
        then land in directories ccd made, not ones Asterisk made with its umask."""
        rc = self.config.recording
        try:
            slugs = await self.directory.tenant_slugs()
        except Exception as exc:
            log.warning("recording directories not prepared (database: %s)", exc)
            return 0
        now = datetime.now(UTC)
        made = 0
        for slug in slugs:
            for day in (now, now + timedelta(days=1)):
                d = rc.dir / slug / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"
                try:
                    made += len(await asyncio.to_thread(ensure_dirs, rc.dir, d,
                                                        rc.dir_mode_bits))
                except (OSError, Refused) as exc:
                    log.warning("cannot create the recording directory %s: %s", d, exc)
        return made

    async def retention(self, dry_run: bool = False) -> dict[str, Any]:
        return await asyncio.to_thread(run_retention, self.url, None, dry_run,
                                       self.config.recording.dir)

    def queues_view(self) -> list[dict[str, Any]]:
        now = self.daemon.model_now()
        model = self.daemon.model
        rows = []
        for name, q in sorted(model.queues.items()):
            members = [a for a in model.agents.values() if name in a.memberships]
            tot = self.live_stats.totals(name)
            rows.append({
                "queue": name, "waiting": len(q.waiting),
                "longest_wait": round(now - min(q.waiting.values()), 1) if q.waiting else 0.0,
                "available": sum(a.state == "available" for a in members),
                "busy": sum(a.state in ("ringing", "on_call", "on_hold", "wrapup")
                            for a in members),
                "paused": sum(a.state == "paused" for a in members),
                "logged_in": len(members),
                "offered_today": tot.offered, "answered_today": tot.answered,
                "abandoned_today": tot.abandoned, "sl_today": tot.service_level,
                "asa_today": tot.asa})
        return rows

    async def agents_view(self, tenant_id: int | None = None) -> list[dict[str, Any]]:
        now = self.daemon.model_now()
        rows = []
        try:
            known = await self.directory.agents(tenant_id)
        except Exception as exc:
            log.warning("agents list without the database: %s", exc)
            known = []
        seen = set()
        for a in known:
            seen.add(a["interface"])
            live = self.daemon.model.agents.get(a["interface"])
            rows.append({"id": a["id"], "tenant": a["tenant"], "name": a["name"],
                         "agent": a["interface"], "extension": a["extension"],
                         "skills": a["skills"], **agent_view(live, now)})
        if tenant_id is None:
            for iface, live in sorted(self.daemon.model.agents.items()):
                if iface not in seen:
                    rows.append({"id": None, "tenant": "", "name": live.name, "agent": iface,
                                 "extension": "", "skills": "", **agent_view(live, now)})
        return rows

    # ------------------------------------------------------------------ API

    def _methods(self) -> dict[str, Any]:
        ag, calls = self.agents, self.calls

        async def agents_list(p: dict[str, Any]) -> Any:
            return await self.agents_view(p.get("tenant_id"))

        async def agent_cmd(p: dict[str, Any]) -> Any:
            what, ident = _str(p, "action"), _str(p, "agent")
            if what == "login":
                return await ag.login(ident)
            if what == "logout":
                return await ag.logout(ident)
            if what == "pause":
                return await ag.pause(ident, _str(p, "reason"))
            if what == "unpause":
                return await ag.unpause(ident)
            raise ApiError(f"unknown agent action {what!r}", 2)

        async def queues_list(_: dict[str, Any]) -> Any:
            return self.queues_view()

        async def calls_list(_: dict[str, Any]) -> Any:
            return calls.list()

        async def call_cmd(p: dict[str, Any]) -> Any:
            what, call_id = _str(p, "action"), _str(p, "call_id")
            if what == "hangup":
                return await calls.hangup(call_id, str(p.get("requested_by") or "api"))
            if what == "transfer":
                return await calls.transfer(call_id, _str(p, "target"),
                                            attended=bool(p.get("attended")),
                                            agent=p.get("agent"), tenant_id=p.get("tenant_id"))
            if what == "record":
                return await calls.record(call_id, _str(p, "what"))
            if what in ("hold", "unhold"):
                return await calls.hold(call_id, what == "hold", p.get("agent"))
            raise ApiError(f"unknown call action {what!r}", 2)

        async def originate(p: dict[str, Any]) -> Any:
            return await calls.originate(_str(p, "agent"), _str(p, "number"))

        async def spy(p: dict[str, Any]) -> Any:
            return await calls.spy(_str(p, "agent"), _str(p, "supervisor"),
                                   str(p.get("mode") or "listen"), p.get("tenant_id"))

        async def pause_reasons(p: dict[str, Any]) -> Any:
            return await self.directory.pause_reasons(p.get("tenant_id"))

        async def retention(p: dict[str, Any]) -> Any:
            return await self.retention(bool(p.get("dry_run")))

        async def refresh(_: dict[str, Any]) -> Any:
            return {"rows": await self.refresh_stats()}

        return {"agents": agents_list, "agent": agent_cmd, "queues": queues_list,
                "calls": calls_list, "call": call_cmd, "originate": originate, "spy": spy,
                "pause_reasons": pause_reasons, "retention": retention,
                "stats.refresh": refresh}
