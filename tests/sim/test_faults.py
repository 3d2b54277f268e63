"""Fault injection over real sockets: dropped links, restarts, stop/start, stalls, slow
links, from the in-process API, the control port, AMI ``core restart now`` and a separate
``ccd sim`` process (control port and signals); and ccd's own AMI client living through
them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest
from sim_support import CAPTURE_CONFIG, EPOCH, AmiTestClient

from ccd.ami.client import AmiClient
from ccd.config import AmiConfig
from ccd.sim.simulator import SimOptions, Simulator

SCALE = 25.0


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    opts = SimOptions(
        config_dir=CAPTURE_CONFIG,
        ami_port=0,
        start_time=EPOCH,
        time_scale=SCALE,
        agi="127.0.0.1:1",
        control_port=0,
        boot_uptime=30.0,
    )
    async with Simulator(opts) as s:
        yield s


async def _client(sim: Simulator) -> AmiTestClient:
    client = await AmiTestClient.connect("127.0.0.1", sim.ami_port)
    await client.login()
    return client


async def _control(sim: Simulator, line: str) -> dict[str, object]:
    port = sim.control_port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(line.encode() + b"\n")
    await writer.drain()
    reply = json.loads(await asyncio.wait_for(reader.readline(), 5))
    writer.close()
    return reply


async def test_drop_links_closes_and_asterisk_stays_up(sim: Simulator) -> None:
    a, b = await _client(sim), await _client(sim)
    assert sim.drop_links() == 2
    await asyncio.wait_for(a.closed.wait(), 2)
    await asyncio.wait_for(b.closed.wait(), 2)
    again = await _client(sim)
    booted = await again.wait_for(lambda f: f.event == "FullyBooted")
    assert int(booted.get("Uptime")) >= 30
    await again.close()


async def test_restart_forgets_channels_and_dynamic_members(sim: Simulator) -> None:
    client = await _client(sim)
    await client.action(
        "QueueAdd", Queue="support", Interface="PJSIP/1004", MemberName="Agent Dana"
    )
    call = sim.call("2000", "5551000")
    await client.wait_for(lambda f: f.event == "BridgeEnter" and f.get("Channel") == call.name)
    restart = asyncio.get_running_loop().create_task(sim.restart(downtime=0.3))
    shutdown = await client.wait_for(lambda f: f.event == "Shutdown", 3)
    assert (shutdown.get("Shutdown"), shutdown.get("Restart")) == ("Cleanly", "True")
    requests = [f for f in client.events("SoftHangupRequest") if f.get("Cause") == "4"]
    assert {f.get("Channel") for f in requests} >= {call.name}
    hangups = client.events("Hangup")
    assert call.name in {f.get("Channel") for f in hangups}
    await asyncio.wait_for(client.closed.wait(), 2)
    await asyncio.sleep(0.1)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", sim.ami_port)
    await restart
    again = await _client(sim)
    booted = await again.wait_for(lambda f: f.event == "FullyBooted")
    assert (booted.get("Uptime"), booted.get("LastReload")) == ("0", "0")
    _, items = await again.collect("CoreShowChannels", "CoreShowChannelsComplete")
    assert items[-1].get("ListItems") == "0"
    _, items = await again.collect("QueueStatus", "QueueStatusComplete", Queue="support")
    assert [f.get("Location") for f in items if f.event == "QueueMember"] == [
        "PJSIP/1001",
        "PJSIP/1002",
    ]
    fresh = sim.call("2000", "5551000")
    assert fresh.name == "PJSIP/2000-00000000"
    assert fresh.uniqueid.endswith(".0")
    contacts = await again.wait_for(lambda f: f.event == "ContactStatus", 3)
    assert contacts.get("ContactStatus") == "Reachable"
    await again.close()
    await client.close()


async def test_stop_then_start(sim: Simulator) -> None:
    client = await _client(sim)
    await sim.shutdown()
    shutdown = await client.wait_for(lambda f: f.event == "Shutdown")
    assert shutdown.get("Restart") == "False"
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", sim.ami_port)
    await sim.boot()
    again = await _client(sim)
    assert (await again.wait_for(lambda f: f.event == "FullyBooted")).get("Uptime") == "0"
    await again.close()


async def test_stall_stops_answers_until_released(sim: Simulator) -> None:
    client = await _client(sim)
    sim.stall()
    aid = await client.send("Ping")
    with pytest.raises(TimeoutError):
        await client.wait_for(lambda f: f.get("ActionID") == aid, 0.4)
    sim.call("2000", "5551000")
    await asyncio.sleep(0.1)
    assert not client.events("Newchannel")
    sim.stall(False)
    pong = await client.wait_for(lambda f: f.get("ActionID") == aid, 2)
    assert pong.get("Ping") == "Pong"
    await client.wait_for(lambda f: f.event == "Newchannel", 2)
    await client.close()


async def test_slow_link_delays_every_frame(sim: Simulator) -> None:
    """On virtual time the delay is exact: the answer comes 0.2 s later, or at once."""
    client = await _client(sim)
    loop = asyncio.get_running_loop()
    sim.slow(0.2)
    start = loop.time()
    await client.action("Ping")
    assert loop.time() - start == pytest.approx(0.2, abs=1e-9)
    sim.slow(0)
    start = loop.time()
    await client.action("Ping")
    assert loop.time() == start
    await client.close()


async def test_core_restart_now_through_ami(sim: Simulator) -> None:
    client = await _client(sim)
    resp = await client.action("Command", Command="core restart now")
    assert resp.get("Response") == "Success"
    shutdown = await client.wait_for(lambda f: f.event == "Shutdown", 3)
    assert shutdown.get("Restart") == "True"
    await asyncio.wait_for(client.closed.wait(), 2)


async def test_control_port_commands(sim: Simulator) -> None:
    status = await _control(sim, "status")
    assert status["ok"] and status["ami_port"] == sim.ami_port and status["up"]
    client = await _client(sim)
    reply = await _control(sim, '{"cmd": "call", "from": "2000", "to": "5551000"}')
    assert reply["ok"]
    name = reply["channel"]
    await client.wait_for(lambda f: f.event == "BridgeEnter" and f.get("Channel") == name, 5)
    chans = await _control(sim, "channels")
    assert name in {c["name"] for c in chans["channels"]}  # type: ignore[union-attr]
    assert (await _control(sim, f"hangup {name}"))["ok"]
    await client.wait_for(lambda f: f.event == "Hangup" and f.get("Channel") == name, 5)
    assert (await _control(sim, "stall on"))["stalled"] is True
    assert (await _control(sim, "stall off"))["stalled"] is False
    assert (await _control(sim, "slow 0.05"))["delay"] == 0.05
    assert (await _control(sim, "slow 0"))["delay"] == 0
    assert (await _control(sim, "register 1005 off"))["ok"]
    bad = await _control(sim, "frobnicate")
    assert bad == {"ok": False, "error": "unknown command 'frobnicate'"}
    bad = await _control(sim, "{not json")
    assert bad["ok"] is False
    assert (await _control(sim, "drop"))["dropped"] == 1
    await asyncio.wait_for(client.closed.wait(), 2)
    assert (await _control(sim, '{"cmd": "restart", "downtime": 0.1}'))["ok"]
    again = await _client(sim)
    assert (await again.wait_for(lambda f: f.event == "FullyBooted")).get("Uptime") == "0"
    await again.close()


async def test_ccd_ami_client_survives_faults(sim: Simulator) -> None:
    """ccd's own AMI link against the simulator: login, list actions, watchdog on a stall,
    reconnection after a restart."""
    events: list[bytes] = []
    connects = 0
    disconnects: list[str] = []

    async def on_connect() -> None:
        nonlocal connects
        connects += 1

    cfg = AmiConfig(
        host="127.0.0.1",
        port=sim.ami_port,
        ping_interval=0.2,
        ping_timeout=0.3,
        backoff_initial=0.05,
        backoff_max=0.2,
        action_timeout=2.0,
    )
    client = AmiClient(cfg, lambda raw, at: events.append(raw), on_connect, disconnects.append)
    client.start()
    try:
        await client.wait_connected(3)
        resp = await client.list_action("QueueStatus", {"Queue": "support"})
        assert [e.get("Event") for e in resp.events][:2] == ["QueueParams", "QueueMember"]
        sim.stall()
        for _ in range(50):
            if disconnects:
                break
            await asyncio.sleep(0.05)
        assert disconnects, "the watchdog did not notice the stalled link"
        sim.stall(False)
        await client.wait_connected(3)
        await sim.restart(downtime=0.2)
        for _ in range(60):
            if connects >= 3 and client.connected:
                break
            await asyncio.sleep(0.05)
        assert connects >= 3
        assert any(raw.startswith(b"Event: Shutdown") for raw in events)
        result = await client.originate(
            {"Channel": "PJSIP/2000", "Context": "outbound-msg", "Exten": "s", "Priority": 1},
            timeout=3,
        )
        assert (result["Response"], result["Reason"]) == ("Success", "4")
    finally:
        await client.stop()


@pytest.mark.realtime  # a separate ccd sim process runs in real time
async def test_separate_process_control_port_and_signals(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = (
        "import sys; import ccd.cli.sim; from ccd.cli.main import main; sys.argv[0] = 'ccd'; main()"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        "sim",
        "--config-dir",
        str(CAPTURE_CONFIG),
        "--ami-port",
        "0",
        "--control-port",
        "0",
        "--time-scale",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "CCD_LOG_LEVEL": "WARNING"},
    )
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        assert first.startswith("ccd sim: AMI 127.0.0.1:")
        ami_port = int(first.split("AMI 127.0.0.1:")[1].split(",")[0])
        control_port = int(first.split("control 127.0.0.1:")[1].split(",")[0])
        client = await AmiTestClient.connect("127.0.0.1", ami_port)
        await client.login()
        proc.send_signal(signal.SIGUSR1)
        await asyncio.wait_for(client.closed.wait(), 5)
        client = await AmiTestClient.connect("127.0.0.1", ami_port)
        await client.login()
        proc.send_signal(signal.SIGUSR2)
        shutdown = await client.wait_for(lambda f: f.event == "Shutdown", 5)
        assert shutdown.get("Restart") == "True"
        reader, writer = await asyncio.open_connection("127.0.0.1", control_port)
        writer.write(b"status\n")
        status = json.loads(await asyncio.wait_for(reader.readline(), 5))
        assert status["ok"] and status["ami_port"] == ami_port
        writer.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
