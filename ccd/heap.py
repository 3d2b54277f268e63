"""Keeping CPython's full garbage collections short in a long-running daemon.

A full (generation 2) collection walks every container object the process holds and stops
every thread while it does: with the panel's agent connections, the database pools and the
flows loaded, that is tens of milliseconds, several times a minute under call traffic, and
it lands on screen pops and AGI replies (``bench/screen_pop.py``, ``bench/agi.py``).

:func:`settle_heap` moves the objects that are alive now (modules, configuration, pools,
connections) into the collector's permanent generation (``gc.freeze``), so later full
collections walk only what was created since. The daemon settles once start-up is over and
then every ``[runtime] heap_settle_interval`` seconds: objects that became long-lived since
(agents' panel connections) join the frozen set, and what an earlier settle froze is thawed
and collected first, so reference cycles that died among it are still freed.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Settled:
    """What one settle did."""

    frozen: int  #: objects in the permanent generation afterwards
    collected: int  #: unreachable objects the full collection found
    seconds: float  #: how long every thread was stopped


def settle_heap() -> Settled:
    """Thaw, collect everything, freeze what is alive; safe to call any number of times."""
    t = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    return Settled(gc.get_freeze_count(), collected, time.perf_counter() - t)
