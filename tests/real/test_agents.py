"""Agents on the real PBX: log in and out through ccd, pause with reasons from the CLI and
from the phone's feature codes; ccd's state follows what Asterisk's queues say."""

from __future__ import annotations

from conftest import Rig
from real_rig import wait_for
from scenarios import agent_state, only_logged_in, wait_state


def members(r: Rig, queue: str) -> str:
    return r.pbx.cli(f"queue show {queue}")


def test_login_and_logout_add_and_remove_the_queue_members(r: Rig) -> None:
    only_logged_in(r)
    assert "PJSIP/1001" not in members(r, "support")
    r.ccd.cli("agent", "login", "PJSIP/1001")
    for q in ("support", "escalation", "overflow"):  # Alice's skills
        assert "PJSIP/1001" in members(r, q), q
    wait_state(r, "1001", "available")
    r.ccd.cli("agent", "logout", "PJSIP/1001")
    wait_for(lambda: "PJSIP/1001" not in members(r, "support"), 10, "1001 out of support")
    wait_state(r, "1001", "logged_out")
    assert not r.ccd.rows("SELECT * FROM agent_sessions WHERE logout_at IS NULL AND "
                          "interface = 'PJSIP/1001'")


def test_pause_with_a_reason_from_the_cli(r: Rig) -> None:
    only_logged_in(r, "1001")
    r.ccd.cli("agent", "pause", "PJSIP/1001", "--reason", "lunch")
    assert "paused" in members(r, "support").split("PJSIP/1001", 1)[1].split("\n", 1)[0]
    wait_state(r, "1001", "paused")
    row = next(a for a in r.ccd.json("agents") if a["agent"] == "PJSIP/1001")
    assert row.get("reason") == "lunch"
    bad = r.ccd.cli("agent", "pause", "PJSIP/1001", "--reason", "nonsense", ok=False)
    assert bad.returncode == 2
    r.ccd.cli("agent", "unpause", "PJSIP/1001")
    wait_state(r, "1001", "available")


def test_pause_and_unpause_from_the_phone_feature_codes(r: Rig) -> None:
    only_logged_in(r, "1001")
    phone = r.phone("1001")
    phone.dial("*21")  # PauseQueueMember(,PJSIP/1001,,break), a prompt, Hangup
    phone.wait("CALL_CLOSED", timeout=20)
    wait_state(r, "1001", "paused")
    row = next(a for a in r.ccd.json("agents") if a["agent"] == "PJSIP/1001")
    assert row.get("reason") == "break"
    phone.dial("*22")
    phone.wait("CALL_CLOSED", timeout=20)
    wait_state(r, "1001", "available")
    assert agent_state(r, "1001") == "available"
