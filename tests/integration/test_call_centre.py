"""ccd's daemon against the simulated Asterisk over real sockets, with real PostgreSQL:
scripted calls are recorded, agents behave, faults lose nothing."""

from __future__ import annotations

import gc
import wave
from pathlib import Path

import pytest

from ccd.sim.channel import Channel

ALICE, BOB = "PJSIP/1001", "PJSIP/1002"


async def place_call(stack, digits: str = "") -> Channel:
    """The customer phone calls the support DID; presses ``digits`` in the IVR."""
    call = stack.sim.call("2000", "5551000")
    if digits:
        await stack.until(lambda: any(c.agi_script for c in stack.daemon.model.channels.values()),
                          what="IVR")
        stack.sim.phone("2000").press(call, digits)
    return call


def call_id_of(stack, channel_name: str) -> str:
    for c in stack.daemon.model.channels.values():
        if c.name == channel_name:
            return c.linkedid
    return ""


async def talking(stack, call: Channel) -> str:
    def connected() -> str:
        cid = call_id_of(stack, call.name)
        c = stack.daemon.model.calls.get(cid)
        return cid if c is not None and c.open_segments else ""
    return await stack.until(connected, what="the agent to answer")


async def test_inbound_call_through_ivr_to_agent_is_stored(stack) -> None:
    await stack.login(ALICE, BOB)
    call = await place_call(stack)
    cid = await talking(stack, call)
    model_call = stack.daemon.model.calls[cid]
    assert model_call.record.variables.get("CCD_QUEUE") == "support"  # the IVR's choice
    await stack.sim.clock.sleep(5)
    stack.sim.phone("2000").hangup(call)
    outcome, agent, by, queue, end_reason, talk, record = await stack.stored_call(cid)
    assert (outcome, by, queue, end_reason) == ("answered", "caller", "support", "")
    assert agent in (ALICE, BOB)
    # the talk time is the simulator's: from the caller entering the agent's bridge to
    # leaving it, by the events' timestamps (at least the 5 s the test waited)
    [entered] = stack.event("BridgeEnter", Channel=call.name)
    [left] = stack.event("BridgeLeave", Channel=call.name)
    assert float(talk) == pytest.approx(left.ts - entered.ts, abs=0.002)
    assert float(talk) >= 5.0
    assert record["ivr"] and record["ivr"][0]["script"] == "ivr"
    assert "CCD_IVR_PATH" in record["variables"]
    # ccd started the recording on answer (support: always), into its recording dir;
    # the simulated Asterisk wrote a real WAV file there
    [path] = record["recordings"]
    assert path.startswith(str(stack.config.recording.dir)) and f"/{cid}.wav" in path
    with wave.open(str(Path(path))) as w:
        assert (w.getframerate(), w.getnchannels()) == (8000, 1) and w.getnframes() > 8000
    assert stack.row("SELECT count(*) FROM recordings WHERE call_id = %s", cid) == (1,)


async def test_agent_cycle_login_pause_wrapup_logout(stack) -> None:
    await stack.login(ALICE)
    assert stack.agent(ALICE).state == "available"
    r = await stack.api("agent", action="pause", agent=ALICE, reason="lunch")
    assert (r["state"], r["reason"], r["confirmed"]) == ("paused", "lunch", True)
    r = await stack.api("agent", action="unpause", agent=ALICE)
    assert r["state"] == "available"
    call = await place_call(stack)
    cid = await talking(stack, call)
    assert stack.agent(ALICE).state == "on_call"
    stack.sim.phone("1001").hangup()  # the agent hangs up
    await stack.until(lambda: stack.agent(ALICE).state == "wrapup", what="wrap-up")
    # queues.conf wrapuptime = 10 simulated seconds: available again by itself
    await stack.until(lambda: stack.agent(ALICE).state == "available", what="end of wrap-up")
    _, _, by, *_ = await stack.stored_call(cid)
    assert by == "agent"
    r = await stack.api("agent", action="logout", agent=ALICE)
    assert r["state"] == "logged_out"

    def states() -> list[str]:
        return [s for (s,) in stack.rows("SELECT state FROM agent_states WHERE agent = %s "
                                         "ORDER BY started_at, id", ALICE)]

    await stack.until(lambda: states()[-1:] == ["logged_out"], what="stored states")
    assert states() == ["available", "paused", "available", "ringing", "on_call", "wrapup",
                        "available", "logged_out"]
    reasons = stack.rows("SELECT reason, seconds FROM agent_states WHERE agent = %s AND "
                         "state = 'paused'", ALICE)
    assert [r for r, _ in reasons] == ["lunch"] and all(s is not None for _, s in reasons)
    session = stack.row("SELECT logout_at IS NOT NULL FROM agent_sessions a JOIN agents g "
                        "ON g.id = a.agent_id WHERE g.interface = %s ORDER BY a.id DESC", ALICE)
    assert session == (True,)


