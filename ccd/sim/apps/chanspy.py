"""``ChanSpy(prefix,options)``: a supervisor listens to (``q``uietly), whispers to (``w``)
or barges into (``B``) a call. The spying channel joins the spied channel's audio; Asterisk
reports it with ChanSpyStart/ChanSpyStop (no bridge events)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim.apps import app
from ccd.sim.apps.basic import pause
from ccd.sim.dialplan import split_args

if TYPE_CHECKING:
    from ccd.sim.channel import Channel
    from ccd.sim.engine import Engine


def spy_mode(options: str) -> str:
    if "B" in options:
        return "barge"
    if "w" in options or "W" in options:
        return "whisper"
    return "listen"


def _target(engine: Engine, spyer: Channel, prefix: str) -> Channel | None:
    low = prefix.lower()
    for ch in engine.channels.values():
        if ch is spyer or ch.dead or ch.state != C.UP:
            continue
        if ch.name.lower().startswith(low) and ch.spied_by is None:
            return ch
    return None


@app("ChanSpy")
async def chanspy(engine: Engine, ch: Channel, data: str) -> int:
    args = [*split_args(data), ""]
    prefix, options = args[0].strip(), args[1].strip()
    if ch.state != C.UP:
        engine.answer(ch)
    engine.set_var(ch, "SPYMODE", spy_mode(options))
    while not ch.hungup:
        spyee = _target(engine, ch, prefix) if prefix else None
        if spyee is None:
            if not await pause(engine, ch, 1.0):
                return -1
            continue
        spyee.spied_by = ch
        engine.emit("ChanSpyStart", "call", [*ch.snapshot("Spyer"), *spyee.snapshot("Spyee")])
        while not ch.hungup and not spyee.dead:
            await pause(engine, ch, 0.5)
        spyee.spied_by = None
        fields = [*ch.snapshot("Spyer")]
        if not spyee.dead:
            fields.extend(spyee.snapshot("Spyee"))
        engine.emit("ChanSpyStop", "call", fields)
        if "E" in options or ch.hungup:
            return -1
    return -1
