"""Panel test fixtures (helpers in ``web_support``, importable under importlib mode)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from web_support import Stack, Web, create_database, drop_database, seed  # noqa: E402


@pytest.fixture(scope="module")
def stack(pg_server_url: str) -> Iterator[Stack]:
    """One simulator + daemon + panel for a test module, with seeded data."""
    url = create_database(pg_server_url)
    ids = seed(url)
    # short enough for the silent-panel test, long enough that a heartbeat thread starved
    # for a moment on a busy machine does not get an agent paused in the other tests
    s = Stack(url, heartbeat_timeout=5.0)
    s.ids = ids  # type: ignore[attr-defined]
    try:
        yield s.start()
    finally:
        s.stop()
        drop_database(pg_server_url, url)


@pytest.fixture
def web(stack: Stack) -> Callable[[str], Web]:
    """``web("alice")``: a logged-in HTTP client."""
    def make(username: str) -> Web:
        w = Web(stack.url)
        r = w.login(username)
        assert r.status_code == 200, r.text[:300]
        return w
    return make
