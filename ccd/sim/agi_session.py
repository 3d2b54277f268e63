"""The simulator's side of a FastAGI session: an :class:`~ccd.sim.agi_channel.AgiChannel`.

The FastAGI client (:mod:`ccd.sim.agi_client`) speaks the wire protocol to ccd; this object
turns each command into what the simulated channel does and into the AMI events Asterisk
emits for it (AGIExecStart/AGIExecEnd, VarSet ...).
"""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim.agi_channel import RecordResult
from ccd.sim.apps import lookup_app, run_app
from ccd.sim.apps.basic import pause, play
from ccd.sim.events import AGI
from ccd.sim.pbx import call_function, lookup, substitute
from ccd.sim.recording import write_wav

if TYPE_CHECKING:
    from ccd.sim.channel import Channel
    from ccd.sim.engine import Engine

RESULT_TEXT = {
    -1: "Failure",
    200: "Success",
    510: "Invalid or unknown command",
    511: "Command Not Permitted on a dead channel or intercept routine",
    520: "End of proper usage",
}


class SimAgiChannel:
    """A simulated channel as a FastAGI session sees it (implements ``AgiChannel``)."""

    def __init__(
        self, engine: Engine, ch: Channel, request: str, script: str, args: list[str]
    ) -> None:
        self.engine = engine
        self.ch = ch
        self.request = request
        self.script = script
        self.args = args
        self._ids: list[tuple[str, int]] = []

    @property
    def hung_up(self) -> bool:
        return self.ch.hungup

    def agi_env(self) -> dict[str, str]:
        ch = self.ch
        env = {
            "agi_network": "yes",
            "agi_network_script": self.script,
            "agi_request": self.request,
            "agi_channel": ch.name,
            "agi_language": ch.language,
            "agi_type": ch.tech,
            "agi_uniqueid": ch.uniqueid,
            "agi_version": self.engine.settings.version,
            "agi_callerid": ch.caller_num or "unknown",
            "agi_calleridname": ch.caller_name or "unknown",
            "agi_callingpres": "0",
            "agi_callingani2": "0",
            "agi_callington": "0",
            "agi_callingtns": "0",
            "agi_dnid": ch.dnid or "unknown",
            "agi_rdnis": "unknown",
            "agi_context": ch.context,
            "agi_extension": ch.exten,
            "agi_priority": str(ch.priority),
            "agi_enhanced": "0.0",
            "agi_accountcode": ch.accountcode,
            "agi_threadid": str(threading.get_ident()),
        }
        for i, arg in enumerate(self.args, 1):
            env[f"agi_arg_{i}"] = arg
        return env

    def channel_status(self) -> int:
        return self.ch.state

    def get_variable(self, name: str) -> str | None:
        if "(" in name and name.endswith(")"):
            func, _, args = name[:-1].partition("(")
            value = call_function(self.engine, self.ch, func, args)
            return value if value != "" else None
        return lookup(self.engine, self.ch, name)

    def evaluate(self, expression: str) -> str:
        return substitute(self.engine, self.ch, expression)

    def set_variable(self, name: str, value: str) -> None:
        if self.ch.dead:
            return
        self.engine.set_var(self.ch, name, value)

    async def answer(self) -> int:
        if self.ch.hungup:
            return -1
        if self.ch.state != C.UP:
            self.engine.answer(self.ch)
        return 0

    async def read_digits(self, max_digits: int, timeout: float) -> str:
        """Digits pressed, up to ``max_digits``; a ``#`` ends the input and is returned
        (the FastAGI client strips it). ``timeout`` 0 only takes digits already pressed."""
        ch = self.ch
        digits = ""
        while not ch.hungup and (max_digits <= 0 or len(digits) < max_digits):
            try:
                d = ch.dtmf.get_nowait()
            except asyncio.QueueEmpty:
                if timeout <= 0:
                    break
                getter = asyncio.ensure_future(ch.dtmf.get())
                hung = asyncio.ensure_future(ch.hangup_event.wait())
                done, _ = await asyncio.wait(
                    {getter, hung},
                    timeout=self.engine.clock.real(timeout),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                hung.cancel()
                if getter not in done:
                    getter.cancel()
                    break
                d = getter.result()
            digits += d
            if d == "#":
                break
        return digits

    async def play(self, filename: str) -> float:
        seconds, _ = await play(self.engine, self.ch, filename)
        if seconds >= 0 and not self.ch.dead:
            self.engine.set_var(self.ch, "PLAYBACKSTATUS", "SUCCESS")
        return seconds

    async def record(
        self,
        filename: str,
        fmt: str,
        escape_digits: str,
        timeout: float,
        *,
        beep: bool = False,
        silence: float | None = None,
    ) -> RecordResult:
        eng, ch = self.engine, self.ch
        if beep:
            await play(eng, ch, "beep")
        start = eng.clock.now()
        limit = timeout if timeout and timeout > 0 else 3600.0
        digit, reason = "", "timeout"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + eng.clock.real(limit)
        while True:
            remaining = deadline - loop.time()
            if ch.hungup:
                reason = "hangup"
                break
            if remaining <= 0:
                break
            getter = asyncio.ensure_future(ch.dtmf.get())
            hung = asyncio.ensure_future(ch.hangup_event.wait())
            done, _ = await asyncio.wait(
                {getter, hung}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            hung.cancel()
            if getter in done:
                d = getter.result()
                if d in escape_digits:
                    digit, reason = d, "dtmf"
                    break
            else:
                getter.cancel()
        seconds = eng.clock.now() - start
        root = eng.settings.recording_root
        if root is not None and fmt.lower() in ("wav", "wav16", "slin"):
            target = Path(filename + "." + fmt)
            path = (
                root / target.relative_to(target.anchor)
                if target.is_absolute()
                else root / "recordings" / target
            )
            write_wav(path, seconds, [(0.0, seconds)], eng.settings.umask)
        return RecordResult(digit, reason, seconds)

    async def exec_app(self, app: str, args: str) -> str:
        if lookup_app(app) is None:
            return "-2"
        res = await run_app(self.engine, self.ch, app, args)
        return str(res)

    def on_command_start(self, command: str) -> None:
        if self.ch.dead:
            return
        cid = random.randrange(1, 2**31)
        self._ids.append((command, cid))
        self.engine.chan_event(
            "AGIExecStart", self.ch, [("CommandId", str(cid)), ("Command", command)], privilege=AGI
        )

    def on_command(self, command: str, result: str, failed: bool = False) -> None:
        if self.ch.dead:
            return
        cid = 0
        for i, (cmd, ident) in enumerate(self._ids):
            if cmd == command:
                cid = ident
                del self._ids[i]
                break
        code_s = result.split(" ", 1)[0]
        code = -1 if failed else int(code_s) if code_s.isdigit() else 200
        self.engine.chan_event(
            "AGIExecEnd",
            self.ch,
            [
                ("CommandId", str(cid)),
                ("Command", command),
                ("ResultCode", str(code)),
                ("Result", RESULT_TEXT.get(code, "Success")),
            ],
            privilege=AGI,
        )

    def set_location(
        self, context: str | None = None, exten: str | None = None, priority: str | None = None
    ) -> bool:
        """SET CONTEXT / SET EXTENSION / SET PRIORITY: where the dialplan goes on after the
        AGI (not part of the AgiChannel contract yet; a client may call it when present)."""
        ch = self.ch
        if context is not None:
            ch.context = context
        if exten is not None:
            ch.exten = exten
        if priority is not None:
            plan = self.engine.config.dialplan
            number = plan.resolve_priority(ch.context, ch.exten, priority)
            if number is None:
                return False
            ch.priority = number
        return True

    async def hangup(self) -> None:
        if not self.ch.hungup:
            self.ch.hangupcause = self.ch.hangupcause or C.NORMAL_CLEARING
            self.engine.request_hangup(self.ch, C.EXPLICIT)  # as res_agi's HANGUP does
        await pause(self.engine, self.ch, 0)
