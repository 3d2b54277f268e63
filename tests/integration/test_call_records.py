"""Call records end to end (simulated Asterisk, daemon, PostgreSQL): who hung up, click-to-dial
and supervisor legs, calls that end while ccd cannot see them, restarts."""

from __future__ import annotations

import pytest

from ccd.sim.channel import Channel

ALICE, BOB = "PJSIP/1001", "PJSIP/1002"


async def answered(stack) -> tuple[Channel, str]:
    """The customer phone calls the support DID and an agent answers: (channel, call id)."""
    call = stack.sim.call("2000", "5551000")

    def connected() -> str:
        for c in stack.daemon.model.channels.values():
            if c.name == call.name:
                mc = stack.daemon.model.calls.get(c.linkedid)
                if mc is not None and mc.open_segments:
                    return c.linkedid
        return ""
    return call, await stack.until(connected, timeout=30, what="the agent to answer")


async def test_ccd_hangup_is_stored_as_the_operators(stack) -> None:
    await stack.login(ALICE)
    _, cid = await answered(stack)
    r = await stack.api("call", action="hangup", call_id=cid, requested_by="cli:ops,1\r\nX")
    assert r["requested_by"] == "cli:ops_1__X"  # nothing that could break a Setvar value
    _, _, by, _, end_reason, _, record = await stack.stored_call(cid)
    assert (by, end_reason) == ("operator", "")
    assert record["hangup_requested_by"] == "cli:ops_1__X"
    assert stack.row("SELECT hangup_by, hangup_requested_by FROM calls WHERE call_id = %s",
                     cid) == ("operator", "cli:ops_1__X")


def _call_of(stack, pred) -> str:
    for c in stack.daemon.model.calls.values():
        if pred(c):
            return c.call_id
    return ""


async def test_click_to_dial_is_stored_as_the_agents_outbound_call(stack) -> None:
    await stack.login(ALICE)
    await stack.api("originate", agent=ALICE, number="5559876543")
    cid = await stack.until(lambda: _call_of(stack, lambda c: c.agent_uid and c.open_segments),
                            what="the customer to answer")
    await stack.sim.clock.sleep(3)
    stack.sim.phone("trunk").hangup()  # the called party hangs up
    outcome, agent, by, queue, end_reason, talk, record = await stack.stored_call(cid)
    assert (outcome, agent, by, queue, end_reason) == ("answered", ALICE, "customer", "", "")
    assert 2.0 < float(talk) < 6.0
    row = stack.row("SELECT t.slug, c.direction, c.dialed, c.agent_name FROM calls c "
                    "JOIN tenants t ON t.id = c.tenant_id WHERE c.call_id = %s", cid)
    assert row == ("demo", "outbound", "5559876543", "Agent Alice")
    assert record["customer_channel"].startswith("PJSIP/trunk-")


async def test_a_supervisors_listen_leg_is_a_spy_call(stack) -> None:
    await stack.login(ALICE)
    _, cid = await answered(stack)
    r = await stack.api("spy", agent=ALICE, supervisor="PJSIP/1005", mode="whisper")
    assert r["mode"] == "whisper"
    spy = await stack.until(lambda: _call_of(stack, lambda c: c.spy is not None
                                             and c.record.segments), what="spying")
    await stack.sim.clock.sleep(2)
    stack.sim.phone("1005").hangup()
    _, agent, by, queue, _, talk, _ = await stack.stored_call(spy)
    assert (agent, by, queue) == (ALICE, "supervisor", "")
    assert float(talk) > 1.0  # the time Eve listened
    row = stack.row("SELECT t.slug, c.direction, c.supervisor, c.spy_mode, c.spied_call_id "
                    "FROM calls c JOIN tenants t ON t.id = c.tenant_id WHERE c.call_id = %s",
                    spy)
    assert row == ("demo", "spy", "PJSIP/1005", "whisper", cid)
    assert cid in stack.daemon.model.calls  # the customer's call goes on


async def test_a_call_ending_while_the_link_is_down_ends_when_its_recording_does(stack) -> None:
    import wave

    await stack.login(ALICE)
    call, cid = await answered(stack)
    await stack.until(lambda: stack.daemon.model.calls[cid].record.recordings,
                      what="ccd's recording")
    await stack.sim.clock.sleep(2)
    stack.sim.stall(True)  # Asterisk hangs: no Pong, no events
    await stack.until(lambda: stack.daemon.client.stats.ping_timeouts >= 1, what="watchdog")
    stack.sim.phone("2000").hangup(call)  # the call ends while ccd sees nothing
    await stack.sim.clock.sleep(2)
    stack.sim.stall(False)
    _, _, by, _, end_reason, talk, record = await stack.stored_call(cid, timeout=30)
    assert (by, end_reason, record["end_source"]) == (
        "unknown", "vanished while the AMI link was down", "recording")
    [path] = record["recordings"]
    with wave.open(path) as w:
        seconds = w.getnframes() / w.getframerate()
    # ccd started recording when Alice answered: the talk is the recording's length
    assert float(talk) == pytest.approx(seconds, abs=0.5)
    row = stack.row("SELECT ended_at IS NOT NULL, end_after < end_before, total_seconds "
                    "FROM calls WHERE call_id = %s", cid)
    assert row[0] is True and row[1] is True and row[2] is not None
