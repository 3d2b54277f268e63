"""The simulator's control port: fault injection and call control from another process.

One command per line, answered with one JSON line. Commands are either plain words (for
``nc``/``telnet``) or a JSON object with ``"cmd"``::

    status                          {"ok": true, "ami_port": 5038, "up": true, ...}
    drop [abort]                    close every AMI connection (abort: TCP RST)
    restart [downtime]              core restart now (downtime in real seconds, default 0.5)
    stop | start                    core stop now / start again
    stall [on|off]                  stop answering and sending on AMI (default on)
    slow <seconds>                  delay each AMI frame by that many real seconds (0 = off)
    call <endpoint> <exten> [num] [name]   a phone calls an extension -> {"channel": ...}
    hangup <channel|endpoint>       the phone hangs up (BYE)
    answer <endpoint>               a ringing phone picks up
    press <channel> <digits>        the caller presses keys
    register <endpoint> on|off      the phone registers / loses its contact
    channels                        the live channels

JSON form: ``{"cmd": "restart", "downtime": 1.0}``, ``{"cmd": "call", "from": "2000",
"to": "5551000"}``. Errors answer ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ccd.sim.simulator import Simulator

log = logging.getLogger(__name__)

MAX_LINE = 4096


class ControlError(Exception):
    """A control command that cannot be done; the message goes back to the client."""


class ControlServer:
    """TCP control port of one simulator."""

    def __init__(self, sim: Simulator, host: str, port: int) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._client, self.host, self.port, limit=MAX_LINE
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._clients):
                w.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    writer.write(b'{"ok": false, "error": "line too long"}\n')
                    break
                if not line:
                    break
                text = line.decode("utf-8", "replace").strip()
                if not text:
                    continue
                try:
                    result = await self.execute(parse(text))
                    reply: dict[str, Any] = {"ok": True, **result}
                except ControlError as exc:
                    reply = {"ok": False, "error": str(exc)}
                except Exception as exc:
                    log.exception("control command %r failed", text)
                    reply = {"ok": False, "error": f"internal error: {exc}"}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    async def execute(self, req: dict[str, Any]) -> dict[str, Any]:
        """Run one parsed command; returns the reply's fields."""
        sim = self.sim
        cmd = str(req.get("cmd", "")).lower()
        if cmd == "status":
            eng = sim.engine
            return {
                "up": not sim.down,
                "ami_host": sim.ami_host,
                "ami_port": sim.ami_port,
                "sessions": len(sim.ami.sessions),
                "channels": len(eng.channels),
                "stalled": sim.ami.faults.stalled,
                "delay": sim.ami.faults.delay,
                "uptime": eng.uptime(),
                "time_scale": sim.clock.scale,
            }
        if cmd == "drop":
            return {"dropped": sim.drop_links(abort=bool(req.get("abort")))}
        if cmd == "restart":
            await sim.restart(float(req.get("downtime", 0.5)))
            return {}
        if cmd == "stop":
            await sim.shutdown()
            return {}
        if cmd == "start":
            await sim.boot()
            return {}
        if cmd == "stall":
            sim.stall(_flag(req.get("on", True)))
            return {"stalled": sim.ami.faults.stalled}
        if cmd == "slow":
            sim.slow(float(req.get("seconds", 0.0)))
            return {"delay": sim.ami.faults.delay}
        if cmd == "call":
            caller = None
            if req.get("num") or req.get("name"):
                caller = (str(req.get("name", "")), str(req.get("num", "")))
            try:
                ch = sim.call(str(req["from"]), str(req["to"]), caller=caller)
            except KeyError as exc:
                raise ControlError(f"missing or unknown {exc}") from None
            return {"channel": ch.name, "uniqueid": ch.uniqueid}
        if cmd == "hangup":
            target = str(req.get("channel", ""))
            ch = sim.engine.find_channel(target)
            if ch is not None and ch.endpoint:
                sim.phone(ch.endpoint).hangup(ch)
                return {"channel": ch.name}
            phone = sim.engine.phones.get(target)
            if phone is None or not phone.hangup():
                raise ControlError(f"no call to hang up for {target!r}")
            return {}
        if cmd == "answer":
            phone = sim.engine.phones.get(str(req.get("endpoint", "")))
            if phone is None or not phone.answer():
                raise ControlError("no ringing call on that phone")
            return {}
        if cmd == "press":
            ch = sim.engine.find_channel(str(req.get("channel", "")))
            if ch is None or not ch.endpoint:
                raise ControlError("no such channel")
            sim.phone(ch.endpoint).press(ch, str(req.get("digits", "")))
            return {}
        if cmd == "register":
            phone = sim.engine.phones.get(str(req.get("endpoint", "")))
            if phone is None:
                raise ControlError("no such endpoint")
            phone.set_registered(_flag(req.get("on", True)))
            return {}
        if cmd == "channels":
            return {
                "channels": [
                    {
                        "name": c.name,
                        "state": c.state_desc,
                        "context": c.context,
                        "exten": c.exten,
                        "application": c.appl,
                        "bridge": c.bridge.uniqueid if c.bridge else "",
                    }
                    for c in sorted(sim.engine.channels.values(), key=lambda c: c.name)
                ]
            }
        raise ControlError(f"unknown command {cmd!r}")


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("on", "yes", "true", "1")


_WORDS = {
    "drop": ["abort"],
    "restart": ["downtime"],
    "stall": ["on"],
    "slow": ["seconds"],
    "call": ["from", "to", "num", "name"],
    "hangup": ["channel"],
    "answer": ["endpoint"],
    "press": ["channel", "digits"],
    "register": ["endpoint", "on"],
}


def parse(text: str) -> dict[str, Any]:
    """A command line (JSON object or words) as a dict with ``cmd``."""
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ControlError(f"bad JSON: {exc}") from None
        if not isinstance(obj, dict) or "cmd" not in obj:
            raise ControlError('a JSON command needs "cmd"')
        return obj
    words = text.split()
    cmd = words[0].lower()
    req: dict[str, Any] = {"cmd": cmd}
    names = _WORDS.get(cmd, [])
    for name, value in zip(names, words[1:], strict=False):
        req[name] = value
    if cmd == "drop" and len(words) > 1:
        req["abort"] = words[1].lower() == "abort"
    if cmd == "call" and len(words) > 5:
        req["name"] = " ".join(words[4:])
    return req
