"""Campaigns in the panel: preview dialling in the agent console, status on the wallboard,
each scoped to the user's tenant and agent."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from web_support import Live, Stack, wait_until

from ccd.cli.main import cli
from ccd.store.db import open_pool
from ccd.web.store import PanelStore

pytestmark = pytest.mark.timeout(180)


def ccd(stack: Stack, *args: str) -> str:
    r = CliRunner().invoke(cli, list(args), env={"CCD_DATABASE_URL": stack.db_url,
                                                 "CCD_CONFIG": ""}, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def campaign(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Any:
    contacts = tmp_path_factory.mktemp("campaign") / "contacts.csv"
    contacts.write_text("phone,name,plan\n+15550101001,Ann Lee,gold\n+15550101002,Ben Ito,basic\n")
    ccd(stack, "campaign", "create", "renewals", "--mode", "preview", "--queue", "support",
        "--caller-id", "5551000", "--window", "mon-sun 00:00-24:00",
        "--legal-hours", "00:00-24:00")
    ccd(stack, "campaign", "import", "renewals", str(contacts))
    stack.bridge.call("campaign.start", {"campaign": "renewals"})

    def dialling() -> bool:
        rows = stack.bridge.call("campaigns.status", {"tenant_id": 1})
        return any(r["name"] == "renewals" and r["state"] == "running" and r.get("dialling")
                   for r in rows)

    wait_until(dialling, 30, "the campaign runner")
    yield "renewals"
    stack.bridge.call("campaign.stop", {"campaign": "renewals"})


@pytest.fixture
def preview_campaign(stack: Stack, campaign: str) -> str:
    stack.login_agent("PJSIP/1001")  # the panel tests log agents out after each test
    return campaign


def test_agent_previews_contacts_and_supervisor_sees_the_campaign(
        stack: Stack, web: Any, preview_campaign: str) -> None:
    alice = web("alice")
    listed = alice.get("/api/preview").json()["result"]
    assert listed == [{"name": preview_campaign, "queue": "support"}]
    nxt = alice.post(f"/api/preview/{preview_campaign}/next", {}).json()["result"]
    contact = nxt["contact"]
    assert contact["e164"] in ("+15550101001", "+15550101002")
    assert contact["data"]["plan"] in ("gold", "basic")
    r = alice.post(f"/api/preview/{preview_campaign}/skip", {"contact_id": contact["id"]})
    assert r.status_code == 200 and r.json()["result"]["contact_id"] == contact["id"]
    # the skipped contact is no longer reserved for Alice
    again = alice.post(f"/api/preview/{preview_campaign}/skip", {"contact_id": contact["id"]})
    assert again.status_code == 404

    sue = web("sue")
    rows = sue.get("/api/campaigns").json()["result"]
    [row] = [r for r in rows if r["name"] == preview_campaign]
    assert (row["mode"], row["state"], row["queue"]) == ("preview", "running", "support")
    assert "campaign_pct" in row["abandonment"]
    assert sue.get("/api/wallboard").json()["result"]["campaigns"]
    assert alice.get("/api/campaigns").status_code == 403  # supervisors only


def test_other_tenant_cannot_see_or_work_the_campaign(stack: Stack, web: Any,
                                                      preview_campaign: str) -> None:
    dave = web("dave")  # tenant 2
    assert dave.get("/api/preview").json()["result"] == []
    r = dave.post(f"/api/preview/{preview_campaign}/next", {})
    assert r.status_code == 404
    gina = web("gina")  # tenant 2's supervisor
    assert all(c["name"] != preview_campaign
               for c in gina.get("/api/campaigns").json()["result"])
    # a contact id in the body cannot make Alice dial for someone else: agent and tenant
    # come from the session, and CSRF is required
    alice = web("alice")
    r = alice.post(f"/api/preview/{preview_campaign}/dial", {"contact_id": 1}, csrf=False)
    assert r.status_code in (400, 403)


def test_campaign_call_pops_the_contact_not_the_trunk_caller_id(
        stack: Stack, web: Any, tmp_path: Any) -> None:
    """A progressive campaign call reaches the agent through the queue: the pop names the
    contact being called (and finds the customer by that number), not the campaign's own
    caller ID that the channel carries ("Support Line" 5551000, real capture F7)."""
    ids = stack.ids  # type: ignore[attr-defined]
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("phone,name,plan\n+15557770001,Carol Campaign,gold\n")
    ccd(stack, "campaign", "create", "winback", "--mode", "progressive", "--queue", "support",
        "--caller-id", "5551000", "--window", "mon-sun 00:00-24:00",
        "--legal-hours", "00:00-24:00", "--abandon-message", "vm-goodbye",
        "--ring-timeout", "30")
    ccd(stack, "campaign", "import", "winback", str(contacts))
    alice = web("alice")
    with Live(stack.url, alice.cookie).connect() as live:
        stack.login_agent("PJSIP/1001")
        try:
            stack.bridge.call("campaign.start", {"campaign": "winback"})
            # the contact's phone (behind the trunk) rings; it answers
            wait_until(lambda: stack.answer("trunk", timeout=0.2), 20, "the contact ringing")
            pop = live.wait("pop", timeout=15)
        finally:
            stack.bridge.call("campaign.stop", {"campaign": "winback"})
        assert stack.agent("PJSIP/1001")["state"] == "ringing"
        assert (pop["caller_num"], pop["caller_name"]) == ("+15557770001", "Carol Campaign")
        assert pop["e164"] == "+15557770001" and pop["direction"] == "outbound"
        assert pop["customer"]["id"] == ids["c_carol"]
        assert [t["subject"] for t in pop["open_tickets"]] == ["Router keeps rebooting"]
        camp = pop["campaign"]
        assert (camp["name"], camp["attempt_no"], camp["data"]) == ("winback", 1,
                                                                    {"plan": "gold"})
        assert pop["queue"] == "support"
    stack.hangup_all()
    stack.logout_agent("PJSIP/1001")
    # the contact is read within the agent's tenant only
    pool = open_pool(stack.db_url, min_size=1, max_size=1, name="test")
    try:
        store = PanelStore(pool)
        assert store.campaign_contact(1, camp["id"], camp["attempt_id"])["e164"] == \
            "+15557770001"
        assert store.campaign_contact(ids["t2"], camp["id"], camp["attempt_id"]) is None
        assert store.campaign_contact(1, camp["id"] + 1, camp["attempt_id"]) is None
    finally:
        pool.close()
