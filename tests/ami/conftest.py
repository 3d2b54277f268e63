"""A scripted AMI peer over real TCP for link tests: it answers like Asterisk 22
(responses copied in shape from the captures) and lets a test inject bytes, stall
Pings, drop the connection or refuse new ones."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping

import pytest

from ccd.ami.parser import FrameSplitter, parse_frame
from ccd.sim.clock import VirtualTimeLoop


class ScriptedAmi:
    def __init__(self, secret: str = "ccdsecret") -> None:
        self.secret = secret
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.actions: list[dict[str, str]] = []
        self.answer_ping = True
        self.channels: list[dict[str, str]] = []  # CoreShowChannel items
        self.queue_items: list[dict[str, str]] = []  # QueueParams/QueueMember/QueueEntry
        self.logins = 0
        self.started = time.time() - 1090  # Asterisk's start: Uptime grows from here
        self.booting = False  # modules still loading: no FullyBooted, app_queue unknown
        self.app_queue = True  # app_queue loaded (once booted)

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop_listening(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def drop(self) -> None:
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()

    async def send(self, data: bytes) -> None:
        for w in self.writers:
            w.write(data)
            await w.drain()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        sp = FrameSplitter()
        try:
            while data := await reader.read(4096):
                for raw in sp.feed(data):
                    await self._action(parse_frame(raw), writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if writer in self.writers:
                self.writers.remove(writer)
            writer.close()

    async def finish_boot(self) -> None:
        """Every module loaded: FullyBooted (with Timestamp) to every session."""
        self.booting = False
        self.started = time.time()
        await self.send(self.frame(Event="FullyBooted", Privilege="system,all",
                                   Timestamp=f"{time.time():.6f}", Status="Fully Booted",
                                   Uptime="0", LastReload="0"))

    @staticmethod
    def frame(**fields: str) -> bytes:
        return ("".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode()

    async def _action(self, a: dict[str, str], w: asyncio.StreamWriter) -> None:
        self.actions.append(a)
        aid = a.get("ActionID", "")
        name = a.get("Action", "")
        if name == "Login":
            if a.get("Secret") != self.secret:
                w.write(self.frame(Response="Error", ActionID=aid,
                                   Message="Authentication failed"))
                await w.drain()
                w.close()
                return
            self.logins += 1
            w.write(self.frame(Response="Success", ActionID=aid,
                               Message="Authentication accepted"))
            if not self.booting:
                up = str(int(time.time() - self.started))
                w.write(self.frame(Event="FullyBooted", Privilege="system,all", Uptime=up,
                                   LastReload=up, Status="Fully Booted"))
        elif name == "Ping":
            if self.answer_ping:
                w.write(self.frame(Response="Success", ActionID=aid, Ping="Pong",
                                   Timestamp="1795465210.541189"))
        elif name == "CoreShowChannels":
            w.write(self.frame(Response="Success", ActionID=aid, EventList="start",
                               Message="Channels will follow"))
            for c in self.channels:
                w.write(self.frame(Event="CoreShowChannel", ActionID=aid, **c))
            w.write(self.frame(Event="CoreShowChannelsComplete", ActionID=aid,
                               EventList="Complete", ListItems=str(len(self.channels))))
        elif name == "QueueStatus" and self.app_queue and not self.booting:
            w.write(self.frame(Response="Success", ActionID=aid, EventList="start",
                               Message="Queue status will follow"))
            for q in self.queue_items:
                w.write(self.frame(**q, ActionID=aid))
            w.write(self.frame(Event="QueueStatusComplete", ActionID=aid,
                               EventList="Complete", ListItems=str(len(self.queue_items))))
        elif name == "Logoff":
            w.write(self.frame(Response="Goodbye", ActionID=aid,
                               Message="Thanks for all the fish."))
            await w.drain()
            w.close()
            return
        else:
            w.write(self.frame(Response="Error", ActionID=aid,
                               Message=f"Invalid/unknown command: {name}. Use Action: "
                               "ListCommands to show available commands."))
        await w.drain()


@pytest.fixture
async def ami() -> AsyncIterator[ScriptedAmi]:
    peer = ScriptedAmi()
    await peer.start()
    yield peer
    peer.drop()
    if peer.server is not None:
        peer.server.close()



def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Virtual time (:class:`ccd.sim.clock.VirtualTimeLoop`) for the tests whose peers all
    live in the test's event loop: timeouts, polls and pauses then happen in a fixed order
    and take exact durations however loaded the machine is. Tests that talk to another
    process (PostgreSQL, a subprocess: marked ``realtime``) run on an ordinary loop."""
    if item.get_closest_marker("realtime") or {"db_url", "pg_server_url"} & set(
        getattr(item, "fixturenames", ())
    ):
        return {"realtime": asyncio.new_event_loop}
    return {"virtual-time": VirtualTimeLoop}
