"""Simulated time and the virtual-time event loop the simulator tests run on: time stands
still while anything runs and jumps when all is idle, loopback sockets between coroutines
still work, outside work (threads, TCP handshakes in the kernel) takes real time, and a
whole capture scenario comes out the same to the microsecond run after run."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from sim_support import Normalizer

from ccd.sim.clock import SimClock, VirtualTimeLoop


def _virtual() -> VirtualTimeLoop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)  # conftest.py: tests/sim runs on virtual time
    return loop


async def test_time_stands_still_while_the_cpu_works() -> None:
    loop = _virtual()
    t0 = loop.time()
    end = time.monotonic() + 0.05
    while time.monotonic() < end:  # 50 ms of real work
        pass
    await asyncio.sleep(0)
    assert loop.time() == t0


async def test_idle_time_jumps_to_the_next_timer_in_order() -> None:
    loop = _virtual()
    t0 = loop.time()
    fired: list[tuple[str, float]] = []
    loop.call_later(7200, lambda: fired.append(("2h", loop.time() - t0)))
    loop.call_later(0.25, lambda: fired.append(("250ms", loop.time() - t0)))
    real0 = time.monotonic()
    await asyncio.sleep(3600)
    assert loop.time() - t0 == pytest.approx(3600, abs=1e-9)
    assert fired == [("250ms", pytest.approx(0.25, abs=1e-9))]
    await asyncio.sleep(3600)
    assert [name for name, _ in fired] == ["250ms", "2h"]
    assert fired[1][1] == pytest.approx(7200, abs=1e-9)
    assert time.monotonic() - real0 < 60  # two virtual hours, not two real ones


async def test_loopback_replies_arrive_before_time_moves() -> None:
    """A TCP echo between two coroutines of the loop: every reply is read at the instant it
    was sent, while a timer 1 ms away waits; so timeouts never beat a peer in the loop."""
    loop = _virtual()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = loop.time()
    for i in range(200):
        writer.write(f"{i}\n".encode())
        await writer.drain()
        got = await asyncio.wait_for(reader.readline(), 0.001)
        assert got == f"{i}\n".encode()
    assert loop.time() == t0
    writer.close()
    server.close()
    await server.wait_closed()


async def test_threads_take_real_time() -> None:
    loop = _virtual()
    t0 = loop.time()
    sleeper = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.to_thread(time.sleep, 0.2)
    waited = loop.time() - t0
    assert waited >= 0.2  # the clock ran while the thread worked ...
    assert waited < 3600 and not sleeper.done()  # ... and did not skip to the timer
    sleeper.cancel()


async def test_a_handshake_waiting_in_the_kernel_takes_real_time() -> None:
    """A connect stuck in SYN-SENT (the peer's accept queue is full) completes when the
    kernel retransmits the SYN, a real second later; a virtual timeout must not fire first
    just because the loop has nothing else to do."""
    loop = _virtual()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # room for one connection waiting to be accepted
    listener.setblocking(False)
    port = listener.getsockname()[1]
    first = await asyncio.open_connection("127.0.0.1", port)  # fills the accept queue
    second = asyncio.create_task(
        asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
    )
    await asyncio.sleep(0)
    accepted = []

    async def accept_later() -> None:
        await asyncio.sleep(0.1)
        accepted.append(listener.accept()[0])  # frees the queue; the SYN is retried later

    await accept_later()
    t0 = loop.time()
    _, writer = await second  # no TimeoutError: the clock followed the real handshake
    assert loop.time() - t0 < 30
    writer.close()
    first[1].close()
    for s in accepted:
        s.close()
    listener.close()


async def test_sim_clock_on_virtual_time() -> None:
    loop = _virtual()
    clock = SimClock(scale=20, start=1_700_000_000.5)
    first = clock.now()
    assert first == 1_700_000_000.5
    stamps = [clock.now() for _ in range(1000)]  # one instant of the loop's clock
    assert stamps == [round(first + (i + 1) / 1e6, 6) for i in range(1000)]
    t0 = loop.time()
    await clock.sleep(60)
    assert loop.time() - t0 == pytest.approx(60 / 20 + 1000 / 1e6 / 20, abs=1e-7)
    # a sleep counts from the last timestamp given out, not from the loop's instant
    assert clock.now() - stamps[-1] == pytest.approx(60, abs=2e-6)


def test_sim_clock_runs_on_the_monotonic_clock_without_a_loop() -> None:
    clock = SimClock(scale=10, start=0.0)
    a = clock.now()
    time.sleep(0.05)
    assert clock.now() - a >= 0.5
    with pytest.raises(ValueError):
        SimClock(scale=0)


def test_virtual_time_makes_a_capture_scenario_reproducible() -> None:
    """Scenario 5b (attended transfer: IVR over FastAGI, queue, two agents, Local channels)
    twice, each on a fresh virtual-time loop: the same AMI stream, Timestamps included."""
    import test_captures

    def once() -> list[tuple[tuple[str, str], ...]]:
        with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
            frames, _ = runner.run(test_captures._run(test_captures.SCENARIOS["scenario05b"]))
        norm = Normalizer()  # bridge ids are uuid4, AGI CommandIds random, as in Asterisk
        return [
            tuple((k, v if k == "Timestamp" else norm.text(v)) for k, v in f.items()
                  if k != "CommandId")
            for f in frames
        ]

    first, second = once(), once()
    assert len(first) > 200
    assert first == second
