"""Every live ops command of the CLI, as a separate process talking to the running daemon,
in human form and with --json, against the simulated Asterisk."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

ALICE, BOB = "PJSIP/1001", "PJSIP/1002"


async def ccd(stack, *args: str, code: int = 0) -> str:
    env = {**os.environ, **stack.env}
    env.pop("CCD_CONFIG", None)
    r = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "ccd", *args], env=env,
                                capture_output=True, text=True, timeout=60)
    assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
    return r.stdout if code == 0 else r.stderr


async def test_agent_commands(stack) -> None:
    out = await ccd(stack, "agent", "login", "1001")
    assert "Agent Alice (PJSIP/1001) logged in: now available" in out
    r = json.loads(await ccd(stack, "agent", "login", "Agent Bob", "--json"))
    assert (r["agent"], r["state"], r["confirmed"]) == (BOB, "available", True)
    out = await ccd(stack, "agent", "pause", ALICE, "--reason", "lunch")
    assert "now paused (lunch)" in out
    err = await ccd(stack, "agent", "pause", ALICE, "--reason", "nap", code=2)
    assert "unknown pause reason 'nap'" in err and "lunch" in err
    err = await ccd(stack, "agent", "login", "PJSIP/9999", code=4)
    assert "no agent 'PJSIP/9999'" in err
    agents = json.loads(await ccd(stack, "agents", "--json"))
    by = {a["agent"]: a for a in agents}
    assert (by[ALICE]["state"], by[ALICE]["reason"]) == ("paused", "lunch")
    assert by[BOB]["state"] == "available" and "support" in by[BOB]["queues"]
    assert by["PJSIP/1003"]["state"] == "logged_out"
    table = await ccd(stack, "agents")
    assert "Agent Alice" in table and "paused" in table and "lunch" in table
    assert "unpaused: now available" in await ccd(stack, "agent", "unpause", ALICE)
    reasons = json.loads(await ccd(stack, "pause-reasons", "--json"))
    assert {"code": "connection-lost", "label": "Panel connection lost"} in reasons
    assert "logged out: now logged_out" in await ccd(stack, "agent", "logout", "1002")


async def test_queue_call_and_recording_commands(stack) -> None:
    await stack.login(ALICE)
    call = stack.sim.call("2000", "5551000")

    def talking() -> str:
        for c in stack.daemon.model.calls.values():
            if c.open_segments:
                return c.call_id
        return ""

    cid = await stack.until(talking, what="answer")
    calls = json.loads(await ccd(stack, "calls", "--json"))
    [row] = [c for c in calls if c["call_id"] == cid]
    assert (row["state"], row["talking_to"], row["queue"]) == ("talking", [ALICE], "support")
    assert row["recording"] is True  # started by ccd on answer (support: always)
    assert cid in await ccd(stack, "calls")
    queues = {q["queue"]: q for q in json.loads(await ccd(stack, "queues", "--json"))}
    assert queues["support"]["busy"] == 1 and queues["support"]["answered_today"] == 1
    assert "support" in await ccd(stack, "queues")

    assert "recording pause" in await ccd(stack, "call", "record-pause", cid)
    await stack.until(lambda: stack.row("SELECT count(*) FROM recording_pauses WHERE call_id"
                                        " = %s", cid) == (1,), what="stored pause")
    assert "recording resume" in await ccd(stack, "call", "record-resume", cid)
    await stack.until(lambda: stack.row("SELECT count(*) FROM recording_pauses WHERE call_id"
                                        " = %s AND resumed_at IS NOT NULL", cid) == (1,),
                      what="stored resume")
    assert "recording stop" in await ccd(stack, "call", "record-stop", cid)
    await stack.until(lambda: not any(c.recording for c in stack.daemon.model.calls[cid]
                                      .channels.values()), what="recording stopped")
    r = json.loads(await ccd(stack, "call", "record-start", cid, "--json"))
    assert r["recording"].endswith(f"/{cid}.wav") and not r.get("already")
    await stack.until(lambda: any(c.recording for c in stack.daemon.model.calls[cid]
                                  .channels.values()), what="recording again")
    err = await ccd(stack, "call", "transfer", cid, "number:+1234", code=2)
    assert "not allowed for this tenant" in err  # no dial pattern of the tenant matches
    for number in ("+442079460000", "19005550123"):  # national-only by default (sql/056)
        err = await ccd(stack, "call", "transfer", cid, f"number:{number}", code=2)
        assert "not allowed for this tenant" in err
    err = await ccd(stack, "call", "transfer", cid, "number:555 123;4", code=2)
    assert "not a phone number" in err
    err = await ccd(stack, "call", "hangup", "no-such-call", code=4)
    assert "no call 'no-such-call'" in err
    r = json.loads(await ccd(stack, "call", "transfer", cid, "agent:1002", "--json"))
    assert (r["transfer"], r["exten"], r["context"]) == ("blind", "1002", "agents")
    # Bob's phone answers the transfer (auto-answer); then hang the call up from the CLI
    await stack.until(lambda: any(s.agent == BOB for c in stack.daemon.model.calls.values()
                                  for s in c.open_segments.values()), what="transfer")
    assert "hung up" in await ccd(stack, "call", "hangup", cid)
    outcome, agent, *_ = await stack.stored_call(cid)
    assert (outcome, agent) == ("answered", ALICE)
    record = stack.row("SELECT record FROM calls WHERE call_id = %s", cid)[0]
    assert [t["transfer"] for t in record["transfers"]] == ["blind"]
    assert [s["agent"] for s in record["segments"]] == [ALICE, BOB]
    del call


async def test_originate_click_to_dial(stack) -> None:
    await stack.login(ALICE)
    r = json.loads(await ccd(stack, "originate", "1001", "5559876543", "--json"))
    assert r["agent"] == ALICE and r["number"] == "+15559876543"  # normalised to E.164
    # Alice's phone rings and answers, then the trunk is dialled from it
    await stack.until(lambda: any(c.record.direction == "outbound"
                                  for c in stack.daemon.model.calls.values()), what="originate")
    err = await ccd(stack, "originate", "1001", "12;Dial(x)", code=2)
    assert "not a phone number" in err
