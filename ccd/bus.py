"""In-process fan-out of domain events to the adapters (store, panel, statistics).

Subscribers are plain callables run in order; one that raises is logged and counted
and never stops the others or the AMI link.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from ccd.model.domain import DomainEvent

log = logging.getLogger(__name__)

Subscriber = Callable[[DomainEvent], None]


class Bus:
    """Publish domain events to every subscriber."""

    def __init__(self) -> None:
        self._subs: list[tuple[str, Subscriber]] = []
        self.published = 0
        self.errors = 0

    def subscribe(self, name: str, fn: Subscriber) -> None:
        """Add a subscriber (``name`` is used in logs)."""
        self._subs.append((name, fn))

    def unsubscribe(self, fn: Subscriber) -> None:
        self._subs = [(n, f) for n, f in self._subs if f is not fn]

    def publish(self, event: DomainEvent) -> None:
        self.published += 1
        for name, fn in self._subs:
            try:
                fn(event)
            except Exception:
                self.errors += 1
                log.exception("subscriber %s failed on %s", name, event.kind)

    def publish_all(self, events: Iterable[DomainEvent]) -> None:
        for e in events:
            self.publish(e)
