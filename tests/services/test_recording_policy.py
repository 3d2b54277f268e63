"""The recording policy starts a recording late rather than never: a MixMonitor that could
not be sent at the answer (no AMI link) is sent after the next resync, if the call is still
answered."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ccd.api import ApiError
from ccd.model import domain as d
from ccd.services.recording import RecordingPolicy


class Calls:
    """What the policy uses of the call service: the model's calls, queues, record()."""

    def __init__(self) -> None:
        self.model = SimpleNamespace(calls={})
        self.directory = SimpleNamespace(queues=self._queues)
        self.link_up = False
        self.sent: list[str] = []

    async def _queues(self) -> dict[str, Any]:
        return {"support": SimpleNamespace(recording_policy="always")}

    async def record(self, call_id: str, what: str) -> dict[str, Any]:
        if not self.link_up:
            raise ApiError("Asterisk is not connected (no AMI link; MixMonitor not sent)")
        self.sent.append(call_id)
        return {"call_id": call_id, "recording": f"/rec/{call_id}.wav"}


async def test_a_recording_missed_at_the_answer_starts_after_the_resync() -> None:
    calls = Calls()
    policy = RecordingPolicy(calls)  # type: ignore[arg-type]
    for cid in ("c1", "c2"):
        calls.model.calls[cid] = SimpleNamespace(open_segments={"x": object()})
        await policy._on_answer(d.CallAnswered(1.0, cid, "support", "PJSIP/1001", "", "", 1.0))
    assert calls.sent == [] and policy.failed == 2
    calls.model.calls["c2"].open_segments = {}  # c2 ended while the link was down
    calls.link_up = True
    await policy.after_resync()
    assert calls.sent == ["c1"] and policy.started == 1
    await policy.after_resync()  # nothing twice
    assert calls.sent == ["c1"]
