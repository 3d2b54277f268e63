"""Call records end to end (simulated Asterisk, daemon, PostgreSQL): who hung up, click-to-dial
and supervisor legs, calls that end while ccd cannot see them, restarts."""

from __future__ import annotations

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
