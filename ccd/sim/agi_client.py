"""The Asterisk side of AGI for the PBX simulator: FastAGI client and classic AGI runner.

:func:`run_fastagi` does what ``AGI(agi://host:port/script)`` does in Asterisk 22
(``launch_netscript`` + ``run_agi`` in res_agi.c): connect, send the ``agi_*`` headers and
a blank line, then answer each command line the server sends, mapping it onto the
:class:`~ccd.sim.agi_channel.AgiChannel`. Replies use Asterisk's exact formats (checked
against the captures in ``agi/*.log`` and res_agi.c)::

    STREAM FILE  -> 200 result=0 endpos=11360  |  200 result=<ascii digit> endpos=N
    GET DATA     -> 200 result=12  |  200 result= (timeout)  |  200 result=-1 (hangup)
    GET VARIABLE -> 200 result=1 (value)  |  200 result=0
    unknown      -> 510 Invalid or unknown command
    bad usage    -> 520-Invalid command syntax.  Proper usage follows: / ... / 520 End ...
    after hangup -> 511 Command Not Permitted on a dead channel or intercept routine

When the caller hangs up, ``HANGUP`` is sent once (also while the server is busy between
commands) and from then on only the commands Asterisk allows on a dead channel run.
The return value is what Asterisk stores in ``AGISTATUS``.

:func:`run_classic_agi` runs a classic AGI program (``AGI(script)``) as a child process
over stdin/stdout with the same command emulation; a hangup sends it SIGHUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ccd.agi.protocol import (
    DEAD_LINE,
    INVALID_LINE,
    USAGE_END,
    USAGE_START,
    env_lines,
    parse_args,
)
from ccd.sim.agi_channel import AgiChannel, RecordResult

SUCCESS, FAILURE, NOTFOUND, HANGUP = "SUCCESS", "FAILURE", "NOTFOUND", "HANGUP"
SAMPLE_RATE = 8000  # endpos is in samples of the 8 kHz sound
#: how often the caller's hangup is looked for while the server is between commands
HANGUP_POLL = 0.1
#: stand-in for "no timeout" (-1) when asking the channel to wait
FOREVER = 86400.0
#: res_agi.c reads commands into 2048 bytes
AGI_BUF_LEN = 2048

#: the astdb that DATABASE GET/PUT/DEL work on (one per simulated Asterisk process)
ASTDB: dict[tuple[str, str], str] = {}


class _Usage(Exception):
    """A command handler found bad arguments (RESULT_SHOWUSAGE)."""


class _NoReply(Exception):
    """The command sends no reply (ASYNCAGI BREAK outside Async AGI)."""


Reply = str
CommandFn = Callable[["AgiEmulator", list[str]], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class _Command:
    words: tuple[str, ...]
    fn: CommandFn
    dead: bool  # allowed once the channel hung up (the 'dead' column of 'agi show commands')
    usage: str


_COMMANDS: list[_Command] = []


def _command(words: str, usage: str, *, dead: bool = False) -> Callable[[CommandFn], CommandFn]:
    def deco(fn: CommandFn) -> CommandFn:
        _COMMANDS.append(_Command(tuple(words.lower().split()), fn, dead, usage))
        return fn

    return deco


def _find(argv: list[str]) -> _Command | None:
    low = [a.lower() for a in argv]
    for c in _COMMANDS:
        n = len(c.words)
        if len(low) >= n and tuple(low[:n]) == c.words:
            return c
    return None


def _int(s: str) -> int:
    """``sscanf("%d")``: leading integer, else usage error."""
    s = s.strip()
    i = 1 if s[:1] in "+-" else 0
    while i < len(s) and s[i].isdigit():
        i += 1
    if i == 0 or not s[:i].lstrip("+-"):
        raise _Usage
    return int(s[:i])


def _atoi(s: str) -> int:
    """C ``atoi``: leading integer or 0."""
    try:
        return _int(s)
    except _Usage:
        return 0


class AgiEmulator:
    """Answers AGI command lines for one channel, the way res_agi.c does."""

    def __init__(self, channel: AgiChannel, env: dict[str, str]) -> None:
        self.channel = channel
        self.env = env
        self.dead = False
        self.failed = False  # a command failed on a live channel -> AGISTATUS=FAILURE
        self.command_failed = False  # the command being handled failed

    def fail(self) -> None:
        """The current command's handler failed (Asterisk's RESULT_FAILURE)."""
        self.failed = self.command_failed = True

    @property
    def own_name(self) -> str:
        return self.env.get("agi_channel", "")

    async def handle(self, line: str) -> Reply | None:
        """The reply text (one or more LF-terminated lines) for one command line."""
        ch = self.channel
        ch.on_command_start(line)
        argv = parse_args(line)
        cmd = _find(argv) if argv else None
        if cmd is None:
            reply = INVALID_LINE + "\n"
        elif self.dead and not cmd.dead:
            reply = DEAD_LINE + "\n"
        else:
            self.command_failed = False
            try:
                reply = await cmd.fn(self, argv)
            except _Usage:
                reply = f"{USAGE_START}\n{cmd.usage}\n{USAGE_END}\n"
            except _NoReply:
                ch.on_command(line, "")
                return None
            if self.command_failed:
                # Asterisk: the handler returned RESULT_FAILURE (a file that does not play):
                # AGIExecEnd says ResultCode -1 / Failure although the client got "200 ..."
                ch.on_command(line, reply.rstrip("\n").rsplit("\n", 1)[-1], failed=True)
                return reply
        # a multi-line reply (520 usage block, GOSUB's 100 + 200) ends with its final line
        ch.on_command(line, reply.rstrip("\n").rsplit("\n", 1)[-1])
        return reply

    # ----------------------------------------------------------------- helpers

    async def _escape(self, escape_digits: str) -> str | None:
        """A digit pressed during playback that is one of ``escape_digits``."""
        if not escape_digits or self.channel.hung_up:
            return None
        d = await self.channel.read_digits(1, 0.0)
        return d if d and d in escape_digits else None

    async def _play_all(self, files: Sequence[str], escape_digits: str) -> int:
        """Play files in turn; ascii of an escape digit, 0, or -1 on hangup/missing file."""
        for f in files:
            if await self.channel.play(f) < 0 or self.channel.hung_up:
                return -1
            d = await self._escape(escape_digits)
            if d:
                return ord(d)
        return 0


# --------------------------------------------------------------------------- commands


@_command("answer", "Usage: ANSWER")
async def _answer(em: AgiEmulator, argv: list[str]) -> Reply:
    return f"200 result={await em.channel.answer()}\n"


@_command("channel status", "Usage: CHANNEL STATUS [<channelname>]")
async def _channel_status(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) == 2 or (len(argv) == 3 and argv[2] == em.own_name):
        return f"200 result={em.channel.channel_status()}\n"
    if len(argv) == 3:
        return "200 result=-1\n"
    raise _Usage


@_command("database del", "Usage: DATABASE DEL <family> <key>", dead=True)
async def _db_del(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 4:
        raise _Usage
    return "200 result=1\n" if ASTDB.pop((argv[2], argv[3]), None) is not None else "200 result=0\n"


@_command("database deltree", "Usage: DATABASE DELTREE <family> [<keytree>]", dead=True)
async def _db_deltree(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) not in (3, 4):
        raise _Usage
    prefix = argv[3] if len(argv) == 4 else ""
    gone = [k for k in ASTDB if k[0] == argv[2] and k[1].startswith(prefix)]
    for k in gone:
        del ASTDB[k]
    return "200 result=1\n" if gone else "200 result=0\n"


@_command("database get", "Usage: DATABASE GET <family> <key>", dead=True)
async def _db_get(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 4:
        raise _Usage
    v = ASTDB.get((argv[2], argv[3]))
    return "200 result=0\n" if v is None else f"200 result=1 ({v})\n"


@_command("database put", "Usage: DATABASE PUT <family> <key> <value>", dead=True)
async def _db_put(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 5:
        raise _Usage
    ASTDB[(argv[2], argv[3])] = argv[4]
    return "200 result=1\n"


@_command("exec", "Usage: EXEC <application> <options>", dead=True)
async def _exec(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) < 2:
        raise _Usage
    res = await em.channel.exec_app(argv[1], argv[2] if len(argv) > 2 else "")
    return f"200 result={res}\n"


@_command("get data", "Usage: GET DATA <file to be streamed> [timeout] [max digits]")
async def _get_data(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) < 3:
        raise _Usage
    timeout_ms = _atoi(argv[3]) if len(argv) >= 4 else 0
    max_digits = _atoi(argv[4]) if len(argv) >= 5 else 1024
    if timeout_ms == 0:
        timeout_ms = 6000  # ast_app_getdata_full's default first-digit timeout
    ch = em.channel
    if await ch.play(argv[2]) < 0:
        return "200 result=-1\n"
    if ch.hung_up:
        return "200 result=-1\n"
    digits = await ch.read_digits(
        max(max_digits, 1), FOREVER if timeout_ms < 0 else timeout_ms / 1000.0
    )
    if ch.hung_up:
        return "200 result=-1\n"
    terminated = digits.endswith("#")
    digits = digits.split("#", 1)[0][:max_digits]
    if not terminated and len(digits) < max_digits:
        return f"200 result={digits} (timeout)\n"
    return f"200 result={digits}\n"


@_command(
    "get full variable", "Usage: GET FULL VARIABLE <variablename> [<channel name>]", dead=True
)
async def _get_full_variable(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) not in (4, 5):
        raise _Usage
    if len(argv) == 5 and argv[4] != em.own_name:
        return "200 result=0\n"
    return f"200 result=1 ({em.channel.evaluate(argv[3])})\n"


@_command("get option", "Usage: GET OPTION <filename> <escape_digits> [timeout]")
async def _get_option(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) not in (4, 5):
        raise _Usage
    timeout_ms = _atoi(argv[4]) if len(argv) == 5 else 5000
    ch = em.channel
    seconds = await ch.play(argv[2])
    if seconds < 0:
        em.fail()
        return "200 result=-1 endpos=0\n"
    endpos = int(seconds * SAMPLE_RATE)
    if ch.hung_up:
        return f"200 result=-1 endpos={endpos}\n"
    d = await em._escape(argv[3])
    if d is None and timeout_ms:
        got = await ch.read_digits(1, FOREVER if timeout_ms < 0 else timeout_ms / 1000.0)
        d = got if got and got in argv[3] else None
    if ch.hung_up:
        return f"200 result=-1 endpos={endpos}\n"
    return f"200 result={ord(d) if d else 0} endpos={endpos}\n"


@_command("get variable", "Usage: GET VARIABLE <variablename>", dead=True)
async def _get_variable(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 3:
        raise _Usage
    v = em.channel.get_variable(argv[2])
    return "200 result=0\n" if v is None else f"200 result=1 ({v})\n"


@_command("hangup", "Usage: HANGUP [<channelname>]")
async def _hangup(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) == 1 or (len(argv) == 2 and argv[1] == em.own_name):
        await em.channel.hangup()
        return "200 result=1\n"
    if len(argv) == 2:
        return "200 result=-1\n"
    raise _Usage


@_command("noop", "Usage: NOOP", dead=True)
async def _noop(em: AgiEmulator, argv: list[str]) -> Reply:
    return "200 result=0\n"


@_command(
    "record file",
    "Usage: RECORD FILE <filename> <format> <escape digits> <timeout> "
    "[offset samples] [BEEP] [s=silence]",
)
async def _record_file(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) < 6:
        raise _Usage
    timeout_ms = _int(argv[5])
    extra = argv[6:9]
    silence = None
    for a in extra:
        if a.startswith("s=") and len(a) > 2:
            silence = float(_atoi(a[2:])) or None
            break
    beep = any(not a[:1].isdigit() and "=" not in a for a in extra)
    res = await em.channel.record(
        argv[2],
        argv[3],
        argv[4],
        FOREVER if timeout_ms < 0 else timeout_ms / 1000.0,
        beep=beep,
        silence=silence,
    )
    endpos = int(res.seconds * SAMPLE_RATE)
    if res.reason == "hangup" or em.channel.hung_up:
        return f"200 result=-1 (hangup) endpos={endpos}\n"
    if res.reason == "dtmf" and res.digit:
        return f"200 result={ord(res.digit)} (dtmf) endpos={endpos}\n"
    return f"200 result=0 (timeout) endpos={endpos}\n"


def _say(
    words: str, usage: str, argc: tuple[int, ...], numeric: bool, files: Callable[[str], list[str]]
) -> None:
    async def fn(em: AgiEmulator, argv: list[str]) -> Reply:
        if len(argv) not in argc:
            raise _Usage
        if numeric:
            _int(argv[2])
        res = await em._play_all(files(argv[2]), argv[3])
        if res < 0 and not em.channel.hung_up:
            em.fail()
        return f"200 result={res}\n"

    _command(words, usage)(fn)


_say(
    "say alpha",
    "Usage: SAY ALPHA <number> <escape digits>",
    (4,),
    False,
    lambda s: [f"letters/{c.lower()}" for c in s if c.isalnum()],
)
_say(
    "say digits",
    "Usage: SAY DIGITS <number> <escape digits>",
    (4,),
    True,
    lambda s: [f"digits/{c}" for c in s if c.isdigit()],
)
_say(
    "say number",
    "Usage: SAY NUMBER <number> <escape digits> [gender]",
    (4, 5),
    True,
    lambda s: [f"digits/{c}" for c in str(abs(_int(s)))],
)
_say(
    "say phonetic",
    "Usage: SAY PHONETIC <string> <escape digits>",
    (4,),
    False,
    lambda s: [f"phonetic/{c.lower()}_p" for c in s if c.isalnum()],
)
_say("say date", "Usage: SAY DATE <date> <escape digits>", (4,), True, lambda s: ["digits/date"])
_say("say time", "Usage: SAY TIME <time> <escape digits>", (4,), True, lambda s: ["digits/time"])
_say(
    "say datetime",
    "Usage: SAY DATETIME <time> <escape digits> [format] [timezone]",
    (4, 5, 6),
    True,
    lambda s: ["digits/datetime"],
)


@_command("set autohangup", "Usage: SET AUTOHANGUP <time>")
async def _set_autohangup(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 3:
        raise _Usage
    try:
        float(argv[2])
    except ValueError:
        raise _Usage from None
    return "200 result=0\n"


@_command("set callerid", "Usage: SET CALLERID <number>")
async def _set_callerid(em: AgiEmulator, argv: list[str]) -> Reply:
    return "200 result=1\n"


def _move(em: AgiEmulator, **where: str) -> bool:
    """SET CONTEXT/EXTENSION/PRIORITY on a channel that can move (the simulator's)."""
    move = getattr(em.channel, "set_location", None)
    return True if move is None else bool(move(**where))


@_command("set context", "Usage: SET CONTEXT <desired context>")
async def _set_context(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 3:
        raise _Usage
    _move(em, context=argv[2])
    return "200 result=0\n"


@_command("set extension", "Usage: SET EXTENSION <new extension>")
async def _set_extension(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 3:
        raise _Usage
    _move(em, exten=argv[2])
    return "200 result=0\n"


@_command("set music", "Usage: SET MUSIC <on|off> <class>")
async def _set_music(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) < 3:
        raise _Usage
    return "200 result=0\n"


@_command("set priority", "Usage: SET PRIORITY <priority>")
async def _set_priority(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 3 or not argv[2]:
        raise _Usage
    if not _move(em, priority=argv[2]):
        return "200 result=-1\n"  # Asterisk: no such priority or label
    return "200 result=0\n"


@_command("set variable", "Usage: SET VARIABLE <variablename> <value>", dead=True)
async def _set_variable(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 4:
        raise _Usage
    em.channel.set_variable(argv[2], argv[3])
    return "200 result=1\n"


@_command("stream file", "Usage: STREAM FILE <filename> <escape digits> [sample offset]")
async def _stream_file(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) not in (4, 5):
        raise _Usage
    offset = _int(argv[4]) if len(argv) == 5 else 0
    seconds = await em.channel.play(argv[2])
    if seconds < 0:
        em.fail()
        return f"200 result=-1 endpos={offset}\n"
    endpos = int(seconds * SAMPLE_RATE)
    if em.channel.hung_up:
        return f"200 result=-1 endpos={endpos}\n"
    d = await em._escape(argv[3])
    return f"200 result={ord(d) if d else 0} endpos={endpos}\n"


@_command(
    "control stream file",
    "Usage: CONTROL STREAM FILE <filename> <escape digits> "
    "[skipms] [ffchar] [rewchr] [pausechr] [offsetms]",
)
async def _control_stream_file(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) < 5 or len(argv) > 10:
        raise _Usage
    seconds = await em.channel.play(argv[3])
    if seconds < 0 or em.channel.hung_up:
        return "200 result=-1\n"
    d = await em._escape(argv[4])
    return f"200 result={ord(d) if d else 0} endpos={int(seconds * 1000)}\n"


@_command("tdd mode", "Usage: TDD MODE <on|off>")
async def _tdd_mode(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 3:
        raise _Usage
    return "200 result=0\n"  # PJSIP channels have no TDD


@_command("verbose", "Usage: VERBOSE <message> <level>", dead=True)
async def _verbose(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) < 2:
        raise _Usage
    return "200 result=1\n"


@_command("wait for digit", "Usage: WAIT FOR DIGIT <timeout>")
async def _wait_for_digit(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 4:
        raise _Usage
    ms = _int(argv[3])
    d = await em.channel.read_digits(1, FOREVER if ms < 0 else ms / 1000.0)
    if em.channel.hung_up:
        return "200 result=-1\n"
    return f"200 result={ord(d[0]) if d else 0}\n"


@_command("send text", 'Usage: SEND TEXT "<text to send>"')
async def _send_text(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 3:
        raise _Usage
    return "200 result=0\n"


@_command("send image", "Usage: SEND IMAGE <image>")
async def _send_image(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 3:
        raise _Usage
    return "200 result=0\n"


@_command("receive char", "Usage: RECEIVE CHAR <timeout>")
async def _receive_char(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 3:
        raise _Usage
    return "200 result=0 (timeout)\n"  # PJSIP voice channels carry no text


@_command("receive text", "Usage: RECEIVE TEXT <timeout>")
async def _receive_text(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) != 3:
        raise _Usage
    return "200 result=-1\n"


@_command("gosub", "Usage: GOSUB <context> <extension> <priority> [<optional-argument>]")
async def _gosub(em: AgiEmulator, argv: list[str]) -> Reply:
    if len(argv) not in (4, 5):
        raise _Usage
    target = f"{argv[1]},{argv[2]},{argv[3]}" + (f"({argv[4]})" if len(argv) == 5 else "")
    res = await em.channel.exec_app("Gosub", target)
    if str(res) == "-2":
        return "200 result=-1 Gosub label not found\n"
    return f"100 result=0 Trying...\n200 result={res} Gosub complete\n"


@_command("asyncagi break", "Usage: ASYNCAGI BREAK", dead=True)
async def _asyncagi_break(em: AgiEmulator, argv: list[str]) -> Reply:
    raise _NoReply


for _words in (
    "speech create",
    "speech set",
    "speech load grammar",
    "speech activate grammar",
    "speech deactivate grammar",
    "speech recognize",
):

    async def _speech(em: AgiEmulator, argv: list[str]) -> Reply:
        return "200 result=0\n"  # no speech engine loaded

    _command(_words, f"Usage: {_words.upper()} ...")(_speech)
for _words in ("speech destroy", "speech unload grammar"):

    async def _speech_dead(em: AgiEmulator, argv: list[str]) -> Reply:
        return "200 result=0\n"

    _command(_words, f"Usage: {_words.upper()} ...", dead=True)(_speech_dead)
# longest command words first, so "get full variable" wins over shorter prefixes
_COMMANDS.sort(key=lambda c: -len(c.words))


# --------------------------------------------------------------------------- sessions


class _LineReader:
    """Reads command lines the way ``run_agi`` does: a line longer than the 2048-byte
    buffer is cut, and its remainder is read as the next command."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.pending: list[bytes] = []

    async def line(self) -> str | None:
        if self.pending:
            raw = self.pending.pop(0)
        else:
            try:
                raw = await self.reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                raw = exc.partial
                if not raw:
                    return None
            except asyncio.LimitOverrunError:
                raw = await self.reader.readexactly(AGI_BUF_LEN - 1)
            except ConnectionError:
                return None
            n = AGI_BUF_LEN - 1
            if len(raw) > n:
                self.pending = [raw[i : i + n] for i in range(n, len(raw), n)]
                raw = raw[:n]
        return raw.decode("utf-8", "replace").rstrip("\n")


async def serve_agi(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    channel: AgiChannel,
    env: dict[str, str],
    *,
    on_hangup: Callable[[], None] | None = None,
) -> str:
    """Send the headers, then answer commands until the script closes; AGISTATUS."""
    em = AgiEmulator(channel, env)
    lines = _LineReader(reader)
    status = SUCCESS

    def notice_hangup() -> None:
        nonlocal status
        if em.dead or not channel.hung_up:
            return
        em.dead = True
        if status == SUCCESS:
            status = HANGUP
        if on_hangup is not None:
            on_hangup()
        else:
            writer.write(b"HANGUP\n")

    try:
        writer.write(env_lines(env))
        await writer.drain()
        while True:
            notice_hangup()
            line: str | None = None
            while line is None:
                try:
                    async with asyncio.timeout(None if em.dead else HANGUP_POLL):
                        line = await lines.line()
                    if line is None:
                        break
                except TimeoutError:
                    notice_hangup()
            if line is None:
                break
            if line.lower().startswith("failure"):
                status = FAILURE
                break
            reply = await em.handle(line)
            if reply is not None:
                writer.write(reply.encode("utf-8"))
                await writer.drain()
            if em.failed and status == SUCCESS and not channel.hung_up:
                status = FAILURE
    except (ConnectionError, BrokenPipeError):
        pass
    notice_hangup()
    return status


def network_env(url: str, channel: AgiChannel) -> dict[str, str]:
    """The headers to send: the channel's, with the FastAGI ones (``agi_network``,
    ``agi_network_script``, ``agi_request``) first, taken from ``url`` when the channel
    does not give them (Asterisk sends the URL as written in the dialplan)."""
    chan = {(k if k.startswith("agi_") else f"agi_{k}"): v for k, v in channel.agi_env().items()}
    parts = urlsplit(url)
    script = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
    env = {
        "agi_network": chan.pop("agi_network", "yes"),
        "agi_network_script": chan.pop("agi_network_script", script),
        "agi_request": chan.pop("agi_request", url),
    }
    env.update(chan)
    return env


async def run_fastagi(url: str, channel: AgiChannel, *, connect_timeout: float = 5.0) -> str:
    """Run ``AGI(url)`` for ``channel``; returns AGISTATUS (SUCCESS/FAILURE/NOTFOUND/HANGUP).

    A URL that is not ``agi://`` or ``hagi://`` names a local script, which the
    simulator does not have: NOTFOUND. An unreachable server is FAILURE, as in Asterisk.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("agi", "hagi"):
        return NOTFOUND
    if channel.hung_up:
        return HANGUP
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 4573
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return FAILURE
    try:
        return await serve_agi(reader, writer, channel, network_env(url, channel))
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def run_classic_agi(
    argv: Sequence[str],
    channel: AgiChannel,
    *,
    request: str | None = None,
    env_extra: dict[str, str] | None = None,
    kill_timeout: float = 5.0,
) -> str:
    """Run a classic AGI program (``AGI(script,args)``) as a child process over pipes."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env_extra,
        )
    except (FileNotFoundError, PermissionError):
        return NOTFOUND
    assert proc.stdin is not None and proc.stdout is not None
    env = {"agi_request": request or argv[0]}
    for k, v in channel.agi_env().items():
        key = k if k.startswith("agi_") else f"agi_{k}"
        if key not in env and not key.startswith("agi_network"):
            env[key] = v
    for i, a in enumerate(argv[1:], 1):
        env.setdefault(f"agi_arg_{i}", a)

    def sighup() -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGHUP)

    try:
        status = await serve_agi(proc.stdout, proc.stdin, channel, env, on_hangup=sighup)
    finally:
        with contextlib.suppress(Exception):
            proc.stdin.close()
        try:
            async with asyncio.timeout(kill_timeout):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return status


# --------------------------------------------------------------------------- scripted channel


@dataclass(frozen=True, slots=True)
class Barge:
    """A digit the scripted caller presses while a prompt plays (STREAM FILE escape)."""

    digit: str


#: in :class:`ScriptedChannel` inputs: the caller hangs up instead of answering this prompt
HANG_UP = "<hangup>"


class ScriptedChannel:
    """A small :class:`~ccd.sim.agi_channel.AgiChannel` driven by a script, for tests and
    benchmarks: the caller's answers to successive digit prompts (``"1"``, ``""`` for a
    timeout, ``"4111111111111111#"``, :data:`HANG_UP`, or :class:`Barge` to press during
    the next prompt), optionally hanging up when a command line matches ``hangup_on``.

    ``play_seconds`` is what each sound is reported to last (``endpos``); ``delay`` is
    real time waited per play/read (0 = instant), to pace benchmark sessions.
    """

    def __init__(
        self,
        inputs: Sequence[str | Barge] = (),
        *,
        callerid: str = "5557770001",
        calleridname: str = "Customer Carol",
        dnid: str = "5551000",
        uniqueid: str = "1795465016.0",
        name: str = "PJSIP/2000-00000000",
        language: str = "en",
        missing: frozenset[str] = frozenset(),
        hangup_on: str | None = None,
        play_seconds: float = 1.42,
        delay: float = 0.0,
        apps: dict[str, str] | None = None,
        variables: dict[str, str] | None = None,
        vmstatus: str = "SUCCESS",
    ) -> None:
        self.inputs = list(inputs)
        self.env = {
            "agi_channel": name,
            "agi_language": language,
            "agi_type": name.split("/")[0],
            "agi_uniqueid": uniqueid,
            "agi_version": "22.10.1",
            "agi_callerid": callerid,
            "agi_calleridname": calleridname,
            "agi_callingpres": "0",
            "agi_callingani2": "0",
            "agi_callington": "0",
            "agi_callingtns": "0",
            "agi_dnid": dnid,
            "agi_rdnis": "unknown",
            "agi_context": "from-trunk",
            "agi_extension": dnid,
            "agi_priority": "4",
            "agi_enhanced": "0.0",
            "agi_accountcode": "",
            "agi_threadid": "140203790612160",
        }
        self.variables: dict[str, str] = dict(variables or {})
        self.vmstatus = vmstatus  # what VoiceMail() leaves in VMSTATUS (FAILED: no mailbox)
        self.missing = missing
        self.hangup_on = hangup_on
        self.play_seconds = play_seconds
        self.delay = delay
        self.apps = apps or {}
        self.played: list[str] = []
        self.commands: list[tuple[str, str]] = []
        self._hung_up = False
        self.state = 6

    @property
    def hung_up(self) -> bool:
        return self._hung_up

    def agi_env(self) -> dict[str, str]:
        return dict(self.env)

    def channel_status(self) -> int:
        return self.state

    def get_variable(self, name: str) -> str | None:
        return self.variables.get(name)

    def evaluate(self, expression: str) -> str:
        builtins = {
            "CALLERID(all)": f'"{self.env["agi_calleridname"]}" <{self.env["agi_callerid"]}>',
            "CALLERID(num)": self.env["agi_callerid"],
            "CALLERID(name)": self.env["agi_calleridname"],
            "CONTEXT": self.env["agi_context"],
            "EXTEN": self.env["agi_extension"],
            "UNIQUEID": self.env["agi_uniqueid"],
            "CHANNEL": self.env["agi_channel"],
        }
        out, i = [], 0
        while i < len(expression):
            j = expression.find("${", i)
            if j < 0:
                out.append(expression[i:])
                break
            k = expression.find("}", j)
            if k < 0:
                out.append(expression[i:])
                break
            out.append(expression[i:j])
            name = expression[j + 2 : k]
            out.append(self.variables.get(name, builtins.get(name, "")))
            i = k + 1
        return "".join(out)

    def set_variable(self, name: str, value: str) -> None:
        self.variables[name] = value

    async def answer(self) -> int:
        return -1 if self._hung_up else 0

    async def _wait(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)

    async def read_digits(self, max_digits: int, timeout: float) -> str:
        if self._hung_up:
            return ""
        if timeout == 0.0:  # digits pressed during the prompt that just played
            if self.inputs and isinstance(self.inputs[0], Barge):
                return self.inputs.pop(0).digit  # type: ignore[union-attr]
            return ""
        await self._wait()
        if not self.inputs:
            return ""
        item = self.inputs.pop(0)
        if isinstance(item, Barge):
            return item.digit
        if item == HANG_UP:
            self._hung_up = True
            return ""
        if "#" in item:
            head = item.split("#", 1)[0]
            return head + "#" if len(head) < max_digits else head[:max_digits]
        return item[:max_digits]

    async def play(self, filename: str) -> float:
        if filename in self.missing:
            return -1.0
        self.played.append(filename)
        await self._wait()
        return 0.0 if self._hung_up else self.play_seconds

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
        await self._wait()
        if self._hung_up:
            return RecordResult("", "hangup", 0.0)
        return (
            RecordResult("#", "dtmf", 3.0)
            if "#" in escape_digits
            else RecordResult("", "timeout", min(timeout, 3.0))
        )

    async def exec_app(self, app: str, args: str) -> str:
        if app.lower() == "voicemail":
            self.variables["VMSTATUS"] = self.vmstatus
        return self.apps.get(app.lower(), "0")

    def on_command_start(self, command: str) -> None:
        if self.hangup_on and command.startswith(self.hangup_on):
            self._hung_up = True

    def on_command(self, command: str, result: str, failed: bool = False) -> None:
        self.commands.append((command, result))

    async def hangup(self) -> None:
        self._hung_up = True
        self.state = 0
