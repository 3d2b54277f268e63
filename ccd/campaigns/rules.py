"""Attempt outcomes and retry planning (pure: the time comes in as a parameter).

An attempt ends in one outcome:

* ``answered`` - a live person was connected to an agent (agent campaigns), heard the
  message (notifications) or talked to the previewing agent;
* ``abandoned`` - a live person answered and no agent took the call within 2 s: the
  dialplan played the recorded message. These, with ``answered``, are the *live* calls
  the abandonment rate is measured on;
* ``dropped`` - answered, then hung up by Asterisk itself before the call reached the
  queue, the message or AMD's verdict (a dialplan failure: ``No application 'AMD'``, a
  restart). A person may have answered and heard nothing, so it counts as a live call
  and as an abandon in every rate, and is retried like one; it is stored apart so the
  record says what happened;
* ``machine`` - answering machine (AMD);
* ``busy``, ``no_answer``, ``failed``, ``congestion`` - from Asterisk's
  OriginateResponse ``Reason`` (5, 3, 8) or the dialled leg's ``DIALSTATUS``. Reason 0
  (and 1) say only "not answered": a SIP number that refuses is hung up by chan_pjsip
  with the response's cause (486 Busy Here = 17) and Asterisk reports Reason 0, so the
  outcome then comes from the channel's hangup cause (17 busy, 19 no answer ...);
* ``unknown`` - in flight when ccd stopped, and nothing (Asterisk, the call store) could
  say what happened: it counts as an attempt and is retried only after a safe delay;
* ``not_dialled`` - the number was never called (preview: the agent's phone did not
  answer; the AMI link was down): it does not count as an attempt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ANSWERED, ABANDONED, MACHINE = "answered", "abandoned", "machine"
BUSY, NO_ANSWER, FAILED, CONGESTION = "busy", "no_answer", "failed", "congestion"
UNKNOWN, NOT_DIALLED, DROPPED = "unknown", "not_dialled", "dropped"
OUTCOMES = (ANSWERED, ABANDONED, DROPPED, MACHINE, BUSY, NO_ANSWER, FAILED, CONGESTION,
            UNKNOWN, NOT_DIALLED)
#: outcomes a live person answered (the abandonment rate's denominator)
LIVE = frozenset({ANSWERED, ABANDONED, DROPPED})
#: live calls that count as abandoned (the numerator)
ABANDONS = frozenset({ABANDONED, DROPPED})
#: outcomes that can be retried (``answered`` never is)
RETRYABLE = (BUSY, NO_ANSWER, FAILED, CONGESTION, MACHINE, ABANDONED, DROPPED, UNKNOWN)

#: OriginateResponse Reason -> outcome (4 = answered is decided when the call ends)
REASONS = {0: FAILED, 1: FAILED, 3: NO_ANSWER, 5: BUSY, 8: CONGESTION}
REASON_ANSWERED = 4
#: Reasons that do not say why: the channel's hangup cause does (chan_pjsip refusals)
VAGUE_REASONS = frozenset({0, 1})
#: DIALSTATUS of the contact's leg (preview calls go agent first, then Dial)
DIALSTATUS = {"ANSWER": ANSWERED, "BUSY": BUSY, "NOANSWER": NO_ANSWER, "CANCEL": NO_ANSWER,
              "CONGESTION": CONGESTION, "CHANUNAVAIL": FAILED, "DONTCALL": FAILED,
              "TORTURE": FAILED, "INVALIDARGS": FAILED}

#: Hangup cause of an originated channel that was never answered -> outcome
CAUSES = {17: BUSY, 18: NO_ANSWER, 19: NO_ANSWER, 34: CONGESTION, 38: CONGESTION,
          41: CONGESTION, 42: CONGESTION, 44: CONGESTION}

# contact statuses
PENDING, DIALING, PREVIEW = "pending", "dialing", "preview"
DONE, DNC, EXHAUSTED, INVALID, CANCELLED = "done", "dnc", "exhausted", "invalid", "cancelled"
CONTACT_STATUSES = (PENDING, DIALING, PREVIEW, DONE, DNC, EXHAUSTED, INVALID, CANCELLED)
FINAL_STATUSES = frozenset({DONE, DNC, EXHAUSTED, INVALID, CANCELLED})

MAX_DELAY = 7 * 86400.0
#: after NOT_DIALLED the contact waits this long before it is offered again
NOT_DIALLED_DELAY = 60.0


@dataclass(frozen=True, slots=True)
class RetryRule:
    """Retry after ``delay`` seconds, times ``backoff`` for each earlier attempt with the
    same outcome, at most ``max`` attempts ending so (0 = never retry)."""

    delay: float
    backoff: float = 1.0
    max: int = 3

    def to_dict(self) -> dict[str, float | int]:
        return {"delay": self.delay, "backoff": self.backoff, "max": self.max}


DEFAULT_RETRY: dict[str, RetryRule] = {
    BUSY: RetryRule(600, 1.5, 5),
    NO_ANSWER: RetryRule(3600, 2.0, 4),
    FAILED: RetryRule(1800, 2.0, 3),
    CONGESTION: RetryRule(300, 2.0, 5),
    MACHINE: RetryRule(4 * 3600, 1.0, 3),
    # Ofcom: a number that got an abandoned call is not called again within 72 hours
    ABANDONED: RetryRule(72 * 3600, 1.0, 2),
    DROPPED: RetryRule(72 * 3600, 1.0, 2),
    UNKNOWN: RetryRule(3600, 1.0, 2),
}

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_RULE = re.compile(r"^([a-z_]+)=([0-9.]+[smhd]?)(?:\*([0-9.]+))?(?:/(\d+))?$")


def parse_duration(text: str) -> float:
    """``"90"``, ``"10m"``, ``"2h"``, ``"3d"`` -> seconds."""
    m = _DURATION.match(text.strip().lower())
    if not m:
        raise ValueError(f"{text!r} is not a duration like 90, 10m, 2h or 3d")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_rule(text: str) -> tuple[str, RetryRule]:
    """``"busy=10m*1.5/5"``: outcome=delay[*backoff][/max]."""
    m = _RULE.match(text.strip().lower())
    if not m:
        raise ValueError(f"{text!r} is not a retry rule like busy=10m*1.5/5")
    outcome = m.group(1)
    if outcome not in RETRYABLE:
        raise ValueError(f"cannot set a retry rule for {outcome!r} "
                         f"(one of: {', '.join(RETRYABLE)})")
    backoff = float(m.group(3)) if m.group(3) else 1.0
    if backoff < 1.0:
        raise ValueError(f"{text!r}: the backoff factor must be >= 1")
    if outcome in ABANDONS and parse_duration(m.group(2)) < 72 * 3600:
        raise ValueError(f"{outcome} calls may not be retried within 72 h (Ofcom)")
    return outcome, RetryRule(parse_duration(m.group(2)), backoff,
                              int(m.group(4)) if m.group(4) else 3)


def policy_from_json(data: Mapping[str, Any] | None) -> dict[str, RetryRule]:
    """The campaign's ``retry`` JSON over the defaults."""
    out = dict(DEFAULT_RETRY)
    for k, v in (data or {}).items():
        if k in RETRYABLE and isinstance(v, Mapping):
            out[k] = RetryRule(float(v.get("delay", 0)), float(v.get("backoff", 1.0)),
                               int(v.get("max", 0)))
    return out


