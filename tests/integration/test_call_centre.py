"""ccd's daemon against the simulated Asterisk over real sockets, with real PostgreSQL:
scripted calls are recorded, agents behave, faults lose nothing."""

from __future__ import annotations

import asyncio
import gc
import logging
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


async def test_a_resync_while_asterisk_boots_waits_for_fully_booted(stack, caplog) -> None:
    """Real Asterisk opens its AMI port before app_queue is loaded (real-2 T7a): ccd logs
    in again while it boots, its QueueStatus is 'Invalid/unknown command'. The resync
    waits for FullyBooted instead of failing, the agents come back with Bob's pause, the
    log counts what was restored, and only the real boot is reported as one."""
    caplog.set_level(logging.INFO, logger="ccd")
    await stack.login(ALICE, BOB)
    await stack.api("agent", action="pause", agent=BOB, reason="training")
    pbx: list[str] = []
    stack.daemon.bus.subscribe("test-pbx", lambda e: pbx.append(e.what)
                               if e.kind == "pbx" else None)
    client = stack.daemon.client
    connects, resyncs = client.stats.connects, stack.daemon.resyncs
    caplog.clear()
    restart = asyncio.create_task(stack.sim.restart(downtime=0.3, boot_time=3600.0))
    await stack.until(lambda: stack.sim.booting and client.stats.connects > connects,
                      what="ccd logged in while Asterisk boots")
    await stack.until(lambda: any("still booting" in r.getMessage() for r in caplog.records),
                      what="the resync to wait")
    assert stack.daemon.resyncs == resyncs and not client.booted
    stack.sim.release_boot()
    await restart
    await stack.until(lambda: stack.daemon.resyncs == resyncs + 1, what="the resync")
    members = stack.sim.engine.queues.queues["support"].members
    await stack.until(lambda: {m.interface for m in members} == {ALICE, BOB},
                      timeout=20, what="agents re-added")
    await stack.until(lambda: stack.agent(ALICE).state == "available"
                      and stack.agent(BOB).state == "paused", what="agents' state")
    assert stack.agent(BOB).reason == "training"
    assert client.stats.connects == connects + 1  # no drop-and-retry of the link
    def relog() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.getMessage().startswith("after resync")]
    await stack.until(relog, what="the relog message")
    assert relog() == ["after resync: re-added 5 queue memberships, restored 1 pauses"]
    assert pbx.count("booted") == 1 and pbx[0] == "shutdown"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
    # a plain reconnect to the same Asterisk is not a boot
    pbx.clear()
    stack.sim.drop_links()
    await stack.until(lambda: stack.daemon.resyncs == resyncs + 2, what="reconnected")
    await stack.until(lambda: "resynced" in pbx, what="resynced")
    assert "booted" not in pbx and "link_lost" in pbx


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


@pytest.mark.sim_sounds(missing=["ccd/en/welcome.wav", "ccd/en/please-hold.wav"])
async def test_a_prompt_that_does_not_play_does_not_reroute_the_call(stack) -> None:
    """Real Asterisk (real-2/T2a): STREAM FILE of a missing file answers result=-1 and the
    AGI ends with AGISTATUS=FAILURE although the IVR went on and chose a queue. The dialplan
    follows the IVR's CCD_IVR_RESULT, not AGISTATUS: no ccd-fallback, no second recording."""
    await stack.login(ALICE, BOB)
    call = await place_call(stack, "3")
    cid = await talking(stack, call)
    rec = stack.daemon.model.calls[cid].record
    assert rec.variables.get("CCD_IVR_RESULT") == "queue"
    assert rec.ivr and rec.ivr[0]["status"] == "FAILURE"
    assert call.context != "ccd-fallback" and "CCD_AGI_ERROR" not in rec.variables
    await stack.until(lambda: rec.recordings, what="ccd's recording (support: always)")
    stack.sim.phone("2000").hangup(call)
    outcome, _agent, by, queue, *_rest, record = await stack.stored_call(cid)
    assert (outcome, by, queue) == ("answered", "caller", "support")
    assert len(record["recordings"]) == 1  # ccd's own, no safety net from the fallback


