"""The AMI link over a real socket: login, resync, watchdog, reconnect, isolation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ccd.ami.actions import AmiActionError
from ccd.ami.capture import read_capture
from ccd.ami.client import AmiClient, AmiError
from ccd.config import Config, load
from ccd.daemon import Daemon
from ccd.model.domain import DomainEvent

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"


def make_config(tmp_path: Path, port: int, **ami: object) -> Config:
    env = {"CCD_DATA_DIR": str(tmp_path), "CCD_AMI_PORT": str(port),
           "CCD_AMI_PING_INTERVAL": "0.2", "CCD_AMI_PING_TIMEOUT": "0.3",
           "CCD_AMI_BACKOFF_INITIAL": "0.05", "CCD_AMI_BACKOFF_MAX": "0.2",
           "CCD_AMI_CONNECT_TIMEOUT": "1"}
    env.update({f"CCD_AMI_{k.upper()}": str(v) for k, v in ami.items()})
    return load(None, env)


async def until(cond, timeout: float = 5.0) -> None:
    """Poll ``cond`` until it holds, for ``timeout`` seconds of the loop's clock (virtual
    time here: see conftest.py)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def daemon(tmp_path: Path, ami):
    d = Daemon(make_config(tmp_path, ami.port))
    got: list[DomainEvent] = []
    d.bus.subscribe("test", got.append)
    d.got = got  # type: ignore[attr-defined]
    await d.start()
    yield d
    await d.stop()


BRIDGED = [
    {"Channel": "PJSIP/2000-00000013", "ChannelState": "6", "ChannelStateDesc": "Up",
     "CallerIDNum": "5557770001", "CallerIDName": "Customer Carol", "Context": "from-trunk",
     "Exten": "5551000", "Uniqueid": "1795465198.23", "Linkedid": "1795465198.23",
     "Application": "Queue", "ApplicationData": "support,tT,,,120", "Duration": "00:00:11",
     "BridgeId": "70de70b7"},
    {"Channel": "PJSIP/1002-00000014", "ChannelState": "6", "ChannelStateDesc": "Up",
     "CallerIDNum": "1002", "CallerIDName": "Agent Bob", "Context": "agents",
     "Exten": "5551000", "Uniqueid": "1795465203.24", "Linkedid": "1795465198.23",
     "Application": "AppQueue", "ApplicationData": "(Outgoing Line)", "Duration": "00:00:05",
     "BridgeId": "70de70b7"},
]
MEMBER = {"Event": "QueueMember", "Queue": "support", "Name": "Agent Alice",
          "Location": "PJSIP/1001", "StateInterface": "PJSIP/1001", "Membership": "static",
          "Penalty": "0", "CallsTaken": "4", "InCall": "0", "Status": "1", "Paused": "1",
          "PausedReason": "lunch break", "Wrapuptime": "0"}


async def test_connect_resync_adopts_calls_and_members(daemon, ami) -> None:
    ami.channels = BRIDGED
    ami.queue_items = [{"Event": "QueueParams", "Queue": "support", "Strategy": "rrmemory",
                        "Calls": "0"}, MEMBER]
    ami.drop()  # force a fresh connect that sees the scripted truth
    await until(lambda: daemon.resyncs >= 1 and daemon.model.calls)
    call = daemon.model.calls["1795465198.23"]
    assert call.record.caller_num == "5557770001"
    assert [s.agent for s in call.record.segments] == ["PJSIP/1002"]
    started = [e for e in daemon.got if e.kind == "call_started"]
    assert started and started[0].adopted
    alice = daemon.model.agents["PJSIP/1001"]
    assert (alice.state, alice.reason) == ("paused", "lunch break")
    st = daemon.status()
    assert st["ami"]["state"] == "connected" and st["calls_in_progress"] == 1


async def test_calls_that_vanished_while_down_are_closed_honestly(daemon, ami) -> None:
    await until(lambda: daemon.client.connected)
    ami.channels = BRIDGED
    ami.drop()
    await until(lambda: "1795465198.23" in daemon.model.calls)
    ami.channels = []
    ami.drop()  # link lost; when it comes back Asterisk has no channels
    await until(lambda: not daemon.model.calls)
    [ended] = [e for e in daemon.got if e.kind == "call_ended"]
    assert ended.record.end_reason == "vanished while the AMI link was down"
    assert ended.hangup_by == "unknown"
    assert daemon.client.stats.disconnects >= 2


async def test_stream_through_link_and_isolation(daemon, ami) -> None:
    await until(lambda: daemon.client.connected and daemon.resyncs >= 1)

    def broken(_: DomainEvent) -> None:
        raise RuntimeError("subscriber bug")

    daemon.bus.subscribe("broken", broken)
    data = read_capture(next(CAPTURES.glob("scenario01*.ami")))
    body = data[data.index(b"Event: SuccessfulAuth"):]
    # garbage frames in the middle must be skipped, not fatal
    body = body.replace(b"Event: MixMonitorStart",
                        b"no colon at all\r\n\r\nEvent: MixMonitorStart", 1)
    for i in range(0, len(body), 777):  # arbitrary chunking
        await ami.send(body[i:i + 777])
    await until(lambda: any(e.kind == "call_ended" for e in daemon.got))
    [rec] = [e.record for e in daemon.got if e.kind == "call_ended"]
    assert rec.agent == "PJSIP/1001" and rec.hangup_by == "caller"
    assert daemon.bus.errors > 0
    assert daemon.status()["events"]["malformed"] >= 1
    assert daemon.client.connected  # nothing dropped the link