def policy_to_json(policy: Mapping[str, RetryRule]) -> dict[str, dict[str, float | int]]:
    return {k: r.to_dict() for k, r in policy.items()}


# ------------------------------------------------------------------ classification


def from_reason(reason: int) -> str:
    """Outcome of an unanswered Originate (``Reason`` != 4)."""
    return REASONS.get(reason, FAILED)


def from_cause(cause: int) -> str:
    """Outcome of an originated call that ended unanswered, from its hangup cause."""
    return CAUSES.get(cause, FAILED)


def from_failure(reason: int, cause: int | None) -> str:
    """Outcome of an unanswered Originate from its ``Reason`` and, when the Reason is vague
    (0, 1), the hangup cause of the channel it created (None: no channel, or unseen)."""
    if reason in VAGUE_REASONS and cause in CAUSES:
        return CAUSES[cause]
    return from_reason(reason)


def dropped_by_pbx(mode: str, record: Mapping[str, Any]) -> bool:
    """An answered contact that Asterisk itself hung up before the call got anywhere: no
    agent, no queue, no recorded message, no AMD verdict (agent campaigns), no
    notification played (notify) - and nobody hung up (``hangup_by`` system)."""
    if record.get("hangup_by") != "system" or record.get("answer") is None:
        return False
    if record.get("segments") or record.get("agent") or record.get("queue"):
        return False
    v = record.get("variables") or {}
    if mode in ("progressive", "predictive"):
        return not v.get("CCD_ABANDONED") and not v.get("CCD_AMD_STATUS")
    if mode == "notify":
        return not record.get("ivr") and not v.get("CCD_NOTIFY_RESULT")
    return False


