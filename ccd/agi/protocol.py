"""The AGI wire protocol as Asterisk 22's ``res_agi.c`` speaks it: pure functions, no I/O.

Asterisk -> script: ``agi_<key>: <value>`` header lines ended by an empty line, then one
reply per command::

    200 result=1                                   plain
    200 result=0 endpos=11360                      STREAM FILE
    200 result= (timeout)                          GET DATA, no digit
    200 result=1 (C770001)                         GET VARIABLE
    200 result=53 (dtmf) endpos=8000               RECORD FILE
    100 result=0 Trying...                         GOSUB (a 1xx line precedes the final reply)
    510 Invalid or unknown command
    511 Command Not Permitted on a dead channel or intercept routine
    520-Invalid command syntax.  Proper usage follows:
    <usage text, any number of lines>
    520 End of proper usage.

and on FastAGI an unsolicited ``HANGUP`` line when the channel hangs up. A ``result=-1``
from a media command means the channel hung up (or failed) during it.

Script -> Asterisk: one command per line; arguments are split on blanks, ``"`` quotes a
blank-containing argument and ``\\`` escapes the next character (``parse_args`` in
res_agi.c). A CR or LF inside an argument would start another command: rejected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

#: reply codes
CODE_OK, CODE_TRYING = 200, 100
CODE_INVALID, CODE_DEAD, CODE_USAGE, CODE_MEMORY = 510, 511, 520, 503

HANGUP_LINE = "HANGUP"
USAGE_START = "520-Invalid command syntax.  Proper usage follows:"
USAGE_END = "520 End of proper usage."
USAGE_NONE = "520 Invalid command syntax.  Proper usage not available."
INVALID_LINE = "510 Invalid or unknown command"
DEAD_LINE = "511 Command Not Permitted on a dead channel or intercept routine"

#: the headers FastAGI adds before the channel's own (``launch_netscript`` in res_agi.c)
NETWORK_HEADERS = ("agi_network", "agi_network_script", "agi_request")
#: the channel headers in the order ``setup_env`` sends them
ENV_ORDER = (
    "agi_channel", "agi_language", "agi_type", "agi_uniqueid", "agi_version", "agi_callerid",
    "agi_calleridname", "agi_callingpres", "agi_callingani2", "agi_callington", "agi_callingtns",
    "agi_dnid", "agi_rdnis", "agi_context", "agi_extension", "agi_priority", "agi_enhanced",
    "agi_accountcode", "agi_threadid",
)


class AgiError(Exception):
    """Base of every AGI failure."""


class AgiProtocolError(AgiError):
    """The peer sent something that is not AGI (bad header, unparseable reply)."""


class AgiHangup(AgiError):
    """The channel hung up: a ``HANGUP`` notification, ``result=-1`` from a media command,
    a ``511`` reply or the connection closing."""


class AgiDeadChannel(AgiHangup):
    """``511``: the command is not allowed on a channel that already hung up."""


class AgiCommandError(AgiError):
    """Asterisk refused a command; ``reply`` holds what it said."""

    def __init__(self, message: str, reply: AgiReply) -> None:
        super().__init__(message)
        self.reply = reply


class AgiInvalidCommand(AgiCommandError):
    """``510 Invalid or unknown command``."""


class AgiUsageError(AgiCommandError):
    """``520``: wrong arguments; ``usage`` is Asterisk's usage text."""

    def __init__(self, message: str, reply: AgiReply, usage: str) -> None:
        super().__init__(message, reply)
        self.usage = usage


@dataclass(slots=True)
class AgiReply:
    """One parsed reply.

    ``result`` stays a string: GET DATA digits keep their leading zeros (``result=007``)
    and may be empty (``result= (timeout)``). ``data`` is the text in parentheses,
    ``extra`` the trailing ``key=value`` pairs (``endpos``, ``digit``), ``text`` any other
    trailing words (``Gosub complete``).
    """

    code: int
    result: str = ""
    data: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    text: str = ""
    raw: str = ""

    @property
    def result_int(self) -> int:
        """``result`` as an integer (-1 if it is not one)."""
        try:
            return int(self.result)
        except ValueError:
            return -1

    @property
    def endpos(self) -> int:
        """``endpos=`` of STREAM FILE / RECORD FILE, 0 when absent."""
        try:
            return int(self.extra.get("endpos", "0"))
        except ValueError:
            return 0


_RESULT_RE = re.compile(r"result=(\S*)")
_DATA_RE = re.compile(r"\((.*)\)((?:\s+[A-Za-z_]+=\S*)*)\s*$", re.DOTALL)
_KV_RE = re.compile(r"([A-Za-z_]+)=(\S*)")


