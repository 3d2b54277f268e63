"""Agent commands: login, logout, pause, unpause, and re-login after an Asterisk restart.

Commands only send AMI actions; the agent's state changes when Asterisk's events come
back (a pause from a phone feature code and one from the CLI end in the same state).
Each command then waits briefly for that confirmation so the caller can report it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ccd.ami.client import AmiClient
from ccd.api import ApiError
from ccd.model.live import Agent, LiveModel
from ccd.services.directory import EXIT_NOT_FOUND, EXIT_USAGE, Directory, send_action

log = logging.getLogger(__name__)


def agent_view(agent: Agent | None, now: float) -> dict[str, Any]:
    """The live state of one agent as the CLI and panel show it."""
    if agent is None:
        return {"state": "logged_out", "reason": "", "since": None, "queues": [], "call_id": ""}
    return {"state": agent.state, "reason": agent.reason, "paused": agent.paused,
            "since": agent.since, "in_state": round(now - agent.since, 1) if agent.since else None,
            "queues": sorted(agent.memberships), "call_id": agent.call_id}


class AgentService:
    def __init__(self, ami: AmiClient, model: LiveModel, directory: Directory,
                 confirm_timeout: float = 3.0, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # Asterisk's time (the daemon's model clock)
        self.ami = ami
        self.model = model
        self.directory = directory
        self.confirm_timeout = confirm_timeout

    async def _send(self, action: str, fields: dict[str, Any],
                    ok_errors: tuple[str, ...] = ()) -> dict[str, str]:
        return await send_action(self.ami, action, fields, ok_errors)

    async def _confirm(self, interface: str, pred: Any) -> dict[str, Any]:
        end = time.monotonic() + self.confirm_timeout
        while True:
            agent = self.model.agents.get(interface)
            if pred(agent) or time.monotonic() > end:
                view = agent_view(agent, self.clock())
                view["confirmed"] = bool(pred(agent))
                return view
            await asyncio.sleep(0.05)

    async def login(self, ident: str, tenant_id: int | None = None) -> dict[str, Any]:
        """Add the agent's interface to each of its queues (QueueAdd)."""
        a = await self.directory.agent(ident, tenant_id)
        if not a.skills:
            raise ApiError(f"agent {a.name} ({a.interface}) has no queues; give it skills "
                           "with `ccd agents add ... --queue NAME[:PENALTY]`", EXIT_USAGE)
        for queue, penalty in a.skills:
            await self._send("QueueAdd", {"Queue": queue, "Interface": a.interface,
                                          "MemberName": a.name, "StateInterface": a.interface,
                                          "Penalty": penalty, "Paused": "false"},
                             ok_errors=("Already there",))
        wanted = {q for q, _ in a.skills}
        view = await self._confirm(a.interface, lambda ag: ag is not None
                                   and wanted <= set(ag.memberships))
        log.info("agent %s (%s) login: %s", a.name, a.interface, view["state"])
        return {"agent": a.interface, "name": a.name, **view}

    async def logout(self, ident: str, tenant_id: int | None = None) -> dict[str, Any]:
        """Remove the agent's interface from every queue it is in (QueueRemove)."""
        a = await self.directory.agent(ident, tenant_id)
        live = self.model.agents.get(a.interface)
        queues = set(live.memberships) if live else set()
        queues |= {q for q, _ in a.skills}
        for queue in sorted(queues):
            await self._send("QueueRemove", {"Queue": queue, "Interface": a.interface},
                             ok_errors=("Not there", "No such queue"))
        view = await self._confirm(a.interface, lambda ag: ag is None or not ag.memberships)
        log.info("agent %s (%s) logout", a.name, a.interface)
        return {"agent": a.interface, "name": a.name, **view}

    async def pause(self, ident: str, reason: str, tenant_id: int | None = None
                    ) -> dict[str, Any]:
        """Pause the agent in all its queues with a reason code from the configured list."""
        a = await self.directory.agent(ident, tenant_id)
        reasons = await self.directory.pause_reasons(a.tenant_id)
        if reason not in reasons:
            raise ApiError(f"unknown pause reason {reason!r}; use one of: "
                           + ", ".join(sorted(reasons)), EXIT_USAGE)
        self._require_logged_in(a.interface, a.name)
        await self._send("QueuePause", {"Interface": a.interface, "Paused": "true",
                                        "Reason": reason})
        view = await self._confirm(a.interface, lambda ag: ag is not None and ag.paused
                                   and ag.pause_reason == reason)
        return {"agent": a.interface, "name": a.name, **view}

    async def unpause(self, ident: str, tenant_id: int | None = None) -> dict[str, Any]:
        a = await self.directory.agent(ident, tenant_id)
        self._require_logged_in(a.interface, a.name)
        await self._send("QueuePause", {"Interface": a.interface, "Paused": "false"})
        view = await self._confirm(a.interface, lambda ag: ag is not None and not ag.paused)
        return {"agent": a.interface, "name": a.name, **view}

    def _require_logged_in(self, interface: str, name: str) -> None:
        live = self.model.agents.get(interface)
        if live is None or not live.memberships:
            raise ApiError(f"agent {name} ({interface}) is not logged in", EXIT_NOT_FOUND)

    async def relog(self) -> dict[str, int]:
        """Re-add agents ccd knows are logged in but Asterisk forgot (restart), with pauses.

        Called after every resync. Dynamic queue members do not survive an Asterisk
        restart; ccd's open agent sessions say who should be there. A paused agent is
        re-added paused (QueueAdd with Paused and Reason); one whose memberships are still
        there but not paused gets a QueuePause. Counts are of what Asterisk accepted:
        ``readded`` memberships, ``repaused`` agents whose pause was restored.
        """
        try:
            sessions = await self.directory.open_sessions()
        except Exception as exc:  # database down: nothing to compare against now
            log.warning("cannot re-add agents after resync: %s", exc)
            return {"readded": 0, "repaused": 0}
        readded = repaused = 0
        for s in sessions:
            try:
                a = await self.directory.agent(s["interface"])
            except ApiError:
                continue
            paused, reason = bool(s["paused"]), s["pause_reason"] or None
            live = self.model.agents.get(a.interface)
            have = set(live.memberships) if live else set()
            added = there = 0
            for queue, penalty in [(q, p) for q, p in a.skills if q not in have]:
                try:
                    resp = await self._send("QueueAdd", {
                        "Queue": queue, "Interface": a.interface, "MemberName": a.name,
                        "StateInterface": a.interface, "Penalty": penalty,
                        "Paused": "true" if paused else "false", "Reason": reason},
                        ok_errors=("Already there",))
                except ApiError as exc:
                    log.error("re-adding %s to %s failed: %s", a.interface, queue, exc)
                    continue
                if resp.get("Response") == "Success":
                    added += 1
                else:  # "Already there": the model had not seen it yet
                    there += 1
            readded += added
            restored = paused and added > 0
            if paused and (have or there) and (live is None or not live.paused):
                try:  # memberships Asterisk kept (or we could not add) lost the pause
                    await self._send("QueuePause", {"Interface": a.interface,
                                                    "Paused": "true", "Reason": reason})
                    restored = True
                except ApiError as exc:
                    log.error("restoring the pause of %s failed: %s", a.interface, exc)
            repaused += restored
        if readded or repaused:
            log.info("after resync: re-added %d queue memberships, restored %d pauses",
                     readded, repaused)
        return {"readded": readded, "repaused": repaused}
