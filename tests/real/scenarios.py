"""Steps the real-PBX scenarios share: log agents in and out through ccd's CLI, place an
inbound call through the IVR, answer it, read what Asterisk and ccd say."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from conftest import AGENT_PHONES, CUSTOMER, Rig
from real_rig import Phone, wait_for

#: seconds the support flow plays before the main menu for a known English caller
#: (identify -> welcome -> hours -> main menu); digits pressed earlier are not collected
MENU_AFTER = 4.0


def only_logged_in(r: Rig, *agents: str) -> None:
    """Exactly these agents logged in (``ccd agent login/logout``), none paused."""
    for a in AGENT_PHONES:
        iface = f"PJSIP/{a}"
        if a in agents:
            r.ccd.cli("agent", "login", iface)
            r.ccd.cli("agent", "unpause", iface, ok=False)
        else:
            r.ccd.cli("agent", "logout", iface, ok=False)
    wait_for(lambda: all(agent_state(r, a) not in ("logged_out", "wrapup")
                         for a in agents), 30, f"{agents} available")


def agent_state(r: Rig, ext: str) -> str:
    for a in r.ccd.json("agents"):
        if a.get("agent") == f"PJSIP/{ext}":
            return str(a.get("state"))
    return "unknown"


def wait_state(r: Rig, ext: str, state: str, timeout: float = 20) -> None:
    wait_for(lambda: agent_state(r, ext) == state, timeout, f"{ext} {state} in ccd")


@dataclass
class Inbound:
    caller: Phone
    call_id: str
    dialled: float
    ring: float = 0.0
    answered: float = 0.0


def dial_in(r: Rig, did: str = "5551000", digits: str = "3",
            menu_after: float = MENU_AFTER, phone: str = CUSTOMER) -> Inbound:
    """The customer phone calls ``did`` and presses ``digits`` at the main menu."""
    caller = r.phone(phone)
    t0 = time.time()
    caller.dial(did)
    caller.wait("CALL_ESTABLISHED")
    _, call_id = r.pbx.call_of(phone)
    if digits:
        time.sleep(menu_after)
        caller.dtmf(digits)
    return Inbound(caller, call_id, t0)


def ring_and_answer(r: Rig, call: Inbound, ext: str, after: float = 1.0) -> None:
    agent = r.phone(ext)
    call.ring = agent.wait("CALL_INCOMING", timeout=40).t
    time.sleep(after)
    agent.answer()
    call.answered = agent.wait("CALL_ESTABLISHED").t


def ccd_calls(r: Rig) -> list[dict]:
    return json.loads(r.ccd.cli("calls", "--json").stdout)
