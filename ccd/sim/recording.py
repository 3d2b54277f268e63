"""MixMonitor recordings as real WAV files (8 kHz, 16-bit, mono, like Asterisk's ``wav``).

A :class:`Recording` follows its channel: with option ``b`` only the time the channel spends
in a bridge is recorded (a caller who was never bridged leaves a 44-byte header-only file,
as in the captures); muted stretches are written as silence. The audio is a quiet two-tone
signal so players and speech tools see a real, non-empty recording.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

RATE = 8000
_TONE: bytes | None = None


def _tone_second() -> bytes:
    global _TONE
    if _TONE is None:
        samples = (
            int(
                2000 * math.sin(2 * math.pi * 440 * i / RATE)
                + 1200 * math.sin(2 * math.pi * 660 * i / RATE)
            )
            for i in range(RATE)
        )
        _TONE = struct.pack(f"<{RATE}h", *samples)
    return _TONE


def wav_header(data_bytes: int) -> bytes:
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,
        1,
        RATE,
        RATE * 2,
        2,
        16,
        b"data",
        data_bytes,
    )


def _mkdirs(directory: Path, umask: int | None) -> None:
    """Missing directories as Asterisk's ``ast_mkdir`` makes them: 0777 & ~umask."""
    if umask is None:
        directory.mkdir(parents=True, exist_ok=True)
        return
    missing = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        os.chmod(d, 0o777 & ~umask)


def write_wav(path: Path, seconds: float, audible: list[tuple[float, float]],
              umask: int | None = None) -> int:
    """Write ``seconds`` of audio; only the ``audible`` (start, end) stretches carry tone.

    A new file gets mode 0666 & ~``umask`` (Asterisk's umask; None: this process's)."""
    total = max(0, round(seconds * RATE))
    _mkdirs(path.parent, umask)
    tone = _tone_second()
    silence = bytes(RATE * 2)
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    if new and umask is not None:
        os.fchmod(fd, 0o666 & ~umask)
    with os.fdopen(fd, "wb") as f:
        f.write(wav_header(total * 2))
        written = 0
        while written < total:
            n = min(RATE, total - written)
            t = written / RATE
            loud = any(a <= t < b for a, b in audible)
            f.write((tone if loud else silence)[: n * 2])
            written += n
    return 44 + total * 2


@dataclass(eq=False)
class Recording:
    """One MixMonitor on one channel."""

    filename: str
    path: Path | None
    options: str
    started: float
    only_bridged: bool = False
    intervals: list[tuple[float, float]] = field(default_factory=list)
    muted: list[tuple[float, float]] = field(default_factory=list)
    _bridged_since: float | None = None
    _muted_since: float | None = None
    stopped: bool = False
    ident: str = ""
    umask: int | None = None  # Asterisk's (EngineSettings.umask)

    def bridged(self, on: bool, now: float) -> None:
        if on and self._bridged_since is None:
            self._bridged_since = now
        elif not on and self._bridged_since is not None:
            self.intervals.append((self._bridged_since, now))
            self._bridged_since = None

    def mute(self, on: bool, now: float) -> None:
        if on and self._muted_since is None:
            self._muted_since = now
        elif not on and self._muted_since is not None:
            self.muted.append((self._muted_since, now))
            self._muted_since = None

    def stop(self, now: float) -> int:
        """Close the recording and write the file; returns its size (0 if not written)."""
        if self.stopped:
            return 0
        self.stopped = True
        self.bridged(False, now)
        self.mute(False, now)
        spans = self.intervals if self.only_bridged else [(self.started, now)]
        seconds = sum(b - a for a, b in spans)
        # map the recorded spans onto the file's timeline, then cut out muted parts
        audible: list[tuple[float, float]] = []
        offset = 0.0
        for a, b in spans:
            cuts = [(max(a, m0), min(b, m1)) for m0, m1 in self.muted if m1 > a and m0 < b]
            cursor = a
            for c0, c1 in sorted(cuts):
                if c0 > cursor:
                    audible.append((offset + cursor - a, offset + c0 - a))
                cursor = max(cursor, c1)
            if cursor < b:
                audible.append((offset + cursor - a, offset + b - a))
            offset += b - a
        if self.path is None:
            return 0
        return write_wav(self.path, seconds, audible, self.umask)
