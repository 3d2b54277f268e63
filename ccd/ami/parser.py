"""AMI wire protocol: split a byte stream into frames and parse frames into fields.

Pure functions and a small incremental splitter; no sockets. Asterisk sends
``Key: Value`` lines ending in CRLF, a frame ends with an empty line, and the
connection starts with a banner line (``Asterisk Call Manager/11.0.0``) that has
no empty line after it.

Most events are noise for a call centre (``VarSet`` and ``Newexten`` are more than
half of all frames), so callers peek at the event name with :func:`event_name`
before paying for :func:`parse_frame`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

TERMINATOR = b"\r\n\r\n"
BANNER_PREFIX = b"Asterisk Call Manager/"
DEFAULT_MAX_FRAME = 256 * 1024


class FrameError(ValueError):
    """A frame that cannot be understood (logged, counted and skipped)."""


@dataclass(slots=True)
class ParserStats:
    """Counters of what the splitter saw; exported as metrics."""

    frames: int = 0
    banners: int = 0
    oversized: int = 0
    truncated: int = 0
    bytes: int = 0


@dataclass(slots=True)
class FrameSplitter:
    """Incremental splitter: feed it chunks as they arrive, get whole frames back.

    Frames are returned as raw bytes without their terminating empty line. A banner
    line is returned as its own frame (it starts with ``Asterisk Call Manager/``).
    A frame longer than ``max_frame`` bytes without a terminator is dropped (and
    counted) and the splitter resynchronises at the next empty line, so a hostile
    or broken peer cannot make ccd buffer without bound.
    """

    max_frame: int = DEFAULT_MAX_FRAME
    stats: ParserStats = field(default_factory=ParserStats)
    _buf: bytearray = field(default_factory=bytearray)
    _scan: int = 0  # where to resume searching for a terminator
    _discarding: bool = False  # inside an oversized frame, skipping to its end

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame completed by them."""
        self.stats.bytes += len(data)
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        pos = 0
        end = len(buf)
        while pos < end:
            if self._discarding:
                idx = buf.find(TERMINATOR, max(pos, self._scan))
                if idx < 0:
                    # keep only the last 3 bytes: they may start a terminator
                    keep = max(pos, end - 3)
                    self._scan = 0
                    del buf[:keep]
                    return frames
                self._discarding = False
                pos = idx + 4
                self._scan = pos
                continue
            if buf[pos] == 0x0D:  # stray CRLF between frames
                if end - pos < 2:
                    break
                if buf[pos + 1] == 0x0A:
                    pos += 2
                    self._scan = max(self._scan, pos)
                    continue
            if buf[pos] == 0x41 and buf.startswith(BANNER_PREFIX[: end - pos], pos):  # 'A'
                nl = buf.find(b"\r\n", pos, pos + 256)
                if nl < 0 and end - pos < 256:
                    break  # need more bytes to tell a banner from a frame
                if nl >= 0 and buf.startswith(BANNER_PREFIX, pos):
                    frames.append(bytes(buf[pos:nl]))
                    self.stats.banners += 1
                    pos = nl + 2
                    self._scan = pos
                    continue
            idx = buf.find(TERMINATOR, max(pos, self._scan))
            if idx < 0:
                if end - pos > self.max_frame:
                    self.stats.oversized += 1
                    log.warning("AMI frame over %d bytes with no end; skipping", self.max_frame)
                    self._discarding = True
                    self._scan = max(pos, end - 3)
                    continue
                self._scan = max(pos, end - 3)
                break
            if idx - pos > self.max_frame:
                self.stats.oversized += 1
                log.warning("AMI frame over %d bytes; skipped", self.max_frame)
            else:
                frames.append(bytes(buf[pos:idx]))
                self.stats.frames += 1
            pos = idx + 4
            self._scan = pos
        if pos:
            del buf[:pos]
            self._scan = max(0, self._scan - pos)
        return frames

    def close(self) -> bytes:
        """End of stream: return (and count) whatever incomplete frame is left."""
        rest = bytes(self._buf).strip(b"\r\n")
        self._buf.clear()
        self._scan = 0
        self._discarding = False
        if rest:
            self.stats.truncated += 1
        return rest

    @property
    def pending(self) -> int:
        """Bytes buffered while waiting for the end of a frame."""
        return len(self._buf)


def event_name(raw: bytes) -> bytes | None:
    """Return the event name of a raw frame (``b"VarSet"``) without parsing it.

    Asterisk always writes ``Event:`` as the first line of an event frame.
    Returns ``None`` for responses, banners and anything else.
    """
    if raw.startswith(b"Event: "):
        nl = raw.find(b"\r\n", 7)
        return raw[7:] if nl < 0 else raw[7:nl]
    return None


def parse_frame(raw: bytes) -> dict[str, str]:
    """Parse a raw frame into ``{key: value}``.

    Repeated keys (``Variable:`` in a Status event, ``Output:`` in a Command
    response) are joined with ``"\\n"``: AMI values never contain a newline, so
    :func:`values` splits them back losslessly. Bytes that are not UTF-8 (caller
    names come from SIP trunks) are replaced, never fatal. Raises
    :class:`FrameError` for a frame with no ``Key: Value`` line at all.
    """
    text = raw.decode("utf-8", "replace")
    out: dict[str, str] = {}
    bad = 0
    for line in text.split("\r\n"):
        key, sep, value = line.partition(":")
        if not sep or not key or " " in key:
            bad += 1
            continue
        if value.startswith(" "):
            value = value[1:]
        if key in out:
            out[key] = out[key] + "\n" + value
        else:
            out[key] = value
    if not out:
        raise FrameError(f"no 'Key: Value' line in frame {raw[:80]!r}")
    return out


def values(frame: dict[str, str], key: str) -> list[str]:
    """All values of a key that may repeat (see :func:`parse_frame`)."""
    v = frame.get(key)
    return [] if v is None else v.split("\n")


def peek_field(raw: bytes, key: bytes) -> str | None:
    """Value of one ``key`` in a raw frame without parsing the rest of it."""
    needle = b"\r\n" + key + b": "
    i = raw.find(needle)
    if i < 0:
        return None
    i += len(needle)
    j = raw.find(b"\r\n", i)
    return raw[i:j if j >= 0 else len(raw)].decode("utf-8", "replace")