async def test_model_error_costs_one_event_only(daemon, ami, monkeypatch) -> None:
    await until(lambda: daemon.client.connected and daemon.resyncs >= 1)
    real = daemon.model.feed
    calls = {"n": 0}

    def flaky(e):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyError("model bug")
        return real(e)

    monkeypatch.setattr(daemon.model, "feed", flaky)
    data = read_capture(next(CAPTURES.glob("scenario02*.ami")))
    await ami.send(data[data.index(b"Event: SuccessfulAuth"):])
    await until(lambda: any(e.kind == "call_ended" for e in daemon.got))
    assert daemon.ingest.stats.model_errors == 1
    assert daemon.client.connected


async def test_watchdog_detects_hung_asterisk(daemon, ami) -> None:
    await until(lambda: daemon.client.connected)
    logins = ami.logins
    ami.answer_ping = False  # Asterisk hangs: TCP is up, nothing answers
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await until(lambda: daemon.client.stats.ping_timeouts >= 1, timeout=3)
    # on virtual time this is exact: the next Ping within ping_interval (0.2 s), given up
    # after ping_timeout (0.3 s), seen by the next poll of until() (0.02 s)
    assert loop.time() - t0 <= 0.2 + 0.3 + 0.02 + 1e-6
    ami.answer_ping = True
    await until(lambda: ami.logins > logins and daemon.client.connected)


async def test_reconnects_after_asterisk_goes_away(tmp_path: Path, ami) -> None:
    d = Daemon(make_config(tmp_path, ami.port))
    await d.start()
    try:
        await until(lambda: d.client.connected)
        port = ami.port
        await ami.stop_listening()
        ami.drop()
        await until(lambda: not d.client.connected)
        await asyncio.sleep(0.5)  # a few refused attempts
        assert not d.client.connected
        await ami.start(port)
        await until(lambda: d.client.connected and d.client.stats.connects >= 2
                    and d.resyncs >= 2)
    finally:
        await d.stop()


async def test_wrong_secret_is_reported_and_retried(tmp_path: Path, ami) -> None:
    d = Daemon(make_config(tmp_path, ami.port, secret="wrong"))
    await d.start()
    try:
        await until(lambda: d.client.stats.login_failures >= 2)
        assert not d.client.connected
        assert "refused" in d.client.stats.last_error or d.client.stats.connects == 0
    finally:
        await d.stop()


async def test_actions(ami) -> None:
    cfg = load(None, {"CCD_AMI_PORT": str(ami.port)})
    client = AmiClient(cfg.ami, lambda raw, now: None)
    client.start()
    try:
        await client.wait_connected(3)
        with pytest.raises(AmiActionError):
            await client.action("Originate", {"CallerID": "x\r\nAction: Logoff"})
        assert all(a.get("Action") != "Logoff" for a in ami.actions)
        with pytest.raises(AmiError, match="Invalid/unknown command"):
            await client.command("QueueUnpause", {"Queue": "support"})
        resp = await client.command("Ping")
        assert resp.get("Ping") == "Pong"
    finally:
        await client.stop()


def test_backoff_grows_with_jitter() -> None:
    cfg = load(None, {"CCD_AMI_BACKOFF_INITIAL": "1", "CCD_AMI_BACKOFF_MAX": "30"})
    c = AmiClient(cfg.ami, lambda raw, now: None)
    samples = [[c._backoff(a) for _ in range(50)] for a in range(8)]
    assert all(0.5 <= x <= 1.0 for x in samples[0])
    assert all(15 <= x <= 30 for x in samples[7])
    assert len({round(x, 6) for x in samples[3]}) > 10  # jittered, not a fixed schedule


async def test_prometheus_metrics(tmp_path: Path, ami) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = make_config(tmp_path, ami.port)
    cfg.metrics.port = port
    d = Daemon(cfg)
    await d.start()
    try:
        await until(lambda: d.client.connected and d.metrics is not None
                    and d.metrics.snapshot, timeout=5)
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
            .read().decode())
        assert "ccd_ami_connected 1.0" in body
        assert "ccd_calls_in_progress 0.0" in body
        assert "ccd_ami_bad_timestamps_total 0.0" in body
    finally:
        await d.stop()