def record_answered(record: Mapping[str, Any]) -> bool:
    """A stored call record (``CallRecord.to_dict()``) shows the called party answered."""
    return bool(record.get("segments")) or record.get("answer") is not None or \
        record.get("outcome") in ("answered", "abandoned", "exited", "timeout")


def record_agent(record: Mapping[str, Any]) -> str:
    """The agent who talked to the contact in a call record ('' if none)."""
    if record.get("agent"):
        return str(record["agent"])
    for seg in record.get("segments") or []:
        if seg.get("agent"):
            return str(seg["agent"])
    return ""


def classify_record(mode: str, record: Mapping[str, Any]) -> str:
    """Outcome of an attempt from its finished call record alone (used when the
    OriginateResponse was lost, e.g. across a restart)."""
    variables = record.get("variables") or {}
    if mode == "preview" or record_answered(record):
        return classify_answered(mode, variables, record_agent(record), record)
    return from_cause(int(record.get("hangup_cause") or 0))


def classify_answered(mode: str, variables: Mapping[str, str], agent: str,
                      record: Mapping[str, Any] | None = None) -> str:
    """Outcome of an answered attempt once its call ended.

    ``variables`` are the call's ``CCD_*`` channel variables (the dialplan sets
    ``CCD_AMD_STATUS``, ``CCD_ABANDONED`` and, for preview calls, ``CCD_DIALSTATUS``);
    ``agent`` is the interface of the agent who took the call ('' if none); ``record`` the
    finished call record (``CallRecord.to_dict()``), which tells a call the PBX dropped
    (:func:`dropped_by_pbx`). A live person who never reached an agent is ``abandoned``
    whoever hung up first (the conservative reading of the rules).
    """
    if variables.get("CCD_AMD_STATUS", "").upper() == "MACHINE":
        return MACHINE
    if record is not None and not agent and dropped_by_pbx(mode, record):
        return DROPPED
    if mode == "preview":
        status = variables.get("CCD_DIALSTATUS", "").upper()
        return DIALSTATUS.get(status, NOT_DIALLED) if status else NOT_DIALLED
    if mode == "notify":
        return ANSWERED
    if agent:
        return ANSWERED
    return ABANDONED


# ------------------------------------------------------------------ retry planning


@dataclass(frozen=True, slots=True)
class Plan:
    """What happens to the contact after an attempt."""

    status: str  # pending | done | exhausted
    next_at: float | None
    counted: bool  # the attempt counts against max_attempts
    why: str


def plan_retry(outcome: str, counts: Mapping[str, int], attempts: int, max_attempts: int,
               now: float, policy: Mapping[str, RetryRule]) -> Plan:
    """Plan the contact's next step.

    ``counts`` are the contact's earlier outcomes (this one not included) and
    ``attempts`` its earlier counted attempts.
    """
    if outcome == NOT_DIALLED:
        return Plan(PENDING, now + NOT_DIALLED_DELAY, False, "not dialled")
    if outcome == ANSWERED:
        return Plan(DONE, None, True, "answered")
    if attempts + 1 >= max_attempts:
        return Plan(EXHAUSTED, None, True, f"{attempts + 1} of {max_attempts} attempts made")
    rule = policy.get(outcome)
    seen = counts.get(outcome, 0) + 1
    if rule is None or seen >= rule.max:
        limit = rule.max if rule is not None else 0
        return Plan(EXHAUSTED, None, True, f"{seen} x {outcome} (at most {limit})")
    delay = min(MAX_DELAY, rule.delay * (rule.backoff ** (seen - 1)))
    return Plan(PENDING, now + delay, True, f"{outcome} #{seen}: retry in {delay:.0f} s")
