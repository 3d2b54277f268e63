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
        self._missed: set[str] = set()  # answered calls whose MixMonitor could not be sent

    def __call__(self, event: DomainEvent) -> None:
        if isinstance(event, CallAnswered):
            task = asyncio.get_running_loop().create_task(self._on_answer(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _policy(self, queue: str) -> str:
        try:
            queues = await self.calls.directory.queues()
        except Exception as exc:
            log.warning("recording policy unknown for %s (database: %s); using %s", queue,
                        exc, self.default_policy)
            return self.default_policy
        q = queues.get(queue)
        return q.recording_policy if q else self.default_policy

    async def _on_answer(self, e: CallAnswered) -> None:
        if await self._policy(e.queue) == "always":
            await self._start(e.call_id)

    async def _start(self, call_id: str) -> None:
        try:
            result = await self.calls.record(call_id, "start")
        except ApiError as exc:
            self.failed += 1
            self._missed.add(call_id)
            log.error("could not start recording call %s: %s (retried after the next "
                      "resync)", call_id, exc)
            return
        self._missed.discard(call_id)
        if not result.get("already"):
            self.started += 1
            log.info("recording call %s to %s", call_id, result["recording"])

    async def after_resync(self) -> None:
        """Calls whose recording could not start (the AMI link was down at the answer) and
        that are still answered: start it now, late rather than never."""
        for call_id in list(self._missed):
            call = self.calls.model.calls.get(call_id)
            if call is None or not call.open_segments:
                self._missed.discard(call_id)
                continue
            await self._start(call_id)
