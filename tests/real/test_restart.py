"""``core restart now`` on a real Asterisk with agents logged in, one of them paused (the
real-2 T7a scenario): ccd reconnects (possibly while Asterisk still loads app_queue),
re-adds every agent with the pause, counts what it restored, reports one boot and logs
no error."""

from __future__ import annotations

import re

from conftest import Rig
from real_rig import wait_for

SKILLS = {"1001": ("support", "escalation", "overflow"), "1002": ("support", "overflow"),
          "1003": ("accounts", "overflow"), "1004": ("accounts", "escalation", "overflow")}


def _members(r: Rig) -> dict[str, set[str]]:
    """Asterisk's own view: queue -> interfaces (``queue show``)."""
    out: dict[str, set[str]] = {}
    queue = ""
    for line in r.pbx.cli("queue show").splitlines():
        m = re.match(r"^(\w+) has \d+ calls", line)
        if m:
            queue = m[1]
            out[queue] = set()
        for iface in re.findall(r"\((PJSIP/\d+)\)", line):
            out.setdefault(queue, set()).add(iface)
    return out


def _booted(r: Rig) -> int:
    row = r.ccd.row("SELECT count(*) AS n FROM call_events WHERE kind = 'pbx' "
                    "AND data->>'what' = 'booted'")
    return int(row["n"]) if row else 0


def test_restart_readds_agents_with_their_pause_and_reports_one_boot(r: Rig) -> None:
    for ext in SKILLS:
        r.ccd.cli("agent", "login", ext)
    r.ccd.cli("agent", "pause", "1003", "--reason", "lunch")
    wanted = {}
    for ext, queues in SKILLS.items():
        for q in queues:
            wanted.setdefault(q, set()).add(f"PJSIP/{ext}")
    wait_for(lambda: _members(r) == wanted, 20, "agents logged in")
    log_start = len(r.ccd.log_text())
    booted = _booted(r)
    r.pbx.restart_now()
    wait_for(lambda: "after resync" in r.ccd.log_text()[log_start:], 60, "ccd to re-add agents")
    wait_for(lambda: _members(r) == wanted, 20, "agents re-added")
    assert "paused:lunch" in r.pbx.cli("queue show accounts")
    log = r.ccd.log_text()[log_start:]
    assert "after resync: re-added 10 queue memberships, restored 1 pauses" in log, log
    assert not re.search(r"Z (ERROR|CRITICAL) ", log), log
    assert "Traceback" not in log, log
    wait_for(lambda: _booted(r) == booted + 1, 20, "the boot to be stored")
    agents = {a["agent"]: a for a in r.ccd.json("agents")}
    assert (agents["PJSIP/1003"]["state"], agents["PJSIP/1003"]["reason"]) == ("paused", "lunch")
    for ext in SKILLS:
        r.ccd.cli("agent", "logout", ext)
