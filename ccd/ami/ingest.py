"""The ingest path: bytes -> frames -> typed events -> live model -> domain events.

Shared by the daemon's AMI link, ``ccd replay`` and the benchmark, so all three
measure and test the same code. A malformed frame or a model bug costs one frame,
never the link or the rest of the data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ccd.ami.events import DEFAULT_INTEREST, Interest, decode
from ccd.ami.parser import FrameError, FrameSplitter, peek_field
from ccd.ami.timestamps import LinkClock
from ccd.model.domain import DomainEvent
from ccd.model.live import LiveModel

log = logging.getLogger(__name__)

_UNSET = float("nan")  # decode()'s time for frames without a usable Timestamp


@dataclass(slots=True)
class IngestStats:
    frames: int = 0
    events: int = 0  # typed events given to the model
    malformed: int = 0
    model_errors: int = 0


class Ingest:
    """Turns received AMI bytes into domain events for one model."""

    def __init__(self, model: LiveModel, interest: Interest = DEFAULT_INTEREST) -> None:
        self.model = model
        self.interest = interest
        self.splitter = FrameSplitter()
        self.clock = LinkClock()  # its ``replaced`` counts the Timestamps it did not use
        self.stats = IngestStats()

    def feed(self, data: bytes, now: float = 0.0) -> list[DomainEvent]:
        """Process received bytes; ``now`` is their receive time (epoch seconds, 0 if
        unknown): events without a plausible Timestamp get the link's time from it."""
        out: list[DomainEvent] = []
        for raw in self.splitter.feed(data):
            out.extend(self.frame(raw, now))
        return out

    def frame(self, raw: bytes, now: float = 0.0) -> list[DomainEvent]:
        """Process one complete raw frame."""
        self.stats.frames += 1
        try:
            event = decode(raw, _UNSET, self.interest)
        except (FrameError, ValueError) as exc:
            self.stats.malformed += 1
            log.warning("skipping malformed AMI frame: %s", exc)
            return []
        if event is None:
            return []
        clock = self.clock
        ts = event.ts
        if ts == ts:
            event.ts = clock.check(ts, now)
        else:  # no Timestamp, or one decode refused (0, negative, nan, year 3000 ...)
            stamp = peek_field(raw, b"Timestamp")
            if stamp is not None:
                clock.bad(stamp)
            event.ts = clock.expected(now)
        self.stats.events += 1
        try:
            return self.model.feed(event)
        except Exception:
            self.stats.model_errors += 1
            log.exception("live model failed on %s; event skipped", event.name)
            return []