async def test_reset_right_after_connect_fails_the_login_at_once() -> None:
    """Asterisk (or a proxy) accepts the TCP connection and resets it at once: the reader
    sees ConnectionResetError, which must end the login attempt now (not after
    connect_timeout) and be retrieved (no 'Task exception was never retrieved')."""
    import gc
    import socket
    import struct

    accepted = 0

    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN

    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, object]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: unretrieved.append(ctx))
    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # a login that waited for its timeout would take 60 s per attempt
    cfg = load(None, {"CCD_AMI_PORT": str(port), "CCD_AMI_CONNECT_TIMEOUT": "60",
                      "CCD_AMI_BACKOFF_INITIAL": "0.05", "CCD_AMI_BACKOFF_MAX": "0.1"})
    client = AmiClient(cfg.ami, lambda raw, now: None)
    client.start()
    try:
        await until(lambda: accepted >= 3, timeout=20)
        assert not client.connected
        assert "ConnectionResetError" in client.stats.last_error
    finally:
        await client.stop()
        server.close()
        await server.wait_closed()
        gc.collect()
        await asyncio.sleep(0)
        loop.set_exception_handler(old)
    assert not [c for c in unretrieved if isinstance(c.get("exception"), ConnectionError)], \
        unretrieved


async def test_hostile_timestamps_over_the_link_are_replaced_and_counted(daemon, ami) -> None:
    """One frame saying Timestamp: 0 (or -1, 1e300 ...) used to set an agent's state to
    1970 and make the statistics create a row per 15 minutes since then."""
    from ccd.model.stats import StatsCollector

    await until(lambda: daemon.client.connected and daemon.resyncs >= 1)
    rows = {"n": 0}

    class Counted(StatsCollector):
        def _agent_row(self, agent: str, start: float):  # type: ignore[no-untyped-def]
            rows["n"] += 1
            assert rows["n"] < 50_000, "the statistics loop ran away"
            return super()._agent_row(agent, start)

    stats = Counted()
    daemon.bus.subscribe("stats", stats.feed)
    now = time.time()
    member = dict(Queue="support", MemberName="Agent Alice", Interface="PJSIP/1001",
                  StateInterface="PJSIP/1001", Membership="dynamic", Penalty="0",
                  CallsTaken="0", LastCall="0", LastPause="0", LoginTime=str(int(now)),
                  InCall="0", Status="1", Ringinuse="0", Wrapuptime="0")
    frames = [
        ami.frame(Event="QueueMemberAdded", Privilege="agent,all", Timestamp=f"{now:.6f}",
                  **member, Paused="0", PausedReason=""),
        ami.frame(Event="QueueMemberPause", Privilege="agent,all", Timestamp="0",
                  **member, Paused="1", PausedReason="lunch"),
        ami.frame(Event="QueueMemberPause", Privilege="agent,all", Timestamp="1e300",
                  **member, Paused="0", PausedReason=""),
        ami.frame(Event="QueueMemberPause", Privilege="agent,all", Timestamp="-86400",
                  **member, Paused="1", PausedReason="break"),
        ami.frame(Event="QueueMemberPause", Privilege="agent,all",
                  Timestamp=f"{now - 40 * 86400:.6f}", **member, Paused="0", PausedReason=""),
    ]
    await ami.send(b"".join(frames))
    await until(lambda: daemon.status()["events"]["bad_timestamps"] == 4)
    alice = daemon.model.agents["PJSIP/1001"]
    assert alice.state == "available"
    assert abs(alice.since - now) < 3600  # the link's time, not 1970 or the year 10^292
    assert abs(daemon.model.last_ts - now) < 3600
    stats.close(daemon.model_now())
    assert rows["n"] <= 8  # four state changes, each within one or two intervals
    assert daemon.client.connected


async def test_resync_while_booting_waits_for_fully_booted(tmp_path: Path, ami, caplog) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="ccd")
    ami.booting = True  # the AMI port is open, app_queue is not loaded yet
    ami.queue_items = [{"Event": "QueueParams", "Queue": "support", "Strategy": "rrmemory",
                        "Calls": "0"}, MEMBER]
    d = Daemon(make_config(tmp_path, ami.port))
    got: list[DomainEvent] = []
    d.bus.subscribe("test", got.append)
    await d.start()
    try:
        await until(lambda: any("still booting" in r.getMessage() for r in caplog.records))
        assert d.client.connected and not d.client.booted and d.resyncs == 0
        await ami.finish_boot()
        await until(lambda: d.resyncs == 1)
        alice = d.model.agents["PJSIP/1001"]
        assert (alice.state, alice.reason) == ("paused", "lunch break")
        assert d.client.stats.connects == 1  # waited on the same link, no drop and retry
        assert [e.what for e in got if e.kind == "pbx"] == ["resynced", "booted"]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await d.stop()


async def test_resync_without_app_queue_keeps_the_link(daemon, ami, caplog) -> None:
    """Fully booted, and QueueStatus still unknown: app_queue is not loaded at all. The
    channels are resynchronised, the queues left as they are, the link kept."""
    import logging

    caplog.set_level(logging.INFO, logger="ccd")
    await until(lambda: daemon.client.connected and daemon.resyncs >= 1)
    ami.app_queue = False
    ami.channels = BRIDGED
    ami.drop()
    await until(lambda: daemon.resyncs >= 2 and "1795465198.23" in daemon.model.calls)
    assert daemon.client.stats.connects == 2
    assert any("is app_queue loaded" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
