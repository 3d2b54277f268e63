"""Campaign settings -> AMI Originate (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from ccd.ami.actions import encode_action
from ccd.campaigns.model import Campaign, CampaignError, validate


def row(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 7, "tenant_id": 2, "name": "spring", "kind": "agents", "dial_mode": "predictive",
        "queue": "outbound", "state": "running", "caller_id": "5551000", "caller_name": "ACME",
        "dial_template": "PJSIP/{e164}@trunk", "context": "", "ring_timeout": 20,
        "max_attempts": 3, "retry": {"busy": {"delay": 60, "backoff": 2, "max": 2}},
        "windows": ["mon-fri 07:00-22:00"], "legal_hours": "08:00-21:00", "timezone": None,
        "tenant_timezone": "Europe/Paris", "max_abandon_pct": 2.5, "abandon_window_hours": 24,
        "max_channels": 10, "amd": False, "abandon_message": "custom/acme-abandon",
        "prompts": {}, "confirm": False, "language": "en", "tenant_slug": "acme",
        "dial_patterns": ["^\\+?[1-9][0-9]{6,14}$"]}
    base.update(over)
    return base


def test_originate_fields() -> None:
    c = Campaign.from_row(row())
    assert (c.context, c.timezone, c.max_abandon, str(c.windows[0])) == \
        ("ccd-campaign", "Europe/Paris", 0.025, "weekdays 08:00-21:00")
    f = c.originate(42, "+15551234567")
    assert f["Channel"] == "PJSIP/+15551234567@trunk"
    assert (f["Context"], f["Exten"], f["Timeout"]) == ("ccd-campaign", "s", 20000)
    assert f["CallerID"] == '"ACME" <5551000>'
    assert "CCD_ATTEMPT=42" in f["Variable"] and "CCD_CAMPAIGN=7" in f["Variable"]
    assert "CCD_WAIT=2" in f["Variable"] and "CCD_QUEUE=outbound" in f["Variable"]
    assert b"Variable: CCD_ABANDON_MSG=custom/acme-abandon\r\n" in encode_action("Originate", f)
    amd = Campaign.from_row(row(amd=True)).originate(1, "+15551234567")
    assert "CCD_AMD=1" in amd["Variable"] and "CCD_WAIT=1" in amd["Variable"]
    digits = Campaign.from_row(row(dial_template="SIP/trunk/{digits}"))
    assert digits.dial_string("+4930123456") == "SIP/trunk/4930123456"
    with pytest.raises(CampaignError):
        c.dial_string("+1555\r\nAction: Hangup")
    assert c.number_allowed("+15551234567") and not c.number_allowed("12")


def test_preview_originate_rings_the_agent_first() -> None:
    c = Campaign.from_row(row(dial_mode="preview", abandon_message=""))
    f = c.originate_preview(9, "+15551234567", "PJSIP/1001", 'Ann "<x>" Lee\r\n')
    assert (f["Channel"], f["Context"]) == ("PJSIP/1001", "ccd-campaign-preview")
    assert f["CallerID"] == '"Ann x Lee" <+15551234567>'
    assert "CCD_DIAL=PJSIP/+15551234567@trunk" in f["Variable"]
    assert "CCD_RING=20" in f["Variable"] and "CCD_AGENT=PJSIP/1001" in f["Variable"]
    encode_action("Originate", f)  # nothing a contact's name holds can break the action


def test_variables_cannot_smuggle_other_variables() -> None:
    """Asterisk splits a Variable header at commas: a queue or interface holding one is
    refused instead of setting CCD_DIAL or others on the channel."""
    with pytest.raises(CampaignError, match="CCD_QUEUE"):
        Campaign.from_row(row(queue="q,CCD_DIAL=PJSIP/+900@trunk")).originate(1, "+15551234567")
    c = Campaign.from_row(row(dial_mode="preview", caller_name="Acme, Inc"))
    with pytest.raises(CampaignError, match="CCD_AGENT"):
        c.originate_preview(1, "+15551234567", "PJSIP/1001,CCD_DIAL=x", "Ann")
    f = c.originate_preview(1, "+15551234567", "PJSIP/1001", "Ann")  # quoted name: fine
    assert 'CCD_CALLERID="Acme, Inc" <5551000>' in f["Variable"]


def test_validate() -> None:
    ok = ("agents", "predictive", "q", "PJSIP/{e164}@t", 20, ["mon-fri 09:00-20:00"], "m")
    assert validate(*ok) == []
    warn = validate("agents", "progressive", "q", "PJSIP/{e164}@t", 15, ["daily 06:00-23:00"],
                    "m")
    assert "narrowed" in warn[0]
    assert "beyond" in validate(*ok, legal_hours="07:00-22:00")[0]
    bad: list[tuple[Any, ...]] = [
        ("agents", "notify", "q", "PJSIP/{e164}", 20, ["daily 09:00-10:00"], ""),
        ("agents", "progressive", "", "PJSIP/{e164}", 20, ["daily 09:00-10:00"], "m"),
        ("agents", "progressive", "q", "PJSIP/1234", 20, ["daily 09:00-10:00"], "m"),
        ("agents", "progressive", "q", "PJSIP/{e164},x", 20, ["daily 09:00-10:00"], "m"),
        ("agents", "progressive", "q", "PJSIP/{e164}", 14, ["daily 09:00-10:00"], "m"),
        ("agents", "predictive", "q", "PJSIP/{e164}", 20, ["daily 09:00-10:00"], ""),
        ("agents", "progressive", "q", "PJSIP/{e164}", 20, ["daily 05:00-07:00"], "m"),
        ("agents", "progressive", "q", "PJSIP/{e164}", 20, ["daily 09:00-10:00"], "a b"),
    ]
    for args in bad:
        with pytest.raises(CampaignError):
            validate(*args)
    with pytest.raises(CampaignError):
        validate(*ok, max_abandon_pct=4.0)
    with pytest.raises(CampaignError):
        validate(*ok, caller_id="+1 555")
    with pytest.raises(CampaignError):
        validate(*ok, name="bad name")
    assert validate("notify", "notify", "", "PJSIP/{digits}", 20, ["daily 09:00-10:00"], "") \
        == []


def test_prompt_per_language() -> None:
    from ccd.campaigns.agi import DEFAULT_PROMPTS, pick

    prompts = {"message": {"en": "custom/m-en", "pt": "custom/m-pt"}, "thanks": "custom/t"}
    assert pick(prompts, "message", "pt-BR", "en") == "custom/m-pt"
    assert pick(prompts, "message", "fr", "en") == "custom/m-en"
    assert pick(prompts, "message", "fr", "de") == "custom/m-en"  # any recording
    assert pick(prompts, "thanks", "fr", "en") == "custom/t"
    assert pick({}, "rate", "en", "en") == DEFAULT_PROMPTS["rate"]
