"""The AMI server under abuse: garbage, over-long lines, half-closed sockets, thousands of
connections, lingering unauthenticated peers, a client that stops reading. Asterisk
answers malformed input with errors or drops the peer, and keeps serving everyone else."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import pytest
from sim_support import CAPTURE_CONFIG, EPOCH, AmiTestClient

from ccd.sim.ami import server as ami_server
from ccd.sim.simulator import SimOptions, Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    opts = SimOptions(
        config_dir=CAPTURE_CONFIG,
        ami_port=0,
        start_time=EPOCH,
        time_scale=25.0,
        agi="127.0.0.1:1",
        auth_fail_delay=0.0,
    )
    async with Simulator(opts) as s:
        yield s


async def _still_serves(sim: Simulator) -> None:
    client = await AmiTestClient.connect("127.0.0.1", sim.ami_port)
    await client.login()
    assert (await client.action("Ping")).get("Ping") == "Pong"
    await client.close()


async def test_binary_garbage(sim: Simulator) -> None:
    for seed in range(5):
        _, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
        writer.write(os.urandom(4096 + seed * 1000) + b"\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.close()
    await _still_serves(sim)


async def test_garbage_then_valid_action_on_same_connection(sim: Simulator) -> None:
    client = await AmiTestClient.connect("127.0.0.1", sim.ami_port)
    client.writer.write(b"no colon here\r\n\xff\xfe\x00:::\r\n\r\n")
    client.writer.write(b": empty key\r\nAction: \r\n\r\n")
    await client.login()
    assert (await client.action("Ping")).get("Response") == "Success"
    errors = [f for f in client.frames if f.get("Response") == "Error"]
    assert errors and all(
        f.get("Message") in ("Permission denied", "Missing action in request") for f in errors
    )
    await client.close()


async def test_over_long_line_is_dropped_not_fatal(sim: Simulator) -> None:
    client = await AmiTestClient.connect("127.0.0.1", sim.ami_port)
    await client.login()
    client.writer.write(b"Action: Ping\r\nActionID: " + b"x" * 100_000 + b"\r\n\r\n")
    resp = await client.action("Ping", ActionID="after")
    assert resp.get("ActionID") == "after"
    await client.close()


async def test_half_closed_socket_gets_its_answers(sim: Simulator) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(("127.0.0.1", sim.ami_port))
    sock.setblocking(False)
    await loop.sock_sendall(
        sock,
        b"Action: Login\r\nUsername: ccd\r\nSecret: ccdsecret\r\n\r\n"
        b"Action: Ping\r\nActionID: hc\r\n\r\n",
    )
    sock.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), 3)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert b"Message: Authentication accepted" in data
    assert b"ActionID: hc\r\nPing: Pong" in data
    await _still_serves(sim)


async def test_thousands_of_connections(sim: Simulator) -> None:
    clients: list[AmiTestClient] = []
    while len(clients) < 1500:
        # at most authlimit (50) may be connected and not yet logged in, as in Asterisk
        new = await asyncio.gather(
            *(AmiTestClient.connect("127.0.0.1", sim.ami_port) for _ in range(40))
        )
        # call events only: with security events every login would reach every session
        await asyncio.gather(*(c.login(events="call") for c in new))
        clients.extend(new)
    assert len(sim.ami.sessions) == len(clients) >= 1500
    sim.call("2000", "5551000")
    await asyncio.gather(*(c.wait_for(lambda f: f.event == "Newchannel", 10) for c in clients))
    await asyncio.gather(*(c.close() for c in clients))
    for _ in range(100):
        if not sim.ami.sessions:
            break
        await asyncio.sleep(0.02)
    assert not sim.ami.sessions
    await _still_serves(sim)


async def test_unauthenticated_limit_and_timeout(sim: Simulator) -> None:
    sim.ami.authlimit = 5
    sim.ami.authtimeout = 0.3
    idle = [await asyncio.open_connection("127.0.0.1", sim.ami_port) for _ in range(5)]
    for reader, _ in idle:
        assert await asyncio.wait_for(reader.readline(), 2) == b"Asterisk Call Manager/11.0.0\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # refused: no banner, closed
    writer.close()
    for reader, writer in idle:  # each one is dropped after authtimeout
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
    await _still_serves(sim)


async def test_client_that_stops_reading_is_dropped(sim: Simulator, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(ami_server, "MAX_BACKLOG", 50)
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(("127.0.0.1", sim.ami_port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_sendall(sock, b"Action: Login\r\nUsername: ccd\r\nSecret: ccdsecret\r\n\r\n")
    await asyncio.sleep(0.1)
    assert len(sim.ami.sessions) == 1
    for _ in range(40):
        sim.call("2000", "5551000")
    for _ in range(100):
        if not sim.ami.sessions:
            break
        await asyncio.sleep(0.05)
    assert not sim.ami.sessions
    sock.close()
    await _still_serves(sim)
