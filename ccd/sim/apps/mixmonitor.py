"""``MixMonitor(file,options)`` / ``StopMixMonitor()``: recordings with real WAV files."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from ccd.sim.apps import app
from ccd.sim.dialplan import split_args
from ccd.sim.recording import Recording

if TYPE_CHECKING:
    from ccd.sim.channel import Channel
    from ccd.sim.engine import Engine


def recording_path(engine: Engine, filename: str) -> Path | None:
    """Where the simulator writes ``filename`` (under ``recording_root``), None = nowhere."""
    root = engine.settings.recording_root
    if root is None:
        return None
    p = Path(filename)
    if p.is_absolute():
        if p.is_relative_to(root):  # already inside the simulated file system (ccd's own dir)
            return p
        return root / p.relative_to(p.anchor)
    return root / "var/spool/asterisk/monitor" / p


def start(engine: Engine, ch: Channel, filename: str, options: str) -> Recording:
    """Start recording ``ch`` (MIXMONITOR_FILENAME, MixMonitorStart)."""
    rec = Recording(
        filename,
        recording_path(engine, filename),
        options,
        engine.clock.now(),
        only_bridged="b" in options,
        ident=str(uuid.uuid4())[:8],
        umask=engine.settings.umask,
    )
    if ch.bridge is not None:
        rec.bridged(True, engine.clock.now())
    ch.recordings.append(rec)
    engine.set_var(ch, "MIXMONITOR_FILENAME", filename)
    engine.chan_event("MixMonitorStart", ch)
    return rec


def stop(engine: Engine, ch: Channel, ident: str = "") -> bool:
    """Stop the channel's recordings (one by id, or all): MixMonitorStop."""
    active = [r for r in ch.recordings if not r.stopped and (not ident or r.ident == ident)]
    for rec in active:
        rec.stop(engine.clock.now())
    if active:
        engine.chan_event("MixMonitorStop", ch)
    return bool(active)


@app("MixMonitor")
async def mixmonitor(engine: Engine, ch: Channel, data: str) -> int:
    args = [*split_args(data), ""]
    filename = args[0].strip()
    if not filename:
        return 0
    rec = start(engine, ch, filename, args[1].strip())
    var = ""
    for opt in args[1].split(")"):
        if opt.startswith("i(") or "i(" in opt:
            var = opt.split("i(", 1)[1]
    if var:
        engine.set_var(ch, var, rec.ident)
    return 0


@app("StopMixMonitor")
async def stopmixmonitor(engine: Engine, ch: Channel, data: str) -> int:
    stop(engine, ch, data.strip())
    return 0
