"""One AGI session: the channel's headers plus a typed command API.

The same :class:`AgiSession` runs over a FastAGI socket (:class:`StreamTransport`) or over
a classic AGI script's stdin/stdout (``ccd.agi.classic``), so handlers do not care which.
Every command waits for its reply; a ``HANGUP`` line read meanwhile marks the session as
hung up. Media commands that answer ``result=-1`` are checked with ``CHANNEL STATUS``: a
dead channel raises :class:`AgiHangup`, a live one :class:`AgiMediaError` (missing sound).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ccd.agi.protocol import (
    CODE_DEAD,
    CODE_INVALID,
    CODE_OK,
    CODE_TRYING,
    CODE_USAGE,
    HANGUP_LINE,
    VAR_NAME,
    AgiCommandError,
    AgiDeadChannel,
    AgiHangup,
    AgiInvalidCommand,
    AgiProtocolError,
    AgiReply,
    AgiUsageError,
    build_command,
    is_usage_end,
    parse_reply_line,
    script_of,
)

_APP_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
#: command verbs (as passed to ``on_rtt``) whose reply waits for the caller or for media
MEDIA_VERBS = ("STREAM", "GET DATA", "GET OPTION", "WAIT", "SAY", "RECORD", "EXEC", "CONTROL")


class AgiMediaError(AgiCommandError):
    """A media command failed on a live channel (typically: the sound file is missing)."""


class AgiTransport(Protocol):
    """Moves lines between the session and Asterisk."""

    async def send(self, data: bytes) -> None:
        """Write one command line."""
        ...

    async def readline(self) -> str:
        """The next line including its LF; ``''`` at end of stream."""
        ...

    def close(self) -> None:
        """Release the connection (idempotent)."""
        ...


class StreamTransport:
    """:class:`AgiTransport` over asyncio streams (FastAGI)."""

    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise AgiHangup(f"connection lost while sending: {exc}") from None

    async def readline(self) -> str:
        try:
            raw = await self.reader.readline()
        except ValueError:  # LimitOverrunError surfaces as ValueError from readline()
            raise AgiProtocolError("reply line longer than the stream limit") from None
        except ConnectionError:
            return ""
        return raw.decode("utf-8", "replace")

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True, slots=True)
class PlayResult:
    """STREAM FILE / SAY *: the escape digit pressed (None if none) and where it stopped."""

    digit: str | None
    endpos: int


@dataclass(frozen=True, slots=True)
class DigitsResult:
    """GET DATA: the digits typed and whether the wait timed out before max digits / '#'."""

    digits: str
    timed_out: bool


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """RECORD FILE: the digit that stopped it, why ('dtmf', 'timeout', 'hangup' ...), length."""

    digit: str | None
    reason: str
    endpos: int


RttHook = Callable[[str, float], None]


class AgiSession:
    """A running AGI session. ``env`` holds the ``agi_*`` headers as Asterisk sent them."""

    def __init__(
        self,
        env: dict[str, str],
        transport: AgiTransport,
        *,
        reply_timeout: float | None = None,
        on_rtt: RttHook | None = None,
    ) -> None:
        self.env = env
        self.transport = transport
        self.reply_timeout = reply_timeout
        self.on_rtt = on_rtt
        self.script = script_of(env)
        #: set by the server: the route that matched and the path segments after it
        self.route = self.script
        self.route_args: list[str] = []
        self.hung_up = False
        self.commands = 0

    # ------------------------------------------------------------------ headers

    @property
    def uniqueid(self) -> str:
        return self.env.get("agi_uniqueid", "")

    @property
    def channel(self) -> str:
        return self.env.get("agi_channel", "")

    @property
    def caller_id(self) -> str:
        return self.env.get("agi_callerid", "")

    @property
    def caller_name(self) -> str:
        return self.env.get("agi_calleridname", "")

    @property
    def dnid(self) -> str:
        """The dialed number: ``agi_dnid``, or ``agi_extension`` when Asterisk says unknown."""
        dnid = self.env.get("agi_dnid", "")
        if dnid and dnid != "unknown":
            return dnid
        return self.env.get("agi_extension", "")

    @property
    def context(self) -> str:
        return self.env.get("agi_context", "")

    @property
    def extension(self) -> str:
        return self.env.get("agi_extension", "")

    @property
    def language(self) -> str:
        return self.env.get("agi_language", "")

    @property
    def args(self) -> list[str]:
        """``AGI(url,a,b)`` arguments: ``agi_arg_1`` ...."""
        out = []
        i = 1
        while f"agi_arg_{i}" in self.env:
            out.append(self.env[f"agi_arg_{i}"])
            i += 1
        return out

    # ------------------------------------------------------------------ core

    async def command(self, *words: object) -> AgiReply:
        """Send one command and return its 200 reply; raises the matching AgiError."""
        line = build_command(*words)
        t0 = time.perf_counter()
        await self.transport.send(line)
        if self.reply_timeout is None:
            reply = await self._read_reply()
        else:
            async with asyncio.timeout(self.reply_timeout):
                reply = await self._read_reply()
        self.commands += 1
        if self.on_rtt is not None:
            self.on_rtt(_verb(words), time.perf_counter() - t0)
        return reply

    async def _read_reply(self) -> AgiReply:
        while True:
            line = await self.transport.readline()
            if not line:
                self.hung_up = True
                raise AgiHangup("AGI connection closed")
            line = line.rstrip("\r\n")
            if not line:
                continue
            if line == HANGUP_LINE:
                self.hung_up = True
                continue
            if line.startswith("520-"):
                usage = []
                while True:
                    nxt = await self.transport.readline()
                    if not nxt:
                        self.hung_up = True
                        raise AgiHangup("AGI connection closed inside a usage block")
                    nxt = nxt.rstrip("\r\n")
                    if is_usage_end(nxt):
                        if nxt != "520 End of proper usage." and not nxt.startswith("520 "):
                            usage.append(nxt[: -len("520 End of proper usage.")])
                        break
                    usage.append(nxt)
                text = "\n".join(usage).strip()
                reply = AgiReply(code=CODE_USAGE, text=text, raw=line)
                raise AgiUsageError(f"invalid command syntax: {text[:200]}", reply, text)
            reply = parse_reply_line(line)
            if reply.code == CODE_OK:
                return reply
            if reply.code == CODE_TRYING:
                continue
            if reply.code == CODE_INVALID:
                raise AgiInvalidCommand("invalid or unknown command", reply)
            if reply.code == CODE_DEAD:
                self.hung_up = True
                raise AgiDeadChannel("command not permitted on a dead channel")
            if reply.code == CODE_USAGE:
                raise AgiUsageError(f"invalid command syntax: {reply.text}", reply, "")
            raise AgiCommandError(f"AGI error {reply.code} {reply.text}", reply)

    async def _media_failed(self, what: str, reply: AgiReply) -> AgiHangup | AgiMediaError:
        """Tell a hangup from a media error after ``result=-1``."""
        if not self.hung_up:
            try:
                await self.command("CHANNEL", "STATUS")
            except AgiHangup as exc:
                return exc
            if not self.hung_up:
                return AgiMediaError(f"{what} failed on a live channel", reply)
        return AgiHangup(f"channel hung up during {what}")

    # ------------------------------------------------------------------ commands

    async def answer(self) -> None:
        """ANSWER the channel."""
        r = await self.command("ANSWER")
        if r.result_int < 0:
            raise await self._media_failed("ANSWER", r)

    async def stream_file(self, filename: str, escape_digits: str = "",
                          offset: int | None = None) -> PlayResult:
        """STREAM FILE: play ``filename``; a digit of ``escape_digits`` stops it."""
        words: list[object] = ["STREAM", "FILE", filename, escape_digits]
        if offset is not None:
            words.append(offset)
        r = await self.command(*words)
        return await self._play_result("STREAM FILE", r)

    async def _play_result(self, what: str, r: AgiReply) -> PlayResult:
        code = r.result_int
        if code < 0:
            raise await self._media_failed(what, r)
        return PlayResult(chr(code) if code > 0 else None, r.endpos)

    async def get_data(self, filename: str, timeout_ms: int | None = None,
                       max_digits: int | None = None) -> DigitsResult:
        """GET DATA: play ``filename`` and collect up to ``max_digits`` ('#' ends early)."""
        words: list[object] = ["GET", "DATA", filename]
        if timeout_ms is not None:
            words.append(int(timeout_ms))
            if max_digits is not None:
                words.append(int(max_digits))
        r = await self.command(*words)
        if r.result == "-1":
            raise await self._media_failed("GET DATA", r)
        return DigitsResult(r.result, r.data == "timeout")

    async def wait_for_digit(self, timeout_ms: int) -> str:
        """WAIT FOR DIGIT: one digit, '' on timeout (-1 = wait forever)."""
        r = await self.command("WAIT", "FOR", "DIGIT", int(timeout_ms))
        code = r.result_int
        if code < 0:
            raise await self._media_failed("WAIT FOR DIGIT", r)
        return chr(code) if code > 0 else ""

    async def say_digits(self, digits: str, escape_digits: str = "") -> PlayResult:
        """SAY DIGITS."""
        if not digits.isdigit():
            raise ValueError(f"SAY DIGITS needs digits, got {digits!r}")
        r = await self.command("SAY", "DIGITS", digits, escape_digits)
        return await self._play_result("SAY DIGITS", r)

    async def say_number(self, number: int, escape_digits: str = "") -> PlayResult:
        """SAY NUMBER."""
        r = await self.command("SAY", "NUMBER", int(number), escape_digits)
        return await self._play_result("SAY NUMBER", r)

    async def record_file(self, filename: str, fmt: str = "wav", escape_digits: str = "#",
                          timeout_ms: int = 60000, *, offset: int | None = None,
                          beep: bool = False, silence: int | None = None) -> RecordOutcome:
        """RECORD FILE. A recording cut by a hangup is returned (reason 'hangup')."""
        words: list[object] = ["RECORD", "FILE", filename, fmt, escape_digits, int(timeout_ms)]
        if offset is not None:
            words.append(int(offset))
        if beep:
            words.append("BEEP")
        if silence is not None:
            words.append(f"s={int(silence)}")
        r = await self.command(*words)
        reason = r.data or ""
        code = r.result_int
        if reason == "hangup":
            self.hung_up = True
        elif code < 0:
            raise await self._media_failed(f"RECORD FILE ({reason or 'error'})", r)
        digit = chr(code) if reason == "dtmf" and code > 0 else None
        return RecordOutcome(digit, reason or "done", r.endpos)

    async def set_variable(self, name: str, value: object) -> None:
        """SET VARIABLE (allowed on a dead channel too)."""
        _check_var(name)
        await self.command("SET", "VARIABLE", name, str(value))

    async def get_variable(self, name: str) -> str | None:
        """GET VARIABLE: the value, None when unset."""
        _check_var(name)
        r = await self.command("GET", "VARIABLE", name)
        return r.data if r.result == "1" else None

    async def get_full_variable(self, expression: str, channel: str | None = None) -> str | None:
        """GET FULL VARIABLE: evaluate ``${...}`` expressions; None if the channel is unknown."""
        words: list[object] = ["GET", "FULL", "VARIABLE", expression]
        if channel:
            words.append(channel)
        r = await self.command(*words)
        return (r.data or "") if r.result == "1" else None

    async def exec(self, app: str, *args: object) -> int:
        """EXEC an application with ``args`` joined by commas; returns its result."""
        if not app or not set(app) <= _APP_NAME_CHARS:
            raise ValueError(f"bad application name {app!r}")
        words: list[object] = ["EXEC", app]
        if args:
            words.append(",".join(str(a) for a in args))
        r = await self.command(*words)
        code = r.result_int
        if code == -2:
            raise AgiCommandError(f"no application {app!r}", r)
        if code < 0:
            self.hung_up = True
            raise AgiHangup(f"{app} ended with -1 (hangup)")
        return code

    async def verbose(self, message: str, level: int = 1) -> None:
        """VERBOSE: a line in Asterisk's verbose log."""
        await self.command("VERBOSE", message, int(level))

    async def hangup(self, channel: str | None = None) -> bool:
        """HANGUP this channel (or ``channel``); False if that channel does not exist."""
        r = await (self.command("HANGUP", channel) if channel else self.command("HANGUP"))
        if not channel:
            self.hung_up = True
        return r.result == "1"

    async def channel_status(self, channel: str | None = None) -> int | None:
        """CHANNEL STATUS: the AST_STATE number (6 = up); None if ``channel`` is unknown."""
        r = await (self.command("CHANNEL", "STATUS", channel) if channel
                   else self.command("CHANNEL", "STATUS"))
        code = r.result_int
        return None if code < 0 else code

    async def set_context(self, context: str) -> None:
        await self.command("SET", "CONTEXT", context)

    async def set_extension(self, extension: str) -> None:
        await self.command("SET", "EXTENSION", extension)

    async def set_priority(self, priority: int | str) -> None:
        await self.command("SET", "PRIORITY", priority)

    async def goto(self, context: str, extension: str, priority: int | str = 1) -> None:
        """Where the dialplan goes on when this AGI returns."""
        await self.set_context(context)
        await self.set_extension(extension)
        await self.set_priority(priority)


def _check_var(name: str) -> None:
    if not VAR_NAME.fullmatch(name):
        raise ValueError(f"bad channel variable name {name!r}")


def _verb(words: tuple[object, ...]) -> str:
    first = str(words[0]) if words else ""
    if first in ("GET", "SET", "CHANNEL", "SAY", "RECORD", "STREAM", "WAIT"):
        return f"{first} {words[1]}" if len(words) > 1 else first
    return first


def is_media_verb(verb: str) -> bool:
    """True for commands whose round trip includes playing or listening."""
    return verb.startswith(MEDIA_VERBS)
