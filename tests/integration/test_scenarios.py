"""The simulator's shipped scripted scenarios, run with the ccd daemon connected over TCP:
each one must end in the expected records in PostgreSQL, nothing left open."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccd.sim import scenario as scenario_module
from ccd.sim.scenario import ScenarioRunner, load_scenario

SCENARIOS = Path(scenario_module.__file__).parent / "scenarios"


def calls(stack) -> list[tuple]:
    return stack.rows("SELECT outcome, hangup_by, queue, agent, queue_wait, end_reason "
                      "FROM calls WHERE NOT open ORDER BY started_at")


async def test_inbound_answered_then_abandoned(stack) -> None:
    result = await ScenarioRunner(stack.sim, load_scenario(
        SCENARIOS / "inbound-answered.toml")).run()
    assert result.ok, result.failures
    rows = await stack.until(lambda: (r := calls(stack)) and len(r) == 2 and r,
                             what="two stored calls")
    (out1, by1, q1, agent1, _, end1), (out2, by2, q2, agent2, wait2, end2) = rows
    # the first call: the IVR's queue, answered by a logged-in agent, the caller hangs up
    assert (out1, by1, q1, end1) == ("answered", "caller", "support", "")
    assert agent1 in ("PJSIP/1001", "PJSIP/1002")
    # the second: both agents paused for "lunch break", the caller gives up after 12 s;
    # the wait is the simulator's, from joining the queue to leaving it (the Leave that
    # follows the Abandon: ccd ends the wait there)
    assert (out2, by2, q2, agent2, end2) == ("abandoned", "caller", "support", "", "")
    c2 = result.calls["c2"]
    [joined] = stack.event("QueueCallerJoin", Channel=c2)
    assert stack.event("QueueCallerAbandon", Channel=c2)
    [left] = stack.event("QueueCallerLeave", Channel=c2)
    assert float(wait2) == pytest.approx(left.ts - joined.ts, abs=0.002)
    assert float(wait2) >= 12.0
    assert not stack.daemon.model.calls


async def test_restart_during_a_call(stack) -> None:
    result = await ScenarioRunner(stack.sim, load_scenario(
        SCENARIOS / "restart-during-call.toml")).run()
    assert result.ok, result.failures
    [(outcome, by, queue, agent, _, end_reason)] = await stack.until(
        lambda: calls(stack), what="the stored call")
    # Asterisk hung the call up as it restarted (cause 4): the system ended it
    assert (outcome, by, queue, end_reason) == ("answered", "system", "support", "")
    assert agent in ("PJSIP/1001", "PJSIP/1002")
    # the agents the scenario logged in were forgotten by the restart; ccd re-added them
    await stack.until(lambda: {m.interface for m in stack.sim.engine.queues.queues["support"]
                               .members} == {"PJSIP/1001", "PJSIP/1002"},
                      what="agents re-added after the restart")
    assert stack.daemon.resyncs >= 2 and not stack.daemon.model.calls
