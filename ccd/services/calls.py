"""Call commands: hang up, transfer, recording control, originate (click-to-dial).

Targets typed by people (CLI, panel) never reach a dial string unchecked: agent
extensions must belong to the tenant, queues must exist, numbers must match the
tenant's dial patterns (digits and a leading + only).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ccd.ami.client import AmiClient
from ccd.api import ApiError
from ccd.config import Config
from ccd.model.live import Call, Channel, LiveModel
from ccd.recfiles import Refused, ensure_dirs
from ccd.services.directory import (
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    Directory,
    check_number,
    send_action,
)

log = logging.getLogger(__name__)
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: ChanSpy options: q quiet, w whisper, B barge, E exit when the spied channel hangs up
SPY_OPTIONS = {"listen": "qE", "whisper": "qwE", "barge": "qBE"}


_WHO = re.compile(r"[^A-Za-z0-9@._:+-]")


def requester(who: str) -> str:
    """``who`` as a safe ``CCD_HANGUP_BY`` value: ``<source>:<name>``, at most 64
    characters of letters, digits and ``@._:+-`` (a Setvar value must not carry a comma,
    quote or line break)."""
    cleaned = _WHO.sub("_", who.strip())[:64]
    return cleaned or "api"


def call_state(call: Call) -> str:
    """What a call is doing now, in one word."""
    if call.open_segments:
        held = any(c.held_since is not None for c in call.channels.values())
        return "on_hold" if held else "talking"
    if call.wait is not None and not call.wait.connected:
        return "ringing" if call.wait.ringing else "queued"
    if any(c.agi_script for c in call.channels.values()):
        return "ivr"
    return "active"


def call_view(call: Call, now: float) -> dict[str, Any]:
    r = call.record
    cust = call.channels.get(call.customer)
    return {"call_id": call.call_id, "direction": r.direction, "did": r.did,
            "caller_num": r.caller_num, "caller_name": r.caller_name, "queue": r.queue,
            "agent": r.agent, "agent_name": r.agent_name,
            "talking_to": [s.agent for s in call.open_segments.values()],
            "state": call_state(call), "started": r.start,
            "duration": round(now - r.start, 1) if r.start else None,
            "wait": round(now - call.wait.joined, 1) if call.wait and not call.wait.connected
            else r.queue_wait,
            "customer_channel": cust.name if cust else "",
            "recording": bool(cust and cust.recording), "variables": dict(r.variables),
            "ivr": list(r.ivr), "segments": [asdict(s) for s in r.segments]}


class CallService:
    def __init__(self, config: Config, ami: AmiClient, model: LiveModel,
                 directory: Directory, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock  # Asterisk's time (the daemon's model clock)
        self.config = config
        self.ami = ami
        self.model = model
        self.directory = directory

    async def _send(self, action: str, fields: dict[str, Any]) -> dict[str, str]:
        return await send_action(self.ami, action, fields)

    def get(self, call_id: str) -> Call:
        call = self.model.calls.get(call_id)
        if call is None:
            raise ApiError(f"no call {call_id!r} in progress (`ccd calls` lists them)",
                           EXIT_NOT_FOUND)
        return call

    def list(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [call_view(c, now) for c in self.model.calls.values()]

    async def tenant_of(self, call: Call, agent: str | None = None) -> int:
        """The call's tenant: its queue's, else the ``CCD_TENANT`` that ccd's Originates
        set, else the tenant of the agent on it."""
        rec = call.record
        q = (await self.directory.queues()).get(rec.queue)
        if q is not None:
            return q.tenant_id
        tag = rec.variables.get("CCD_TENANT", "")
        if tag.isdigit():
            return int(tag)
        who = agent or rec.agent
        if who:
            return (await self.directory.agent(who)).tenant_id
        raise ApiError(f"call {call.call_id} has no queue, tenant tag or agent to tell its "
                       "tenant by", EXIT_USAGE)

    async def hangup(self, call_id: str, requested_by: str = "api") -> dict[str, Any]:
        """Hang up the whole call (the caller's channel; Asterisk ends the rest).

        ``requested_by`` says who asked (``cli:<user>``, ``panel:<user>``, ``api``, or
        ``ccd`` for ccd itself). It goes to Asterisk first, as the channel variable
        ``CCD_HANGUP_BY`` (AMI Setvar), so that the call record names ccd's hang-up once
        Asterisk's events confirm it (commands go one way: the model learns it from the
        VarSet, never from this command).
        """
        call = self.get(call_id)
        who = requester(requested_by)
        cust = call.channels.get(call.customer)
        targets = [cust.name] if cust else [c.name for c in call.channels.values()]
        for name in targets:
            await self._send("Setvar", {"Channel": name, "Variable": "CCD_HANGUP_BY",
                                        "Value": who})
            await self._send("Hangup", {"Channel": name, "Cause": 16})
        log.info("call %s hung up (%s) on request of %s", call_id, ", ".join(targets), who)
        return {"call_id": call_id, "hung_up": targets, "requested_by": who}

    def _agent_leg(self, call: Call, agent: str | None = None) -> str:
        for uid, seg in call.open_segments.items():
            ch = call.channels.get(uid)
            if ch is not None and (agent is None or seg.agent == agent):
                return ch.name
        raise ApiError(f"call {call.call_id} is not connected to an agent", EXIT_USAGE)

    async def resolve_target(self, call: Call, target: str, tenant: int | None = None,
                             number_context: str | None = None) -> tuple[str, str]:
        """``(exten, context)`` for ``agent:X``, ``queue:NAME``, ``number:N`` or a bare value,
        looked up in ``tenant`` (default: the call's, :meth:`tenant_of`); numbers go to
        ``number_context`` (default: the click-to-dial context)."""
        dp = self.config.dialplan
        kind, _, value = target.partition(":")
        if not value:
            kind, value = "", target
        if tenant is None:
            tenant = await self.tenant_of(call)
        if kind in ("agent", "") and not value.startswith("+"):
            try:
                a = await self.directory.agent(value, tenant)
            except ApiError:
                if kind == "agent":
                    raise
            else:
                return a.extension or a.interface.split("/", 1)[1], dp.agent_context
        if kind in ("queue", ""):
            queues = await self.directory.queues()
            q = queues.get(value)
            if q is not None and q.tenant_id == tenant:
                return q.name, dp.queue_context
            if kind == "queue":
                raise ApiError(f"no queue {value!r} for this tenant", EXIT_NOT_FOUND)
        number = await check_number(self.directory, tenant, value)
        return number, number_context or dp.outbound_context

    async def transfer(self, call_id: str, target: str, attended: bool = False,
                       agent: str | None = None,
                       tenant_id: int | None = None) -> dict[str, Any]:
        """Blind (``BlindTransfer``) or attended (``Atxfer``) transfer of the agent's leg;
        ``tenant_id`` (the panel user's) is the tenant whose agents, queues and dial
        patterns the target must be in."""
        call = self.get(call_id)
        leg = self._agent_leg(call, agent)
        if tenant_id is None:
            tenant_id = await self.tenant_of(call, agent)
        dp = self.config.dialplan
        # a caller sent to a number goes back to a queue if it cannot be reached; an agent
        # consulting a number simply returns to the caller
        out = dp.consult_out_context if attended else dp.transfer_out_context
        exten, context = await self.resolve_target(call, target, tenant_id, out)
        action = "Atxfer" if attended else "BlindTransfer"
        await self._send(action, {"Channel": leg, "Exten": exten, "Context": context})
        log.info("%s of call %s (%s) to %s@%s", action, call_id, leg, exten, context)
        result = {"call_id": call_id, "transfer": "attended" if attended else "blind",
                  "channel": leg, "exten": exten, "context": context, "state": "requested"}
        if context == dp.transfer_out_context:
            result["state"] = await self._number_outcome(call, exten)
        return result

    async def _number_outcome(self, call: Call, number: str) -> str:
        """Wait briefly for Asterisk's first word on a blind transfer to a number.

        The dialplan leaves ``CCD_TRANSFER_RESULT`` on the caller's channel (``dialling``,
        then Dial's DIALSTATUS): a number that fails at once is reported as failed, with
        the caller back in the queue, instead of a transfer "done" that dropped nobody
        knows where."""
        end = time.monotonic() + self.config.dialplan.confirm_timeout
        status = ""
        while time.monotonic() < end:
            status = call.record.variables.get("CCD_TRANSFER_RESULT", "")
            if status and status != "dialling":
                break
            if call.call_id not in self.model.calls:
                return "ended"
            await asyncio.sleep(0.05)
        if status == "ANSWER":
            return "answered"
        if status in ("", "dialling"):
            return "ringing" if status else "requested"
        queue = call.record.variables.get("QNAME") or call.record.queue or "the queue"
        raise ApiError(f"transfer to {number} failed ({status}): the caller was told and is "
                       f"back in {queue}", EXIT_ERROR)

    def _agent_channel(self, call: Call, agent: str | None = None) -> Channel:
        """The agent's own channel in the call (talking, or on hold)."""
        for uid, seg in call.open_segments.items():
            ch = call.channels.get(uid)
            if ch is not None and (agent is None or seg.agent == agent):
                return ch
        for ch in call.channels.values():
            if ch.held_since is not None and not ch.is_local and ch.uniqueid != call.customer \
                    and (agent is None or ch.interface == agent):
                return ch
        raise ApiError(f"call {call.call_id} is not connected to an agent", EXIT_USAGE)

    async def hold(self, call_id: str, on: bool, agent: str | None = None) -> dict[str, Any]:
        """Hold / resume the caller inside Asterisk, whatever the agent's phone is.

        Hold is an attended transfer of the agent's leg to ``hold_exten@hold_context``
        (AMI ``Atxfer``): Asterisk plays music on hold to the caller and reports ``Hold`` on
        the agent's channel; resume is ``CancelAtxfer`` (``Unhold``). The answer is what
        Asterisk confirmed within ``confirm_timeout``, never an optimistic "ok"."""
        call = self.get(call_id)
        ch = self._agent_channel(call, agent)
        held = ch.held_since is not None
        if held == on:
            return {"call_id": call_id, "agent": ch.interface, "hold": on, "already": True}
        dp = self.config.dialplan
        if on:
            for var, value in (("__CCD_HOLD_AGENT", ch.name), ("__CCD_HOLD_CALL", call_id),
                               ("__CCD_HOLD_QUEUE", call.record.queue)):
                await self._send("Setvar", {"Channel": ch.name, "Variable": var,
                                            "Value": value})
            await self._send("Atxfer", {"Channel": ch.name, "Exten": dp.hold_exten,
                                        "Context": dp.hold_context})
        else:
            await self._send("CancelAtxfer", {"Channel": ch.name})
        line = f"Local/{dp.hold_exten}@{dp.hold_context}-"

        def done() -> bool:
            if ch.uniqueid not in self.model.channels or (ch.held_since is not None) != on:
                return False
            # held means the agent is on the hold line (only then can it be cancelled)
            return not on or any(c.name.startswith(line) and c.bridge
                                 for c in call.channels.values())

        end = time.monotonic() + dp.confirm_timeout
        while time.monotonic() < end:
            if done():
                break
            await asyncio.sleep(0.05)
        else:
            what = "hold" if on else "resume"
            raise ApiError(f"Asterisk did not confirm the {what} of call {call_id} within "
                           f"{dp.confirm_timeout:g} s (no {'Hold' if on else 'Unhold'} event)",
                           EXIT_ERROR)
        log.info("call %s %s by ccd (%s)", call_id, "held" if on else "resumed", ch.name)
        return {"call_id": call_id, "agent": ch.interface, "hold": on, "confirmed": True}

    def recording_path(self, tenant_slug: str, call_id: str, ts: float) -> Path:
        """``<dir>/<tenant>/<YYYY>/<MM>/<DD>/<call id>.wav``; ids come from Asterisk but are
        still checked before they become a file name."""
        if not SAFE_NAME.fullmatch(call_id) or not SAFE_NAME.fullmatch(tenant_slug):
            raise ApiError(f"refusing a recording name built from {call_id!r}", EXIT_USAGE)
        day = datetime.fromtimestamp(ts, UTC)
        root = Path(os.path.abspath(self.config.recording.dir))  # Asterisk needs it absolute
        return (root / tenant_slug / f"{day:%Y}" / f"{day:%m}"
                / f"{day:%d}" / f"{call_id}.{self.config.recording.format}")

    async def _prepare_dir(self, path: Path) -> None:
        """Create the recording's directory tree with ``recording.dir_mode`` (0750) before
        MixMonitor starts, so Asterisk does not create it with its own umask."""
        rc = self.config.recording
        try:
            made = await asyncio.to_thread(ensure_dirs, rc.dir, path.parent, rc.dir_mode_bits)
        except (OSError, Refused) as exc:
            log.warning("cannot create the recording directory %s (%s); Asterisk will create "
                        "it with its own umask", path.parent, exc)
            return
        if made:
            log.debug("created %s (mode %s)", ", ".join(map(str, made)), rc.dir_mode)

    async def record(self, call_id: str, what: str) -> dict[str, Any]:
        """``start`` / ``stop`` / ``pause`` / ``resume`` the call's recording."""
        call = self.get(call_id)
        cust = call.channels.get(call.customer)
        if cust is None:
            raise ApiError(f"call {call_id} has no caller channel left", EXIT_USAGE)
        if what == "start":
            if cust.recording:
                return {"call_id": call_id, "recording": cust.recording, "already": True}
            q = (await self.directory.queues()).get(call.record.queue)
            slug = q.tenant_slug if q else "default"
            path = self.recording_path(slug, call_id, time.time())
            await self._prepare_dir(path)
            await self._send("MixMonitor", {"Channel": cust.name, "File": str(path)})
            return {"call_id": call_id, "recording": str(path)}
        if not cust.recording:
            raise ApiError(f"call {call_id} is not being recorded", EXIT_USAGE)
        if what == "stop":
            await self._send("StopMixMonitor", {"Channel": cust.name})
        elif what in ("pause", "resume"):
            await self._send("MixMonitorMute", {"Channel": cust.name, "Direction": "both",
                                                "State": 1 if what == "pause" else 0})
        else:
            raise ApiError(f"unknown recording command {what!r}", EXIT_USAGE)
        return {"call_id": call_id, "recording": cust.recording, "done": what}

    async def originate(self, agent_ident: str, number: str,
                        tenant_id: int | None = None) -> dict[str, Any]:
        """Click-to-dial: ring the agent's phone, then dial the number from it."""
        a = await self.directory.agent(agent_ident, tenant_id)
        number = await check_number(self.directory, a.tenant_id, number)
        fields = {"Channel": a.interface, "Context": self.config.dialplan.outbound_context,
                  "Exten": number, "Priority": 1, "Async": "true", "Timeout": 30000,
                  "CallerID": f"{number} <{number}>",
                  "Variable": [f"CCD_AGENT={a.interface}", f"CCD_TENANT={a.tenant_id}"]}
        resp = await self._send("Originate", fields)
        return {"agent": a.interface, "number": number, "action_id": resp.get("ActionID", ""),
                "message": resp.get("Message", "")}

    async def spy(self, agent_ident: str, supervisor_ident: str, mode: str = "listen",
                  tenant_id: int | None = None) -> dict[str, Any]:
        """Listen, whisper or barge on an agent's call: ChanSpy via Originate to the
        supervisor's phone, spying on exactly the agent's current channel."""
        if mode not in SPY_OPTIONS:
            raise ApiError(f"mode must be one of {', '.join(SPY_OPTIONS)}", EXIT_USAGE)
        agent = await self.directory.agent(agent_ident, tenant_id)
        sup = await self.directory.agent(supervisor_ident, tenant_id)
        if sup.tenant_id != agent.tenant_id:
            raise ApiError("supervisor and agent are in different tenants", EXIT_USAGE)
        channel = ""
        for call in self.model.calls.values():
            for uid, seg in call.open_segments.items():
                ch = call.channels.get(uid)
                if seg.agent == agent.interface and ch is not None:
                    channel = ch.name
        if not channel:
            raise ApiError(f"{agent.name} ({agent.interface}) is not on a call", EXIT_NOT_FOUND)
        resp = await self._send("Originate", {
            "Channel": sup.interface, "Application": "ChanSpy",
            "Data": f"{channel},{SPY_OPTIONS[mode]}", "Async": "true", "Timeout": 30000,
            "CallerID": f"{mode} {agent.name} <{agent.extension or 'spy'}>",
            "Variable": [f"CCD_SPY_MODE={mode}", f"CCD_SPY_AGENT={agent.interface}",
                         f"CCD_TENANT={agent.tenant_id}"]})
        return {"agent": agent.interface, "supervisor": sup.interface, "mode": mode,
                "channel": channel, "action_id": resp.get("ActionID", "")}
