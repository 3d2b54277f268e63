"""The outcomes of the real capture F7's attempts (real-3: camp1 progressive, camp2 with
AMD on and app_amd not loaded), from its OriginateResponses and the live model's call
records - what the dialer decides, without a dialer."""

from __future__ import annotations

from pathlib import Path

from ccd.ami.capture import read_capture
from ccd.ami.parser import FrameSplitter, parse_frame
from ccd.campaigns import rules
from ccd.cli.replay import replay_file
from ccd.model.domain import CallEnded
from ccd.model.live import LiveModel, ModelConfig

F7 = Path("/work/shared/asterisk-captures/real-3/F7-campaign-progressive/"
          "F7-campaign-progressive.ami")


def test_f7_attempts_get_the_outcomes_the_phones_saw() -> None:
    frames = [parse_frame(raw) for raw in FrameSplitter().feed(read_capture(F7))
              if raw.startswith(b"Event: OriginateResponse")]
    reasons = [int(f["Reason"]) for f in frames]
    assert reasons == [4, 0, 3, 3, 4]  # answered, busy (!), no answer x2, answered
    model = LiveModel(ModelConfig(outbound_contexts=frozenset({"ccd-campaign"})))
    events, _ = replay_file(F7, model)
    recs = [e.record.to_dict() for e in events if isinstance(e, CallEnded)]
    outcomes = []
    for reason, rec in zip(reasons, recs, strict=True):
        if reason == rules.REASON_ANSWERED:
            outcomes.append(rules.classify_answered("progressive", rec["variables"],
                                                    rules.record_agent(rec), rec))
        else:
            outcomes.append(rules.from_failure(reason, rec["hangup_cause"]))
    # expected.json: 11 answered by 1001, 12 rejected (486), 13 ignored twice, 14 answered
    # and closed by the PBX 10 ms later with no agent ringing
    assert outcomes == ["answered", "busy", "no_answer", "no_answer", "dropped"]
