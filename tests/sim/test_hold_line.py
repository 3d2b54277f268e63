"""ccd's hold on the simulated PBX behaves as on Asterisk 22.10.1 (checked on a real one):
AMI Atxfer to the hold line puts the caller on music on hold and reports Hold on the agent;
CancelAtxfer brings the agent back (Unhold) and hangs up the hold line; an attended transfer
whose announcement sound is missing never starts (Hold and Unhold at once)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ccd.sim import transfer
from ccd.sim.simulator import SimOptions, Simulator


async def _bridged(sim: Simulator) -> tuple:
    caller = sim.call("1002", "1001")
    for _ in range(400):
        if caller.bridge is not None:
            break
        await asyncio.sleep(0.01)
    agent = next(c for c in sim.engine.channels.values() if c.name.startswith("PJSIP/1001-"))
    return caller, agent


def _events(sim: Simulator, names: set[str], until: str, timeout: float = 5.0):
    """Start listening now; the awaitable gives the events seen until ``until``."""
    got: list = []
    done = asyncio.Event()

    def on(e) -> None:
        if e.name in names:
            got.append((e.name, dict(e.fields).get("Channel", "")))
            if e.name == until:
                done.set()
    sim.engine.listeners.append(on)

    async def result() -> list:
        await asyncio.wait_for(done.wait(), timeout)
        sim.engine.listeners.remove(on)
        return got
    return result()


async def test_hold_line_and_cancel(tmp_path: Path) -> None:
    sim = Simulator(SimOptions(ami_port=0, time_scale=20))
    await sim.start()
    try:
        caller, agent = await _bridged(sim)
        names = {"Hold", "Unhold", "MusicOnHoldStart", "MusicOnHoldStop", "Hangup"}
        waiting = _events(sim, names | {"BridgeEnter"}, "BridgeEnter")
        sim.engine.spawn(transfer.attended_transfer(sim.engine, agent, "70", "ccd-hold"),
                         name="hold")
        held = await waiting
        assert held[:2] == [("Hold", agent.name), ("MusicOnHoldStart", caller.name)]
        while agent.atxfer_abort is None:  # the agent reaches the hold line
            await asyncio.sleep(0.01)
        waiting = _events(sim, names, "Hangup")
        transfer.cancel_attended(sim.engine, agent)
        back = await waiting
        assert back[:2] == [("MusicOnHoldStop", caller.name), ("Unhold", agent.name)]
        assert back[2][1].startswith("Local/70@ccd-hold-")
        assert agent.bridge is caller.bridge and not agent.on_hold
    finally:
        await sim.stop()


async def test_attended_transfer_without_its_announcement_does_not_start(tmp_path: Path) -> None:
    (tmp_path / "sounds").mkdir()  # a PBX without the feature's sounds
    opts = SimOptions(ami_port=0, time_scale=20)
    opts.settings.sounds_dir = tmp_path / "sounds"
    sim = Simulator(opts)
    await sim.start()
    try:
        caller, agent = await _bridged(sim)
        names = {"Hold", "Unhold", "MusicOnHoldStart", "MusicOnHoldStop", "Newchannel"}
        waiting = _events(sim, names, "Unhold")
        sim.engine.spawn(transfer.attended_transfer(sim.engine, agent, "70", "ccd-hold"),
                         name="hold")
        assert [n for n, _ in await waiting] == ["Hold", "MusicOnHoldStart", "MusicOnHoldStop",
                                                 "Unhold"]
        assert agent.bridge is caller.bridge
    finally:
        await sim.stop()
