"""``AGI(agi://host:port/script,args)``: a FastAGI session with ccd (or any AGI server)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ccd.sim.agi_session import SimAgiChannel
from ccd.sim.apps import app
from ccd.sim.dialplan import split_args

if TYPE_CHECKING:
    from ccd.sim.channel import Channel
    from ccd.sim.engine import Engine

log = logging.getLogger(__name__)


def agi_url(engine: Engine, url: str) -> str:
    """Apply the simulator's ``--agi HOST:PORT`` override to an ``agi://`` URL."""
    override = engine.settings.agi_override
    if not override or not url.startswith("agi://"):
        return url
    parts = urlsplit(url)
    return parts._replace(netloc=override).geturl()


async def default_runner(url: str, channel: SimAgiChannel) -> str:
    """The FastAGI client of :mod:`ccd.sim.agi_client` (speaks the wire protocol)."""
    from ccd.sim.agi_client import run_fastagi

    return await run_fastagi(url, channel)


@app("AGI", "EAGI")
async def agi(engine: Engine, ch: Channel, data: str) -> int:
    args = [a.strip() for a in split_args(data)]
    request = args[0]
    if not request.startswith(("agi://", "hagi://")):
        log.warning("%s: only FastAGI (agi://) is simulated, not %r", ch.name, request)
        engine.set_var(ch, "AGISTATUS", "FAILURE")
        return 0
    url = agi_url(engine, request)
    script = urlsplit(request).path.lstrip("/")
    session = SimAgiChannel(engine, ch, request, script, args[1:])
    ch.agi_session = session
    runner = engine.agi_runner or default_runner
    try:
        status = await runner(url, session)
    except (OSError, TimeoutError) as exc:
        log.warning("%s: FastAGI %s failed: %s", ch.name, url, exc)
        status = "FAILURE"
    except ImportError:
        log.error("the FastAGI client (ccd.sim.agi_client) is not available")
        status = "FAILURE"
    finally:
        ch.agi_session = None
    if ch.hungup:
        status = "HANGUP"
    if not ch.dead:
        engine.set_var(ch, "AGISTATUS", status)
    return -1 if ch.hungup else 0
