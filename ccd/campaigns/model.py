"""A campaign's settings as the dialer uses them (built from its ``campaigns`` row).

Pure: no I/O. :meth:`Campaign.originate` builds the AMI Originate for one attempt; every
value in it comes from the campaign row (validated when it was created) or from a number
already normalised to E.164, never from free text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ccd.campaigns import rules
from ccd.campaigns.pacer import PacerSettings
from ccd.campaigns.windows import LEGAL_HOURS, Window, clip, parse_span, parse_windows

KINDS = ("agents", "notify")
DIAL_MODES = ("preview", "progressive", "predictive", "notify")
STATES = ("draft", "running", "paused", "stopped", "completed")
#: dialplan contexts the Originate goes to when the campaign does not name one
DEFAULT_CONTEXTS = {"progressive": "ccd-campaign", "predictive": "ccd-campaign",
                    "preview": "ccd-campaign-preview", "notify": "ccd-notify"}
TEMPLATE = re.compile(r"^[A-Za-z0-9_]+/[^\s,]*\{(e164|digits)\}[^\s,]*$")
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
SOUND = re.compile(r"^[A-Za-z0-9_/.-]*$")
#: channel variables the dialplan and ccd exchange (CCD_ prefix: kept in call records)
VAR_CAMPAIGN, VAR_ATTEMPT = "CCD_CAMPAIGN", "CCD_ATTEMPT"


class CampaignError(ValueError):
    """A campaign setting that cannot be used; the message says which and why."""


@dataclass(slots=True)
class Campaign:
    """One campaign's settings."""

    id: int
    tenant_id: int
    name: str
    kind: str = "agents"
    dial_mode: str = "progressive"
    queue: str = ""
    state: str = "draft"
    caller_id: str = ""
    caller_name: str = ""
    dial_template: str = "PJSIP/{e164}@trunk"
    context: str = ""
    ring_timeout: int = 20
    max_attempts: int = 3
    retry: dict[str, rules.RetryRule] = field(default_factory=lambda: dict(rules.DEFAULT_RETRY))
    windows: list[Window] = field(default_factory=list)
    timezone: str = "UTC"
    max_abandon: float = 0.03
    abandon_window: float = 86400.0
    max_channels: int = 30
    amd: bool = False
    abandon_message: str = ""
    prompts: dict[str, dict[str, str]] = field(default_factory=dict)
    confirm: bool = False
    language: str = "en"
    tenant_slug: str = ""
    dial_patterns: list[str] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Campaign:
        """From a ``campaigns`` row joined with its tenant (``tenant_slug``,
        ``tenant_timezone``, ``dial_patterns``)."""
        legal = parse_span(row.get("legal_hours") or "08:00-21:00")
        windows = clip(parse_windows(row.get("windows") or []), legal)
        return cls(
            id=int(row["id"]), tenant_id=int(row["tenant_id"]), name=row["name"],
            kind=row["kind"], dial_mode=row["dial_mode"], queue=row["queue"] or "",
            state=row["state"], caller_id=row["caller_id"] or "",
            caller_name=row["caller_name"] or "", dial_template=row["dial_template"],
            context=row["context"] or DEFAULT_CONTEXTS[row["dial_mode"]],
            ring_timeout=int(row["ring_timeout"]), max_attempts=int(row["max_attempts"]),
            retry=rules.policy_from_json(row.get("retry")), windows=windows,
            timezone=row.get("timezone") or row.get("tenant_timezone") or "UTC",
            max_abandon=float(row["max_abandon_pct"]) / 100.0,
            abandon_window=float(row["abandon_window_hours"]) * 3600.0,
            max_channels=int(row["max_channels"]), amd=bool(row["amd"]),
            abandon_message=row["abandon_message"] or "", prompts=dict(row["prompts"] or {}),
            confirm=bool(row["confirm"]), language=row["language"] or "en",
            tenant_slug=row.get("tenant_slug") or "",
            dial_patterns=list(row.get("dial_patterns") or []))

    # ------------------------------------------------------------------ derived

    def pacer_settings(self, wrapup: float = 0.0) -> PacerSettings:
        return PacerSettings(mode=self.dial_mode, max_abandon=self.max_abandon,
                             ring_timeout=float(self.ring_timeout),
                             max_channels=self.max_channels, window=self.abandon_window,
                             wrapup=wrapup)

    def dial_string(self, e164: str) -> str:
        """The Originate ``Channel`` for a number (E.164 already validated)."""
        if not E164.match(e164):
            raise CampaignError(f"{e164!r} is not an E.164 number")
        return self.dial_template.replace("{e164}", e164).replace("{digits}", e164[1:])

    def number_allowed(self, e164: str) -> bool:
        """The tenant's dial patterns allow this number (no patterns: none allowed)."""
        return any(re.fullmatch(p, e164) for p in self.dial_patterns)

    def caller_id_header(self) -> str:
        num = self.caller_id or ""
        return f'"{self.caller_name}" <{num}>' if self.caller_name else f"<{num}>"

    def variables(self, attempt_id: int, extra: Mapping[str, str] | None = None) -> list[str]:
        # a live answer must reach an agent within 2 s of the greeting; AMD already spent
        # ~1 s of it (afterGreetingSilence), so the queue then waits 1 s (whole seconds)
        out = {VAR_CAMPAIGN: str(self.id), VAR_ATTEMPT: str(attempt_id),
               "CCD_TENANT": str(self.tenant_id), "CCD_QUEUE": self.queue,
               "CCD_AMD": "1" if self.amd else "0", "CCD_WAIT": "1" if self.amd else "2",
               "CCD_ABANDON_MSG": self.abandon_message, **(extra or {})}
        # Asterisk splits each Variable header at commas (AST_STANDARD_APP_ARGS): a comma in a
        # queue or interface name would set other variables (CCD_DIAL ...). The caller ID's
        # name is quoted (it cannot hold '"'), so a comma there stays inside it.
        for k, v in out.items():
            if k != "CCD_CALLERID" and ("," in v or '"' in v):
                raise CampaignError(f"campaign {self.name}: {k} {v!r} holds ',' or '\"'")
        return [f"{k}={v}" for k, v in out.items()]

    def originate(self, attempt_id: int, e164: str) -> dict[str, Any]:
        """Originate fields for a progressive / predictive / notification attempt."""
        return {"Channel": self.dial_string(e164), "Context": self.context, "Exten": "s",
                "Priority": 1, "Timeout": self.ring_timeout * 1000,
                "CallerID": self.caller_id_header(), "Variable": self.variables(attempt_id)}

    def originate_preview(self, attempt_id: int, e164: str, agent: str,
                          contact_name: str) -> dict[str, Any]:
        """Preview: ring the agent's phone (showing the contact), then the dialplan dials
        the contact with the campaign's caller ID (``CCD_DIAL``)."""
        name = re.sub(r'[^\w .\'-]', "", contact_name)[:40]
        return {"Channel": agent, "Context": self.context, "Exten": "s", "Priority": 1,
                "Timeout": 30000, "CallerID": f'"{name}" <{e164}>' if name else f"<{e164}>",
                "Variable": self.variables(attempt_id, {
                    "CCD_DIAL": self.dial_string(e164), "CCD_RING": str(self.ring_timeout),
                    "CCD_CALLERID": self.caller_id_header(), "CCD_AGENT": agent})}