async def test_pause_from_the_phone_is_the_same_state(stack) -> None:
    await stack.login(ALICE)
    stack.sim.call("1001", "*21")  # feature code: PauseQueueMember(...,break)
    await stack.until(lambda: stack.agent(ALICE).state == "paused", what="phone pause")
    assert stack.agent(ALICE).reason == "break"
    stack.sim.call("1001", "*22")
    await stack.until(lambda: stack.agent(ALICE).state == "available", what="phone unpause")


async def test_link_drop_mid_call_loses_nothing(stack) -> None:
    await stack.login(ALICE, BOB)
    call = await place_call(stack)
    cid = await talking(stack, call)
    stack.sim.drop_links(abort=True)
    await stack.until(lambda: stack.daemon.resyncs >= 2 and stack.daemon.client.connected,
                      what="reconnect")
    assert cid in stack.daemon.model.calls  # the resync kept the call that is still up
    await stack.sim.clock.sleep(2)
    stack.sim.phone("2000").hangup(call)
    outcome, _, by, _, end_reason, *_ = await stack.stored_call(cid)
    assert (outcome, by, end_reason) == ("answered", "caller", "")


async def test_calls_ending_while_the_link_is_down_are_closed(stack) -> None:
    await stack.login(ALICE, BOB)
    call = await place_call(stack)
    cid = await talking(stack, call)
    stack.sim.stall(True)  # Asterisk hangs: no Pong, no events
    await stack.until(lambda: stack.daemon.client.stats.ping_timeouts >= 1, what="watchdog")
    stack.sim.phone("2000").hangup(call)  # the call ends while nobody sees it
    stack.sim.stall(False)
    outcome, _, by, _, end_reason, *_ = await stack.stored_call(cid)
    assert end_reason == "vanished while the AMI link was down" and by == "unknown"
    assert outcome == "answered"
    assert not stack.daemon.model.calls
    await stack.until(lambda: stack.agent(ALICE).state in ("available", "wrapup")
                      and stack.agent(BOB).state in ("available", "wrapup"), what="agents")


async def test_asterisk_restart_readds_agents_with_their_pause(stack) -> None:
    await stack.login(ALICE, BOB)
    await stack.api("agent", action="pause", agent=BOB, reason="training")
    call = await place_call(stack)
    cid = await talking(stack, call)
    await stack.sim.restart(downtime=1.0)
    # Asterisk hung the call up (cause 4) and forgot its dynamic members; ccd recorded the
    # call, reconnected, and re-added both agents, Bob still paused for training
    outcome, _, by, *_ = await stack.stored_call(cid)
    assert (outcome, by) == ("answered", "system")
    await stack.until(lambda: stack.agent(ALICE) and stack.agent(ALICE).state == "available"
                      and stack.agent(BOB) and stack.agent(BOB).state == "paused",
                      what="agents re-added")
    assert stack.agent(BOB).reason == "training"
    members = stack.sim.engine.queues.queues["support"].members
    assert {m.interface for m in members} == {ALICE, BOB}
    assert [m.paused for m in members if m.interface == BOB] == [True]


async def test_daemon_settles_its_heap_at_start_and_on_schedule(stack) -> None:
    """Start-up froze the heap (ccd.heap) and the periodic settle is scheduled; running the
    job under traffic leaves calls working."""
    assert gc.get_freeze_count() > 0
    job = stack.services.scheduler.get_job("heap-settle")
    assert job is not None
    assert job.trigger.interval.total_seconds() == stack.config.runtime.heap_settle_interval
    await stack.login(ALICE)
    call = await place_call(stack)
    await stack.services.settle_heap()  # what the job runs
    cid = await talking(stack, call)
    stack.sim.phone("2000").hangup(call)
    outcome, agent, *_ = await stack.stored_call(cid)
    assert (outcome, agent) == ("answered", ALICE)