def parse_reply_line(line: str) -> AgiReply:
    """Parse one ``<code> ...`` reply line (without its LF). 5xx lines keep their text."""
    raw = line.rstrip("\r\n")
    head, _, rest = raw.partition(" ")
    if len(head) != 3 or not head.isdigit():
        raise AgiProtocolError(f"not an AGI reply: {raw[:120]!r}")
    reply = AgiReply(code=int(head), raw=raw)
    if reply.code >= 500:
        reply.text = rest
        m = _RESULT_RE.match(rest)
        if m:  # "503 result=-2 Memory allocation failure"
            reply.result = m.group(1)
            reply.text = rest[m.end():].strip()
        return reply
    m = _RESULT_RE.match(rest)
    if not m:
        raise AgiProtocolError(f"reply without result=: {raw[:120]!r}")
    reply.result = m.group(1)
    tail = rest[m.end():].strip()
    if tail.startswith("("):
        dm = _DATA_RE.fullmatch(tail)
        if dm:
            reply.data = dm.group(1)
            tail = dm.group(2).strip()
    words = []
    for word in tail.split():
        kv = _KV_RE.fullmatch(word)
        if kv:
            reply.extra[kv.group(1)] = kv.group(2)
        else:
            words.append(word)
    reply.text = " ".join(words)
    return reply


def usage_text(lines: Iterable[str]) -> str:
    """The usage text of a 520 block (between its first and last line)."""
    return "\n".join(lines).strip()


def is_usage_end(line: str) -> bool:
    """True for the line that closes a ``520-`` block.

    Older Asterisk versions wrote the usage text without a final LF, so the closing
    ``520 End of proper usage.`` can end a text line instead of starting its own.
    """
    return line.startswith("520 ") or line.endswith(USAGE_END)


# --------------------------------------------------------------------------- commands

_SAFE_WORD = re.compile(r"[A-Za-z0-9_.+\-/:@,*#=]+")
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\([A-Za-z0-9_.,\- ]*\))?")


def quote(arg: object) -> str:
    """One argument as ``parse_args`` will read it back exactly.

    Raises ValueError for CR/LF (they would end the command and inject another).
    """
    s = str(arg)
    if "\n" in s or "\r" in s or "\0" in s:
        raise ValueError(f"AGI argument contains a line break or NUL: {s[:60]!r}")
    if s and _SAFE_WORD.fullmatch(s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


#: res_agi.c reads a command into a 2048-byte buffer: a longer line is cut there and its
#: remainder runs as a second command, so nothing longer may be sent.
MAX_COMMAND_BYTES = 2047


def build_command(*words: object) -> bytes:
    """``build_command("SET", "VARIABLE", name, value)`` -> the line to send (UTF-8, LF).

    Raises ValueError for a line Asterisk would split (line break, over 2047 bytes).
    """
    line = (" ".join(quote(w) for w in words) + "\n").encode("utf-8")
    if len(line) > MAX_COMMAND_BYTES:
        raise ValueError(f"AGI command longer than {MAX_COMMAND_BYTES} bytes")
    return line


def parse_args(line: str) -> list[str]:
    """Split a command line into arguments like ``parse_args`` in res_agi.c."""
    argv: list[str] = []
    cur: list[str] = []
    quoted = escaped = False
    in_word = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and not in_word:
                in_word = True
            continue
        if ch in " \t" and not quoted and not escaped:
            if in_word:
                argv.append("".join(cur))
                cur = []
                in_word = False
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        escaped = False
        in_word = True
        cur.append(ch)
    if in_word:
        argv.append("".join(cur))
    return argv


# --------------------------------------------------------------------------- headers


def parse_env(block: bytes) -> dict[str, str]:
    """The ``agi_*`` header block (up to and including the empty line) as a dict.

    Raises AgiProtocolError for a line that is not ``agi_<key>: <value>``.
    """
    env: dict[str, str] = {}
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        text = block.decode("latin-1")
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.startswith("agi_") or not key[4:].replace("_", "").isalnum():
            raise AgiProtocolError(f"bad AGI header line {line[:80]!r}")
        env[key] = value[1:] if value.startswith(" ") else value
    if not env:
        raise AgiProtocolError("empty AGI header block")
    return env


def script_of(env: dict[str, str]) -> str:
    """The script path a session asks for: ``agi_network_script`` (FastAGI) or
    the path part of ``agi_request``, without leading/trailing slashes and query."""
    script = env.get("agi_network_script")
    if script is None:
        req = env.get("agi_request", "")
        if "://" in req:
            req = req.split("://", 1)[1]
            req = req.split("/", 1)[1] if "/" in req else ""
        script = req
    return script.split("?", 1)[0].strip("/")


def env_lines(env: dict[str, str]) -> bytes:
    """Header block bytes in Asterisk's order (network headers, channel headers, args)."""
    keys = [k for k in NETWORK_HEADERS if k in env]
    keys += [k for k in ENV_ORDER if k in env]
    keys += [k for k in env if k not in keys]
    return "".join(f"{k}: {env[k]}\n" for k in keys).encode() + b"\n"