def _agi_projection(frames: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(command word(s), ResultCode) of every AGI command on media, then AGISTATUS."""
    out = []
    for f in frames:
        if f.get("Event") == "AGIExecEnd":
            cmd = f.get("Command", "")
            if cmd.startswith(("STREAM FILE", "GET DATA")):
                out.append((" ".join(cmd.split()[:2]), f.get("ResultCode", "")))
        elif f.get("Event") == "VarSet" and f.get("Variable") == "AGISTATUS":
            out.append(("AGISTATUS", f.get("Value", "")))
    return out


@pytest.mark.sim_sounds(missing="all")
async def test_missing_prompts_fail_like_the_real_capture(stack) -> None:
    """real-2/T2a (ccd's prompts not installed on a real Asterisk): every STREAM FILE ends
    with ResultCode -1, GET DATA with 200, the AGI with AGISTATUS=FAILURE, and the call still
    reaches the queue the IVR chose. The simulator must say the same."""
    from ccd.ami.capture import read_capture

    path = Path(__file__).resolve().parents[2].parent / "shared/asterisk-captures/real-2" \
        / "T2a-inbound-no-prompts.ami"
    real = []
    for block in read_capture(path).decode("utf-8", "replace").split("\r\n\r\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line)
        if fields:
            real.append(fields)
    assert real, f"capture {path} is missing"
    caller = next(f["Channel"] for f in real if f.get("Event") == "Newchannel")
    real_proj = _agi_projection([f for f in real if f.get("Channel") == caller])
    seen: list[dict[str, str]] = []
    stack.sim.engine.listeners.append(lambda e: seen.append(
        {"Event": e.name, **{k: v for k, v in e.fields}}))
    await stack.login(ALICE)
    call = await place_call(stack)
    cid = await talking(stack, call)
    sim_proj = _agi_projection([f for f in seen if f.get("Channel") == call.name])
    assert {c for c in sim_proj if c[0] != "AGISTATUS"} == \
        {c for c in real_proj if c[0] != "AGISTATUS"} == \
        {("STREAM FILE", "-1"), ("GET DATA", "200")}
    assert sim_proj[-1] == real_proj[-1] == ("AGISTATUS", "FAILURE")
    assert stack.daemon.model.calls[cid].record.variables.get("CCD_IVR_RESULT") == "queue"
    stack.sim.phone("2000").hangup(call)


async def test_hold_by_ccd_is_one_conversation_with_a_hold_in_it(stack) -> None:
    """ccd's hold (Atxfer to the hold line, CancelAtxfer): confirmed by Asterisk's events,
    the caller's talk with the agent stays one segment, the hold time is counted, and the
    stepping out of the bridge is not mistaken for the agent hanging up."""
    await stack.login(ALICE)
    call = await place_call(stack)
    cid = await talking(stack, call)
    held = await stack.api("call", action="hold", call_id=cid)
    assert held["confirmed"] and held["hold"] is True
    assert stack.services.calls.list()[0]["state"] == "on_hold"
    t_hold = stack.sim.clock.now()
    await stack.sim.clock.sleep(5)
    resumed = await stack.api("call", action="unhold", call_id=cid)
    assert resumed["confirmed"] and resumed["hold"] is False
    t_resume = stack.sim.clock.now()
    await stack.sim.clock.sleep(2)
    stack.sim.phone("2000").hangup(call)
    _outcome, agent, by, *_rest, record = await stack.stored_call(cid)
    assert (agent, by) == (ALICE, "caller")
    assert [s["agent"] for s in record["segments"]] == [ALICE]
    assert abs(record["hold_seconds"] - (t_resume - t_hold)) < 1.0
