"""ccd.heap: settling moves live objects out of full collections, and can be repeated."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from ccd.config import ConfigError, load
from ccd.heap import settle_heap


class Node:
    """A reference cycle: freed only by the cyclic collector."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()  # leave the process as other tests expect it


def test_settle_freezes_what_is_alive() -> None:
    keep = [Node() for _ in range(100)]
    s = settle_heap()
    # a frozen object that another thread of the process frees meanwhile (a pool worker, a
    # test client winding down: more likely on a busy machine) leaves the permanent
    # generation, so the count may only have shrunk since
    assert len(keep) <= gc.get_freeze_count() <= s.frozen
    assert s.seconds >= 0
    assert not any(o is keep[0] for o in gc.get_objects())  # out of every generation


def test_garbage_made_after_a_settle_is_still_collected() -> None:
    settle_heap()
    n = Node()
    gone = weakref.ref(n)
    del n
    gc.collect()
    assert gone() is None


def test_a_second_settle_frees_cycles_that_died_while_frozen() -> None:
    n = Node()
    gone = weakref.ref(n)
    settle_heap()  # n is alive: frozen
    del n
    gc.collect()  # a plain full collection does not look at frozen objects
    assert gone() is not None
    s = settle_heap()  # thaws first, so the dead cycle is found
    assert gone() is None
    assert s.collected >= 1


def test_interval_is_configurable_and_validated() -> None:
    assert load(None, {}).runtime.heap_settle_interval == 600
    cfg = load(None, {"CCD_RUNTIME_HEAP_SETTLE_INTERVAL": "0"})
    assert cfg.runtime.heap_settle_interval == 0
    with pytest.raises(ConfigError, match=r"runtime\.heap_settle_interval"):
        load(None, {"CCD_RUNTIME_HEAP_SETTLE_INTERVAL": "-1"})
