"""Call records end to end (simulated Asterisk, daemon, PostgreSQL): who hung up, click-to-dial
and supervisor legs, calls that end while ccd cannot see them, restarts."""

from __future__ import annotations

import asyncio

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
    assert row == ("demo", "outbound", "+15559876543", "Agent Alice")  # E.164, as dialled
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


def wav_seconds(path: str) -> float:
    """The length of a WAV file the simulated Asterisk wrote."""
    import wave

    with wave.open(path) as w:
        return w.getnframes() / w.getframerate()


async def test_a_call_ending_while_the_link_is_down_ends_when_its_recording_does(stack) -> None:
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
    # ccd started recording when Alice answered: the talk is the recording's length
    assert float(talk) == pytest.approx(wav_seconds(path), abs=0.5)
    row = stack.row("SELECT ended_at IS NOT NULL, end_after < end_before, total_seconds "
                    "FROM calls WHERE call_id = %s", cid)
    assert row[0] is True and row[1] is True and row[2] is not None


async def restart_daemon(stack, while_down=None) -> None:
    """Stop ccd (the calls stay up in Asterisk), run ``while_down``, start it again."""
    from ccd.service import run_daemon

    stack.daemon.request_stop()
    await asyncio.wait_for(stack.task, 30)
    if while_down is not None:
        await while_down()
    ready, parts = asyncio.Event(), {}
    stack.task = asyncio.create_task(run_daemon(stack.config, ready=ready, extra=parts))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({stack.task, waiter}, timeout=30,
                                 return_when=asyncio.FIRST_COMPLETED)
    if stack.task in done:
        stack.task.result()
    stack.daemon, stack.services = parts["daemon"], parts["services"]
    await stack.until(lambda: stack.daemon.client.connected and stack.daemon.resyncs >= 1,
                      what="the new daemon's resync")


async def test_a_call_that_started_while_ccd_was_down_is_adopted_with_what_asterisk_knows(
        stack) -> None:
    """As real-2/T9: the IVR is unreachable, the dialplan's fallback records and queues the
    caller (overflow, ringall); ccd starts while the phones ring and adopts the call."""
    await stack.login(ALICE, BOB)
    for ext in ("1001", "1002"):
        stack.sim.phone(ext).profile.answer = "manual"
    holder: dict[str, Channel] = {}

    async def call_in() -> None:
        holder["call"] = stack.sim.call("2000", "5551000")
        await stack.until(lambda: any(q.callers for q in stack.sim.engine.queues.queues.values()),
                          what="the caller to wait in a queue")
    await restart_daemon(stack, call_in)
    call = holder["call"]
    cid = await stack.until(lambda: next((c.linkedid for c in stack.daemon.model.channels.values()
                                          if c.name == call.name), ""), what="adoption")
    assert stack.sim.phone("1001").answer()
    await stack.until(lambda: stack.daemon.model.calls[cid].open_segments, what="answer")
    await stack.sim.clock.sleep(2)
    stack.sim.phone("2000").hangup(call)
    outcome, agent, by, queue, _, talk, record = await stack.stored_call(cid)
    # ccd was down: the dialplan's fallback took the line's own queue (support on 5551000)
    assert (outcome, agent, by, queue) == ("answered", ALICE, "caller", "support")
    row = stack.row("SELECT direction, did, t.slug FROM calls c JOIN tenants t "
                    "ON t.id = c.tenant_id WHERE call_id = %s", cid)
    assert row == ("inbound", "5551000", "demo")
    [path] = record["recordings"]  # the fallback's MixMonitor, found running
    assert path.endswith("-fallback.wav") and "/demo/" in path
    assert stack.row("SELECT count(*) FROM recordings WHERE call_id = %s", cid) == (1,)
    assert record["adopted"] and "queue_wait" in record["estimated"]
    assert 1.5 < float(talk) < 4.0


async def test_calls_across_a_ccd_restart_keep_what_ccd_knew(stack) -> None:
    """ccd stops (Ctrl-C of ccd demo, or kill -9) with two answered calls up; one ends while
    it is down. At start it closes that one (end: its recording's) and keeps what it knew
    of the other: no second call_started, the DID, queue, wait and talk as seen."""
    await stack.login(ALICE, BOB)
    first, cid1 = await answered(stack)
    second, cid2 = await answered(stack)
    await stack.until(lambda: all(stack.daemon.model.calls[c].record.recordings
                                  for c in (cid1, cid2)), what="recordings")
    seen_wait = stack.daemon.model.calls[cid2].record.queue_wait
    await stack.sim.clock.sleep(2)

    async def first_ends() -> None:
        stack.sim.phone("2000").hangup(first)
        await stack.sim.clock.sleep(1)
    await restart_daemon(stack, first_ends)
    _, _, by, _, end_reason, talk, record = await stack.stored_call(cid1)
    assert (by, end_reason, record["end_source"]) == (
        "unknown", "ended while ccd was not running", "recording")
    assert stack.row("SELECT ended_at IS NOT NULL FROM calls WHERE call_id = %s", cid1) == (True,)
    [path] = record["recordings"]  # ccd started it when the agent answered
    assert float(talk) == pytest.approx(wav_seconds(path), abs=0.5)
    await stack.sim.clock.sleep(1)
    stack.sim.phone("2000").hangup(second)
    outcome, agent, by, queue, end_reason, talk, record = await stack.stored_call(cid2)
    assert (outcome, by, queue, end_reason) == ("answered", "caller", "support", "")
    assert agent in (ALICE, BOB)
    assert record["queue_wait"] == seen_wait and not record["estimated"]
    row = stack.row("SELECT direction, did FROM calls WHERE call_id = %s", cid2)
    assert row == ("inbound", "5551000")
    assert stack.row("SELECT count(*) FROM call_events WHERE call_id = %s AND "
                     "kind = 'call_started'", cid2) == (1,)
    assert stack.row("SELECT count(*) FROM recordings WHERE call_id = %s", cid2) == (1,)
    [path] = record["recordings"]  # from the answer, not from the restart
    assert float(talk) == pytest.approx(wav_seconds(path), abs=0.5)
    assert stack.row("SELECT count(*) FROM calls WHERE open") == (0,)
