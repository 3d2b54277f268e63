"""Dialplan applications. Each is ``async def app(engine, ch, data) -> int`` (0 = go on,
-1 = hang up), registered by name in :data:`APPS` (case-insensitive like Asterisk). An
application exists only while the module that registers it is loaded
(:mod:`ccd.sim.modules`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccd.sim.channel import Channel
    from ccd.sim.engine import Engine

log = logging.getLogger(__name__)

App = Callable[["Engine", "Channel", str], Awaitable[int]]
APPS: dict[str, App] = {}


def app(*names: str) -> Callable[[App], App]:
    """Register an application under one or more names."""

    def register(fn: App) -> App:
        for n in names:
            APPS[n.lower()] = fn
        return fn

    return register


def lookup_app(name: str) -> App | None:
    load_apps()
    return APPS.get(name.lower())


def app_exists(engine: Engine, name: str) -> bool:
    """The application is simulated and its module is loaded (``core show application``)."""
    return lookup_app(name) is not None and engine.modules.has_app(name)


def no_application(ch: Channel, name: str) -> None:
    """Asterisk's warning for an application that does not exist (pbx.c)."""
    log.warning(
        "No application '%s' for extension (%s, %s, %d)", name, ch.context, ch.exten, ch.priority
    )


async def run_app(engine: Engine, ch: Channel, name: str, data: str, in_h: bool = False) -> int:
    """Run one application; one that does not exist hangs the channel up, as Asterisk does."""
    fn = lookup_app(name)
    if fn is None or not engine.modules.has_app(name):
        no_application(ch, name)
        return -1
    try:
        return await fn(engine, ch, data)
    except Exception:
        log.exception("application %s failed on %s", name, ch.name)
        return -1


_loaded = False


def load_apps() -> None:
    """Import every application module (they register themselves)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from ccd.sim.apps import agi, amd, basic, chanspy, dial, mixmonitor, queue  # noqa: F401
