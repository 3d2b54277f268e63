"""Outcomes and retry planning (pure)."""

from __future__ import annotations

import pytest

from ccd.campaigns import rules
from ccd.campaigns.rules import DEFAULT_RETRY, RetryRule, plan_retry


def test_parse_rules_and_durations() -> None:
    assert rules.parse_duration("90") == 90
    assert rules.parse_duration("10m") == 600
    assert rules.parse_duration("2h") == 7200
    assert rules.parse_duration("1.5d") == 129600
    assert rules.parse_rule("busy=10m*1.5/5") == ("busy", RetryRule(600, 1.5, 5))
    assert rules.parse_rule("no_answer=1h") == ("no_answer", RetryRule(3600, 1.0, 3))
    for bad in ("answered=1h", "busy=soon", "busy=10m*0.5", "abandoned=1h"):
        with pytest.raises(ValueError):
            rules.parse_rule(bad)
    policy = rules.policy_from_json({"busy": {"delay": 60, "backoff": 2, "max": 2}, "x": 1})
    assert policy["busy"] == RetryRule(60, 2.0, 2)
    assert policy["no_answer"] == DEFAULT_RETRY["no_answer"]
    assert rules.policy_from_json(rules.policy_to_json(policy)) == policy


def test_busy_backs_off_then_gives_up() -> None:
    policy = {"busy": RetryRule(600, 2.0, 3)}
    p1 = plan_retry("busy", {}, 0, 10, 1000.0, policy)
    assert (p1.status, p1.next_at, p1.counted) == ("pending", 1600.0, True)
    p2 = plan_retry("busy", {"busy": 1}, 1, 10, 2000.0, policy)
    assert p2.next_at == 2000.0 + 1200.0
    p3 = plan_retry("busy", {"busy": 2}, 2, 10, 3000.0, policy)
    assert (p3.status, p3.next_at) == ("exhausted", None)


def test_max_attempts_and_final_outcomes() -> None:
    policy = dict(DEFAULT_RETRY)
    assert plan_retry("no_answer", {"busy": 2}, 2, 3, 0.0, policy).status == "exhausted"
    assert plan_retry("answered", {}, 0, 3, 0.0, policy).status == "done"
    nd = plan_retry("not_dialled", {}, 0, 1, 50.0, policy)
    assert (nd.status, nd.counted, nd.next_at) == ("pending", False, 50.0 + rules.NOT_DIALLED_DELAY)
    assert plan_retry("failed", {}, 0, 5, 0.0, {"failed": RetryRule(60, 1, 0)}).status == \
        "exhausted"
    # abandoned: no new call within 72 hours (Ofcom)
    ab = plan_retry("abandoned", {}, 0, 5, 0.0, policy)
    assert ab.next_at == 72 * 3600
    # capped at a week
    big = plan_retry("busy", {"busy": 3}, 3, 50, 0.0, {"busy": RetryRule(86400, 10, 9)})
    assert big.next_at == rules.MAX_DELAY


def test_classification() -> None:
    assert [rules.from_reason(r) for r in (0, 1, 3, 5, 8, 99)] == \
        ["failed", "failed", "no_answer", "busy", "congestion", "failed"]
    assert [rules.from_cause(c) for c in (17, 19, 34, 16)] == \
        ["busy", "no_answer", "congestion", "failed"]
    assert rules.classify_answered("predictive", {}, "PJSIP/1001") == "answered"
    assert rules.classify_answered("predictive", {"CCD_ABANDONED": "1"}, "") == "abandoned"
    assert rules.classify_answered("progressive", {}, "") == "abandoned"
    assert rules.classify_answered("predictive", {"CCD_AMD_STATUS": "MACHINE"}, "") == "machine"
    assert rules.classify_answered("notify", {}, "") == "answered"
    assert rules.classify_answered("preview", {"CCD_DIALSTATUS": "BUSY"}, "") == "busy"
    assert rules.classify_answered("preview", {"CCD_DIALSTATUS": "ANSWER"}, "") == "answered"
    assert rules.classify_answered("preview", {}, "") == "not_dialled"
    unanswered = {"outcome": "failed", "segments": [], "answer": None, "hangup_cause": 19}
    assert rules.classify_record("predictive", unanswered) == "no_answer"
    talked = {"outcome": "answered", "segments": [{"agent": "PJSIP/1002"}], "variables": {}}
    assert rules.record_agent(talked) == "PJSIP/1002"
    assert rules.classify_record("predictive", talked) == "answered"
    timed_out = {"outcome": "timeout", "segments": [], "variables": {"CCD_ABANDONED": "1"}}
    assert rules.classify_record("predictive", timed_out) == "abandoned"


def test_vague_reasons_take_the_hangup_cause() -> None:
    # Reason 0 says "not answered": the channel's cause says why (486 Busy Here = 17)
    assert rules.from_failure(0, 17) == "busy"
    assert rules.from_failure(0, 19) == "no_answer"
    assert rules.from_failure(1, 34) == "congestion"
    assert rules.from_failure(0, 1) == "failed"  # 404: unallocated number
    assert rules.from_failure(0, None) == "failed"  # no channel at all
    # precise Reasons are not second-guessed
    assert rules.from_failure(3, 17) == "no_answer" and rules.from_failure(5, 0) == "busy"


def test_a_call_the_pbx_dropped_is_dropped_and_counts_as_an_abandon() -> None:
    dropped = {"answer": 10.0, "end": 10.008, "hangup_by": "system", "queue": "",
               "segments": [], "agent": "", "variables": {"CCD_AMD": "1"}, "ivr": []}
    assert rules.dropped_by_pbx("progressive", dropped)
    assert rules.classify_answered("progressive", dropped["variables"], "", dropped) == \
        "dropped"
    assert rules.classify_record("predictive", dropped) == "dropped"
    assert "dropped" in rules.LIVE and {"abandoned", "dropped"} == rules.ABANDONS
    # the contact hung up (during AMD, before the queue): an abandon, not a drop
    hung = dict(dropped, hangup_by="customer")
    assert rules.classify_answered("progressive", {}, "", hung) == "abandoned"
    # the queue's 2 s ran out and the message played, then Hangup(): abandoned
    msg = dict(dropped, queue="outbound", variables={"CCD_ABANDONED": "1"})
    assert rules.classify_answered("progressive", msg["variables"], "", msg) == "abandoned"
    # AMD's verdict was reached (a machine hung up on by the dialplan)
    amd = dict(dropped, variables={"CCD_AMD_STATUS": "MACHINE"})
    assert rules.classify_answered("predictive", amd["variables"], "", amd) == "machine"
    notify = dict(dropped, variables={})
    assert rules.classify_answered("notify", {}, "", notify) == "dropped"
    played = dict(notify, ivr=[{"script": "notify"}])
    assert rules.classify_answered("notify", {}, "", played) == "answered"
    # retried like an abandon: not within 72 hours (Ofcom)
    assert plan_retry("dropped", {}, 0, 5, 0.0, dict(DEFAULT_RETRY)).next_at == 72 * 3600
    with pytest.raises(ValueError, match="72 h"):
        rules.parse_rule("dropped=1h")
