"""Read recorded AMI streams: the captures' format (raw frames with ``# `` comment
lines between them) or a plain AMI log. Comment lines are dropped; the bytes that
remain are exactly what Asterisk sent."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path

#: a ``# t=`` value this large is an epoch time, not seconds since the capture started
EPOCH_FLOOR = 1e9


def server_bytes(data: bytes) -> bytes:
    """Drop comment lines (``#`` + LF terminated) and keep Asterisk's bytes verbatim."""
    if b"\n#" not in data and not data.startswith(b"#"):
        return data
    out = bytearray()
    for line in data.splitlines(keepends=True):
        if line.startswith(b"#") and not line.endswith(b"\r\n"):
            continue
        out += line
    return bytes(out)


def read_capture(path: str | Path) -> bytes:
    """The server byte stream of a capture file."""
    return server_bytes(Path(path).read_bytes())


def timed_chunks(data: bytes) -> list[tuple[float, bytes]]:
    """The server bytes of a capture in pieces, each with its receive time (epoch seconds).

    Uses the captures' ``# start_epoch=`` header and ``# t=<seconds>`` lines, so events
    without a ``Timestamp`` field (``timestampevents=no``) still get a time. ``t=`` is
    seconds since the start in the first captures and epoch seconds in later ones
    (``real-2/``, ``real-3/``); a value past 10^9 is taken as epoch. A plain AMI log
    without those lines is one piece with time 0.
    """
    start = 0.0
    t = 0.0
    out: list[tuple[float, bytes]] = []
    buf = bytearray()
    for line in data.splitlines(keepends=True):
        if line.startswith(b"#") and not line.endswith(b"\r\n"):
            text = line.decode("utf-8", "replace")
            if "start_epoch=" in text:
                with contextlib.suppress(ValueError, IndexError):
                    start = float(text.split("start_epoch=", 1)[1].split()[0])
            elif text.startswith("# t="):
                try:
                    new_t = float(text[4:].split()[0])
                except (ValueError, IndexError):
                    continue
                if buf:
                    out.append((_when(start, t), bytes(buf)))
                    buf.clear()
                t = new_t
            continue
        buf += line
    if buf:
        out.append((_when(start, t), bytes(buf)))
    return out


def _when(start: float, t: float) -> float:
    if t >= EPOCH_FLOOR:
        return t
    return start + t if start else 0.0


def rewrite_variable(data: bytes, variable: str, fn: Callable[[str], str]) -> bytes:
    """``data`` with the value of every ``VarSet`` of ``variable`` replaced by ``fn(value)``
    (e.g. a capture's recordings moved to another directory); nothing else changes."""
    pattern = re.compile(rb"(Variable: " + re.escape(variable.encode()) + rb"\r\nValue: )"
                         rb"([^\r\n]*)(\r\n)")
    return pattern.sub(lambda m: m[1] + fn(m[2].decode("utf-8", "surrogateescape"))
                       .encode("utf-8", "surrogateescape") + m[3], data)
