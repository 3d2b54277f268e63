"""AMD(): answering machine detection (app_amd), as far as a simulated call has a voice.

A person says a short "hello?" and waits: HUMAN once ``after_greeting_silence`` follows
the word; an answering machine's greeting goes on past ``greeting``: MACHINE. Which one
answered is the phone's ``machine`` profile. Times come from ``amd.conf`` ``[general]``
(Asterisk's defaults otherwise) or the application's arguments; AMDSTATUS / AMDCAUSE are
set like app_amd (``HUMAN-<silence>-<after greeting>``, ``LONGGREETING-<voice>-<greeting>``,
``HANGUP-<ms>`` when the contact hangs up first). The application exists only while
``app_amd`` is loaded (see :mod:`ccd.sim.modules`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccd.sim.apps import app
from ccd.sim.apps.basic import pause
from ccd.sim.dialplan import split_args

if TYPE_CHECKING:
    from ccd.sim.channel import Channel
    from ccd.sim.engine import Engine

#: app_amd's defaults (ms)
DEFAULTS = {"initial_silence": 2500, "greeting": 1500, "after_greeting_silence": 800,
            "total_analysis_time": 5000}
#: how long a person's "hello?" lasts in the simulation (ms)
HELLO_MS = 600
ARGS = ("initial_silence", "greeting", "after_greeting_silence", "total_analysis_time")


def settings(engine: Engine, data: str) -> dict[str, int]:
    """amd.conf [general] over the defaults, then the application's arguments."""
    out = dict(DEFAULTS)
    conf = engine.config.files.get("amd.conf")
    general = conf.section("general") if conf is not None else None
    for key in DEFAULTS:
        value = general.get(key) if general is not None else None
        if value and value.strip().isdigit():
            out[key] = int(value.strip())
    for key, value in zip(ARGS, split_args(data), strict=False):
        if value.strip().isdigit():
            out[key] = int(value.strip())
    return out


@app("AMD")
async def amd(engine: Engine, ch: Channel, data: str) -> int:
    s = settings(engine, data)
    phone = engine.phones.get(ch.endpoint) if ch.endpoint else None
    machine = phone is not None and phone.profile.machine
    if machine:
        wait_ms = min(s["greeting"], s["total_analysis_time"])
        status, cause = "MACHINE", f"LONGGREETING-{wait_ms}-{s['greeting']}"
    else:
        wait_ms = min(HELLO_MS + s["after_greeting_silence"], s["total_analysis_time"])
        status = "HUMAN"
        cause = f"HUMAN-{s['after_greeting_silence']}-{s['after_greeting_silence']}"
    if not await pause(engine, ch, wait_ms / 1000.0):
        if ch.hungup:
            engine.set_var(ch, "AMDSTATUS", "HANGUP")
            engine.set_var(ch, "AMDCAUSE", f"HANGUP-{wait_ms}")
            return -1
        return 0
    engine.set_var(ch, "AMDSTATUS", status)
    engine.set_var(ch, "AMDCAUSE", cause)
    return 0
