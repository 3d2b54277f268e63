"""Simulator tests run on virtual time (:class:`ccd.sim.clock.VirtualTimeLoop`): the
simulator, its AMI and FastAGI peers and the test itself share one event loop whose clock
only moves when all of them are idle, so simulated durations (RingTime, HoldTime, wrap-up,
timeouts) are exact however loaded the machine is. A test that talks to another process
is marked ``realtime`` and runs on an ordinary loop.

Also makes the shared helpers (``sim_support``) importable under pytest's importlib mode."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from ccd.sim.clock import VirtualTimeLoop

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop of each asyncio test here: virtual time unless marked ``realtime``."""
    if item.get_closest_marker("realtime") is not None:
        return {"realtime": asyncio.new_event_loop}
    return {"virtual-time": VirtualTimeLoop}
