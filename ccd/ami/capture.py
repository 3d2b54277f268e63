"""Read recorded AMI streams: the captures' format (raw frames with ``# `` comment
lines between them) or a plain AMI log. Comment lines are dropped; the bytes that
remain are exactly what Asterisk sent."""

from __future__ import annotations

from pathlib import Path


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
