"""Campaigns in the panel: preview dialling in the agent console, status on the wallboard,
each scoped to the user's tenant and agent."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from web_support import Stack, wait_until

from ccd.cli.main import cli

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
