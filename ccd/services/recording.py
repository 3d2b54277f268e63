"""Start recordings when an agent answers, following each queue's policy."""

from __future__ import annotations

import asyncio
import logging

from ccd.api import ApiError
from ccd.model.domain import CallAnswered, DomainEvent
from ccd.services.calls import CallService

log = logging.getLogger(__name__)


class RecordingPolicy:
    """Bus subscriber: ``always`` queues are recorded from the answer on (MixMonitor);
    ``on_demand`` ones only when an agent or supervisor asks; ``never`` ones not at all."""

    def __init__(self, calls: CallService, default_policy: str = "always") -> None:
        self.calls = calls
        self.default_policy = default_policy
        self.started = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, event: DomainEvent) -> None:
        if isinstance(event, CallAnswered):
            task = asyncio.get_running_loop().create_task(self._on_answer(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _on_answer(self, e: CallAnswered) -> None:
        try:
            queues = await self.calls.directory.queues()
        except Exception as exc:
            log.warning("recording policy unknown for %s (database: %s); using %s", e.queue,
                        exc, self.default_policy)
            policy = self.default_policy
        else:
            q = queues.get(e.queue)
            policy = q.recording_policy if q else self.default_policy
        if policy != "always":
            return
        try:
            result = await self.calls.record(e.call_id, "start")
        except ApiError as exc:
            self.failed += 1
            log.error("could not start recording call %s: %s", e.call_id, exc)
            return
        if not result.get("already"):
            self.started += 1
            log.info("recording call %s to %s", e.call_id, result["recording"])