def validate(kind: str, dial_mode: str, queue: str, dial_template: str, ring_timeout: int,
             windows: Sequence[str], abandon_message: str, legal_hours: str = "08:00-21:00",
             max_abandon_pct: float = 3.0, caller_id: str = "", name: str = "x") -> list[str]:
    """Check new campaign settings; returns warnings, raises :class:`CampaignError`."""
    warnings: list[str] = []
    if not NAME.match(name):
        raise CampaignError(f"campaign name {name!r}: letters, digits, . _ - (max 63)")
    if kind not in KINDS:
        raise CampaignError(f"kind must be one of {', '.join(KINDS)}")
    if dial_mode not in DIAL_MODES:
        raise CampaignError(f"dial mode must be one of {', '.join(DIAL_MODES)}")
    if (kind == "notify") != (dial_mode == "notify"):
        raise CampaignError("notification campaigns use dial mode 'notify' (and only they do)")
    if kind == "agents" and not queue:
        raise CampaignError("an agent campaign needs --queue (the agents' Asterisk queue)")
    if not TEMPLATE.match(dial_template):
        raise CampaignError(f"dial template {dial_template!r} must look like "
                            "PJSIP/{e164}@trunk (placeholders {e164} or {digits})")
    if ring_timeout < 15:
        raise CampaignError("ring timeout must be >= 15 s (FTC: 15 s or four rings)")
    if dial_mode in ("progressive", "predictive") and not abandon_message:
        raise CampaignError("progressive and predictive campaigns need --abandon-message: the "
                            "recording (seller's name and number) played when no agent is "
                            "free within 2 s")
    if not SOUND.match(abandon_message):
        raise CampaignError(f"abandon message {abandon_message!r}: a sound file name")
    if not 0 < max_abandon_pct <= 3:
        raise CampaignError("the abandonment limit must be in (0, 3] % of live-answered calls")
    if caller_id and not re.fullmatch(r"\+?[0-9]{3,20}", caller_id):
        raise CampaignError(f"caller ID {caller_id!r}: digits and a leading + only")
    legal = parse_span(legal_hours)
    parsed = parse_windows(windows)
    clipped = clip(parsed, legal)
    if not clipped:
        raise CampaignError("no calling window falls within the legal hours "
                            f"{legal_hours} (contact's local time)")
    if clipped != parsed:
        warnings.append("calling windows were narrowed to the legal hours "
                        f"{legal_hours}: " + ", ".join(str(w) for w in clipped))
    if legal[0] < LEGAL_HOURS[0] or legal[1] > LEGAL_HOURS[1]:
        warnings.append(f"legal hours {legal_hours} go beyond 08:00-21:00 (US TSR); make sure "
                        "the law where you call allows it")
    return warnings
