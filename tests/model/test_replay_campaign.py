"""The real capture F7 (real-3: a progressive campaign through the trunk) through the real
parser and model. Expected facts from the capture's frames and its expected.json (the
phones' events), not from the model: contact 11 answers and talks to Agent Alice, 12
refuses with 486, 13 rings out twice, 14 answers and Asterisk drops it 8 ms later because
AMD() does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccd.cli.replay import replay_file
from ccd.model.domain import CallEnded, CallRecord
from ccd.model.live import LiveModel, ModelConfig

F7 = Path("/work/shared/asterisk-captures/real-3/F7-campaign-progressive/"
          "F7-campaign-progressive.ami")


def records() -> list[CallRecord]:
    model = LiveModel(ModelConfig(outbound_contexts=frozenset({"ccd-campaign"})))
    events, ingest = replay_file(F7, model)
    assert ingest.stats.malformed == 0 and ingest.stats.model_errors == 0
    return [e.record for e in events if isinstance(e, CallEnded)]


def test_campaign_calls_of_f7() -> None:
    answered, busy, no_answer, no_answer2, dropped = records()
    for r in (answered, busy, no_answer, no_answer2, dropped):
        assert r.direction == "outbound" and r.variables["CCD_ATTEMPT"]
    assert [r.dialed for r in (answered, busy, no_answer, dropped)] == [
        "15557770011@trunk", "15557770012@trunk", "15557770013@trunk", "15557770014@trunk"]
    # 11: the contact (trunk channel) hung up after talking to Alice
    assert (answered.agent, answered.queue, answered.hangup_by) == ("PJSIP/1001", "overflow",
                                                                    "customer")
    # 12: 486 Busy Here - never answered, cause 17
    assert busy.answer is None and (busy.hangup_cause, busy.hangup_cause_txt) == (17,
                                                                                 "User busy")
    assert no_answer.hangup_cause == no_answer2.hangup_cause == 19
    # 14: answered, never queued; nobody hung up - the PBX gave the channel up
    # (SoftHangupRequest Cause 16 first, Hangup Cause 0) 1.4 ms after the answer
    assert dropped.answer is not None and dropped.queue == "" and not dropped.agent
    assert dropped.hangup_by == "system" and dropped.hangup_cause == 0
    assert dropped.end is not None
    assert dropped.end - dropped.answer == pytest.approx(0.0014, abs=0.001)
    assert dropped.variables["CCD_AMD"] == "1" and "CCD_ABANDONED" not in dropped.variables
