"""The simulator's AMI over real TCP: banner, login, errors worded like Asterisk 22, every
action, and the stream decoded by ccd's own parser."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator

import pytest
from sim_support import CAPTURE_CONFIG, EPOCH, AmiTestClient

from ccd.ami.events import decode
from ccd.ami.parser import FrameSplitter, parse_frame
from ccd.sim.phones import PhoneProfile
from ccd.sim.simulator import SimOptions, Simulator

SCALE = 25.0
PHONES = {"1003": PhoneProfile(answer="never"), "1005": PhoneProfile(registered=False)}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    opts = SimOptions(
        config_dir=CAPTURE_CONFIG,
        ami_port=0,
        time_scale=SCALE,
        start_time=EPOCH,
        phones=PHONES,
        agi="127.0.0.1:1",
        auth_fail_delay=0.0,
    )
    async with Simulator(opts) as s:
        yield s


@pytest.fixture
async def ami(sim: Simulator) -> AsyncIterator[AmiTestClient]:
    client = await AmiTestClient.connect("127.0.0.1", sim.ami_port)
    resp = await client.login()
    assert resp.get("Response") == "Success"
    yield client
    await client.close()


async def _raw(port: int, data: bytes, wait: float = 0.3) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), wait)
            if not chunk:
                break
            out += chunk
    except TimeoutError:
        pass
    writer.close()
    return out


# --------------------------------------------------------------------------- session


async def test_banner_is_the_first_line(sim: Simulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
    banner = await asyncio.wait_for(reader.readuntil(b"\r\n"), 2)
    assert banner == b"Asterisk Call Manager/11.0.0\r\n"
    writer.close()


async def test_login_ok_sends_fully_booted(sim: Simulator) -> None:
    data = await _raw(
        sim.ami_port, b"Action: Login\r\nUsername: ccd\r\nSecret: ccdsecret\r\nActionID: a1\r\n\r\n"
    )
    assert data.startswith(
        b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: a1"
        b"\r\nMessage: Authentication accepted\r\n\r\n"
    )
    assert b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: " in data
    assert b"Status: Fully Booted\r\n" in data


async def test_wrong_secret_is_refused_and_closed(sim: Simulator) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.ami_port)
    writer.write(b"Action: Login\r\nUsername: ccd\r\nSecret: nope\r\nActionID: x\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 3)  # until the server closes
    assert data.endswith(
        b"Response: Error\r\nActionID: x\r\nMessage: Authentication failed\r\n\r\n"
    )
    writer.close()


async def test_unknown_user_is_refused(sim: Simulator) -> None:
    data = await _raw(sim.ami_port, b"Action: Login\r\nUsername: who\r\nSecret: x\r\n\r\n")
    assert b"Message: Authentication failed" in data


async def test_md5_challenge_login(sim: Simulator) -> None:
    client = await AmiTestClient.connect("127.0.0.1", sim.ami_port)
    ch = await client.action("Challenge", AuthType="md5")
    key = hashlib.md5((ch.get("Challenge") + "ccdsecret").encode()).hexdigest()
    resp = await client.action("Login", AuthType="md5", Username="ccd", Key=key)
    assert resp.get("Message") == "Authentication accepted"
    await client.close()


async def test_actions_before_login_are_denied(sim: Simulator) -> None:
    data = await _raw(sim.ami_port, b"Action: Ping\r\nActionID: p\r\n\r\n")
    assert b"Response: Error\r\nActionID: p\r\nMessage: Permission denied\r\n\r\n" in data


async def test_unknown_and_missing_action(ami: AmiTestClient) -> None:
    resp = await ami.action("QueueUnpause", Queue="support", Interface="PJSIP/1004")
    assert resp.get("Response") == "Error"
    assert resp.get("Message") == (
        "Invalid/unknown command: QueueUnpause. Use Action: "
        "ListCommands to show available commands."
    )
    bad = await ami.wait_for(lambda f: f.event == "RequestBadFormat")
    assert bad.get("RequestType") == "Action: QueueUnpause"
    ami.writer.write(b"ActionID: m1\r\nFoo: bar\r\n\r\n")
    missing = await ami.wait_for(lambda f: f.get("ActionID") == "m1")
    assert missing.get("Message") == "Missing action in request"


async def test_logoff_says_goodbye_and_closes(sim: Simulator) -> None:
    client = await AmiTestClient.connect("127.0.0.1", sim.ami_port)
    await client.login()
    resp = await client.action("Logoff")
    assert (resp.get("Response"), resp.get("Message")) == ("Goodbye", "Thanks for all the fish.")
    await asyncio.wait_for(client.closed.wait(), 2)


async def test_events_off_and_on(sim: Simulator) -> None:
    client = await AmiTestClient.connect("127.0.0.1", sim.ami_port)
    await client.login(events="off")
    sim.call("2000", "5551000")
    await asyncio.sleep(0.1)
    assert client.events() == []
    resp = await client.action("Events", EventMask="call")
    assert resp.get("Events") == "On"
    sim.call("2000", "5551000")
    ev = await client.wait_for(lambda f: f.event == "Newchannel")
    assert ev.get("Privilege") == "call,all"
    assert not [f for f in client.events() if f.get("Privilege", "").startswith("dialplan")]
    await client.close()


async def test_ping_and_timestamps(ami: AmiTestClient, sim: Simulator) -> None:
    pong = await ami.action("Ping")
    assert pong.get("Ping") == "Pong"
    assert float(pong.get("Timestamp")) > 1e9
    sim.call("2000", "5551000")
    ev = await ami.wait_for(lambda f: f.event == "Newchannel")
    assert list(ev.fields)[:3] == ["Event", "Privilege", "Timestamp"]


async def test_stream_decodes_with_ccd_parser(sim: Simulator, ami: AmiTestClient) -> None:
    call = sim.call("2000", "5551000")
    await ami.wait_for(lambda f: f.event == "BridgeEnter" and f.get("Channel") == call.name, 5)
    sim.phone("2000").hangup(call)
    await ami.wait_for(lambda f: f.event == "Hangup" and f.get("Channel") == call.name, 5)
    splitter = FrameSplitter()
    frames = splitter.feed(bytes(ami.data))
    assert splitter.pending == 0
    assert frames[0] == b"Asterisk Call Manager/11.0.0"
    typed = [decode(raw) for raw in frames[1:]]
    names = [e.name for e in typed if e is not None]
    assert names[0] == "FullyBooted"
    assert {"Newchannel", "Newexten", "Hangup"} <= set(names)
    for raw in frames[1:]:
        assert parse_frame(raw)


# --------------------------------------------------------------------------- channels


async def _bridged(sim: Simulator, ami: AmiTestClient, exten: str = "5551000") -> tuple[str, str]:
    """Place a call and wait until an agent talks to it: (caller, agent) channel names.

    No FastAGI server in these tests: AGI fails fast (AGISTATUS=FAILURE) and the captures'
    dialplan goes on to the queue anyway."""
    call = sim.call("2000", exten)
    connect = await ami.wait_for(
        lambda f: f.event == "AgentConnect" and f.get("Channel") == call.name, 5
    )
    await ami.wait_for(lambda f: f.event == "BridgeEnter" and f.get("Channel") == call.name, 5)
    return call.name, connect.get("DestChannel")


async def test_core_show_channels_and_status(sim: Simulator, ami: AmiTestClient) -> None:
    resp, items = await ami.collect("CoreShowChannels", "CoreShowChannelsComplete")
    assert (resp.get("EventList"), resp.get("Message")) == ("start", "Channels will follow")
    assert items[-1].get("ListItems") == "0"
    caller, agent = await _bridged(sim, ami)
    _, items = await ami.collect("CoreShowChannels", "CoreShowChannelsComplete")
    listed = {f.get("Channel"): f for f in items if f.event == "CoreShowChannel"}
    assert set(listed) == {caller, agent}
    assert listed[caller].get("Application") == "Queue"
    assert listed[agent].get("Application") == "AppQueue"
    assert listed[caller].get("BridgeId") == listed[agent].get("BridgeId") != ""
    assert list(items[0].fields)[:2] == ["Event", "ActionID"]
    await ami.action("Setvar", Channel=caller, Variable="CCD_NOTE", Value="vip")
    resp, items = await ami.collect(
        "Status", "StatusComplete", Channel=caller, Variables="CCD_NOTE,QUEUENAME"
    )
    status = items[0]
    assert status.get("Privilege") == "Call"
    assert status.get("Variable").split("\n") == ["CCD_NOTE=vip", "QUEUENAME=support"]
    assert items[-1].get("Items") == "1"
    got = await ami.action("Getvar", Channel=caller, Variable="CCD_NOTE")
    assert (got.get("Variable"), got.get("Value")) == ("CCD_NOTE", "vip")
    got = await ami.action("Getvar", Channel=caller, Variable="CALLERID(num)")
    assert got.get("Value") == "5557770001"
    for action, fields, message in [
        ("Status", {"Channel": "PJSIP/nope-1"}, "No such channel"),
        ("Getvar", {"Channel": "PJSIP/nope-1", "Variable": "X"}, "No such channel"),
        ("Getvar", {"Channel": caller}, "No variable specified"),
        ("Setvar", {"Channel": caller}, "No variable specified"),
        ("Hangup", {}, "No channel specified"),
        ("Hangup", {"Channel": "PJSIP/nope-1"}, "No such channel"),
    ]:
        resp = await ami.action(action, **fields)
        assert (resp.get("Response"), resp.get("Message")) == ("Error", message), action
    status = await ami.action("CoreStatus")
    assert status.get("CoreCurrentCalls") == "1"
    resp = await ami.action("Hangup", Channel=caller)
    assert resp.get("Message") == "Channel Hungup"
    complete = await ami.wait_for(lambda f: f.event == "AgentComplete")
    assert complete.get("Reason") == "caller"


async def test_redirect_and_transfer_errors(sim: Simulator, ami: AmiTestClient) -> None:
    cases = [
        ("Redirect", {}, "Channel not specified"),
        ("Redirect", {"Channel": "x"}, "Context not specified"),
        ("Redirect", {"Channel": "x", "Context": "agents"}, "Exten not specified"),
        (
            "Redirect",
            {"Channel": "x", "Context": "agents", "Exten": "3000"},
            "Priority not specified",
        ),
        (
            "Redirect",
            {"Channel": "x", "Context": "agents", "Exten": "3000", "Priority": "zz"},
            "Priority is invalid",
        ),
        (
            "Redirect",
            {"Channel": "PJSIP/x-1", "Context": "agents", "Exten": "3000", "Priority": "1"},
            "Channel does not exist: PJSIP/x-1",
        ),
        ("BlindTransfer", {}, "No channel specified"),
        ("BlindTransfer", {"Channel": "x"}, "No extension specified"),
        ("BlindTransfer", {"Channel": "x", "Exten": "1004"}, "Channel specified does not exist"),
        ("Atxfer", {"Channel": "x"}, "No extension specified"),
        ("Atxfer", {"Channel": "x", "Exten": "1004"}, "Channel specified does not exist"),
        ("Originate", {}, "Channel not specified"),
        ("Originate", {"Channel": "nodash"}, "Invalid channel"),
        ("Originate", {"Channel": "PJSIP/2000", "Timeout": "soon"}, "Invalid timeout"),
    ]
    for action, fields, message in cases:
        resp = await ami.action(action, **fields)
        assert (resp.get("Response"), resp.get("Message")) == ("Error", message), (action, fields)


async def test_originate_reasons(sim: Simulator, ami: AmiTestClient) -> None:
    async def reason(**fields: str) -> dict[str, str]:
        resp = await ami.action("Originate", Async="true", **fields)
        assert resp.get("Message") == "Originate successfully queued"
        ev = await ami.wait_for(
            lambda f: f.event == "OriginateResponse" and f.get("ActionID") == resp.get("ActionID"),
            5,
        )
        return ev.fields

    ok = await reason(
        Channel="PJSIP/2000",
        Context="outbound-msg",
        Exten="s",
        Priority="1",
        CallerID='"Support Line" <5551000>',
        Variable="CAMPAIGN_ID=7",
    )
    assert (ok["Response"], ok["Reason"], ok["CallerIDNum"]) == ("Success", "4", "5551000")
    assert ok["Channel"].startswith("PJSIP/2000-")
    for channel, code in (("PJSIP/1005", "0"), ("PJSIP/9999", "0")):
        bad = await reason(Channel=channel, Context="outbound-msg", Exten="s", Priority="1")
        assert (bad["Response"], bad["Reason"], bad["Uniqueid"]) == ("Failure", code, "<unknown>")
    busy = await reason(
        Channel="Local/s@test-busy", Application="Playback", Data="x", Timeout="4000"
    )
    assert (busy["Response"], busy["Reason"]) == ("Failure", "5")
    # a SIP phone that refuses (486, 503) is hung up by chan_pjsip, not a busy indication:
    # Reason 0, as the real capture F7 shows for a busy number (Busy() behind Local is 5)
    sim.phone("1002").profile.answer = "busy"
    busy2 = await reason(Channel="PJSIP/1002", Context="outbound-msg", Exten="s")
    assert busy2["Reason"] == "0"
    sim.phone("1002").profile.answer = "congestion"
    congested = await reason(Channel="PJSIP/1002", Context="outbound-msg", Exten="s")
    assert (congested["Response"], congested["Reason"]) == ("Failure", "0")
    noanswer = await reason(Channel="PJSIP/1003", Context="outbound-msg", Exten="s", Timeout="2000")
    assert (noanswer["Response"], noanswer["Reason"]) == ("Failure", "3")
    hang = await ami.wait_for(
        lambda f: f.event == "Hangup" and f.get("Channel").startswith("PJSIP/1003"), 5
    )
    assert hang.get("Cause") == "19"
    resp = await ami.action("Originate", Channel="PJSIP/1005", Context="outbound-msg", Exten="s")
    assert (resp.get("Response"), resp.get("Message")) == ("Error", "Originate failed")
    resp = await ami.action(
        "Originate", Channel="PJSIP/2000", Application="Playback", Data="demo-thanks"
    )
    assert resp.get("Message") == "Originate successfully queued"


async def test_recording_actions(sim: Simulator, ami: AmiTestClient, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sim.engine.settings.recording_root = tmp_path
    caller, _ = await _bridged(sim, ami)
    resp = await ami.action("MixMonitor", Channel=caller, File="/rec/test.wav", Options="b")
    assert resp.get("Response") == "Success" and resp.get("MixMonitorID")
    mute = await ami.action("MixMonitorMute", Channel=caller, Direction="both", State="1")
    assert mute.get("Response") == "Success"
    ev = await ami.wait_for(lambda f: f.event == "MixMonitorMute")
    assert (ev.get("Direction"), ev.get("State")) == ("both", "1")
    bad = await ami.action("MixMonitorMute", Channel=caller, Direction="up", State="1")
    assert bad.get("Message") == "Invalid direction specified. Must be read, write or both"
    stop = await ami.action("StopMixMonitor", Channel=caller)
    assert stop.get("Response") == "Success"
    await ami.wait_for(lambda f: f.event == "MixMonitorStop")
    assert (tmp_path / "rec/test.wav").stat().st_size >= 44
    again = await ami.action("StopMixMonitor", Channel=caller)
    assert again.get("Message") == "Could not stop monitoring channel"


async def test_hold_via_pjsip_notify(sim: Simulator, ami: AmiTestClient) -> None:
    """A phone that obeys remote control holds; one that does not (baresip: 481, real-2/T10)
    does nothing, while Asterisk has answered "NOTIFY sent" all the same."""
    caller, agent = await _bridged(sim, ami)
    endpoint = agent.split("/")[1].split("-")[0]
    resp = await ami.action("PJSIPNotify", Endpoint=endpoint, Variable="Event=hold")
    assert resp.get("Message") == "NOTIFY sent"
    with pytest.raises(TimeoutError):
        await ami.wait_for(lambda f: f.event == "Hold", timeout=0.5)
    sim.engine.phones.get(endpoint).profile.remote_control = True
    resp = await ami.action("PJSIPNotify", Endpoint=endpoint, Variable="Event=hold")
    assert resp.get("Message") == "NOTIFY sent"
    hold = await ami.wait_for(lambda f: f.event == "Hold")
    moh = await ami.wait_for(lambda f: f.event == "MusicOnHoldStart")
    assert (hold.get("Channel"), moh.get("Channel")) == (agent, caller)
    await ami.action("PJSIPNotify", Endpoint=endpoint, Variable="Event=talk")
    assert (await ami.wait_for(lambda f: f.event == "Unhold")).get("Channel") == agent
    resp = await ami.action("PJSIPNotify", Endpoint="nobody", Variable="Event=hold")
    assert resp.get("Message") == "Unable to retrieve endpoint nobody"


async def test_chanspy_through_originate(sim: Simulator, ami: AmiTestClient) -> None:
    _, agent = await _bridged(sim, ami)
    sim.phone("1004").profile.answer = "auto"
    resp = await ami.action(
        "Originate", Channel="PJSIP/1004", Application="ChanSpy", Data=f"{agent},qE", Async="true"
    )
    assert resp.get("Response") == "Success"
    start = await ami.wait_for(lambda f: f.event == "ChanSpyStart", 5)
    assert start.get("SpyeeChannel") == agent
    assert start.get("SpyerChannel").startswith("PJSIP/1004-")
    await ami.action("Hangup", Channel=agent)
    stop = await ami.wait_for(lambda f: f.event == "ChanSpyStop", 5)
    assert stop.get("SpyerChannel") == start.get("SpyerChannel")


async def test_queue_actions(sim: Simulator, ami: AmiTestClient) -> None:
    resp, items = await ami.collect("QueueSummary", "QueueSummaryComplete")
    assert [f.get("Queue") for f in items[:-1]] == ["overflow", "support", "escalation"]
    assert list(items[0].fields)[-1] == "ActionID"
    add = await ami.action(
        "QueueAdd", Queue="support", Interface="PJSIP/1004", MemberName="Agent Dana", Penalty="1"
    )
    assert add.get("Message") == "Added interface to queue"
    added = await ami.wait_for(lambda f: f.event == "QueueMemberAdded")
    assert (added.get("Membership"), added.get("Penalty")) == ("dynamic", "1")
    _, items = await ami.collect("QueueStatus", "QueueStatusComplete", Queue="support")
    assert [f.get("Name") for f in items if f.event == "QueueMember"] == [
        "Agent Dana",
        "Agent Alice",
        "Agent Bob",
    ]
    cases = [
        (
            "QueueAdd",
            {"Queue": "support", "Interface": "PJSIP/1004"},
            "Unable to add interface: Already there",
        ),
        (
            "QueueAdd",
            {"Queue": "nosuch", "Interface": "PJSIP/1004"},
            "Unable to add interface to queue: No such queue",
        ),
        ("QueueRemove", {"Queue": "support", "Interface": "PJSIP/1001"}, "Member not dynamic"),
        ("QueuePause", {"Interface": "PJSIP/1005", "Paused": "true"}, "Interface not found"),
        ("QueuePause", {"Paused": "true"}, "Need 'Interface' and 'Paused' parameters."),
        ("QueuePenalty", {"Interface": "PJSIP/1001"}, "Need 'Interface' and 'Penalty' parameters."),
        ("QueueLog", {"Queue": "support"}, "Need 'Event' and 'Queue' parameters."),
    ]
    for action, fields, message in cases:
        resp = await ami.action(action, **fields)
        assert (resp.get("Response"), resp.get("Message")) == ("Error", message), action
    pause = await ami.action("QueuePause", Interface="PJSIP/1001", Paused="true", Reason="training")
    assert pause.get("Message") == "Interface paused successfully"
    paused = [
        await ami.wait_for(lambda f, q=q: f.event == "QueueMemberPause" and f.get("Queue") == q)
        for q in ("support", "escalation")
    ]
    assert {f.get("PausedReason") for f in paused} == {"training"}
    pen = await ami.action("QueuePenalty", Queue="support", Interface="PJSIP/1004", Penalty="3")
    assert pen.get("Message") == "Interface penalty set successfully"
    ring = await ami.action(
        "QueueMemberRingInUse", Queue="support", Interface="PJSIP/1004", RingInUse="no"
    )
    assert ring.get("Message") == "Interface ringinuse set successfully"
    log = await ami.action("QueueLog", Queue="support", Event="NOTE")
    assert log.get("Message") == "Event added successfully"
    rem = await ami.action("QueueRemove", Queue="support", Interface="PJSIP/1004")
    assert rem.get("Message") == "Removed interface from queue"
    rem = await ami.action("QueueRemove", Queue="support", Interface="PJSIP/1004")
    assert rem.get("Message") == "Unable to remove interface: Not there"
    cmd = await ami.action("Command", Command="queue show support")
    assert cmd.get("Message") == "Command output follows"
    assert (
        cmd.get("Output")
        .split("\n")[0]
        .startswith("support has 0 calls (max unlimited) in 'rrmemory' strategy")
    )
    nosuch = await ami.action("Command", Command="frobnicate")
    assert nosuch.get("Response") == "Error"


async def test_misc_actions(sim: Simulator, ami: AmiTestClient) -> None:
    resp = await ami.action("ListCommands")
    assert "QueueStatus" in resp.fields and "Originate" in resp.fields
    resp, items = await ami.collect("BridgeList", "BridgeListComplete")
    assert items[-1].get("ListItems") == "0"
    resp = await ami.action("UserEvent", UserEvent="CcdTest", Detail="x")
    assert resp.get("Message") == "Event Sent"
    ev = await ami.wait_for(lambda f: f.event == "UserEvent")
    assert (ev.get("UserEvent"), ev.get("Detail")) == ("CcdTest", "x")
    version = await ami.action("Command", Command="core show version")
    assert "22.10.1" in version.get("Output")


async def test_write_permissions_are_enforced(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for f in CAPTURE_CONFIG.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "manager.conf").write_text(
        "[general]\nenabled = yes\nport = 5038\nbindaddr = 127.0.0.1\ntimestampevents = no\n"
        "[ro]\nsecret = s\nread = call\nwrite = reporting\n"
    )
    async with Simulator(SimOptions(config_dir=tmp_path, ami_port=0, time_scale=SCALE)) as s:
        client = await AmiTestClient.connect("127.0.0.1", s.ami_port)
        await client.login("ro", "s")
        resp = await client.action("Originate", Channel="PJSIP/2000", Application="Playback")
        assert (resp.get("Response"), resp.get("Message")) == ("Error", "Permission denied")
        resp, _ = await client.collect("CoreShowChannels", "CoreShowChannelsComplete")
        assert resp.get("Response") == "Success"
        s.call("2000", "5551000")
        ev = await client.wait_for(lambda f: f.event == "Newchannel")
        assert "Timestamp" not in ev.fields
        assert not client.events("FullyBooted")  # system events are not in read=call
        await client.close()


async def test_header_lines_with_lf_only(sim: Simulator) -> None:
    data = await _raw(
        sim.ami_port,
        b"Action: Login\nUsername: ccd\nSecret: ccdsecret\n\nAction: Ping\nActionID: lf\n\n",
    )
    assert b"Ping: Pong" in data


def test_tcp_port_zero_binds_a_free_port() -> None:
    async def main() -> int:
        async with Simulator(SimOptions(config_dir=CAPTURE_CONFIG, ami_port=0)) as s:
            with socket.create_connection(("127.0.0.1", s.ami_port), timeout=2):
                return s.ami_port

    assert asyncio.run(main()) > 0


async def test_queue_entry_of_a_waiting_caller(sim: Simulator, ami: AmiTestClient) -> None:
    for iface in ("PJSIP/1001", "PJSIP/1002"):
        await ami.action("QueuePause", Queue="support", Interface=iface, Paused="true")
    call = sim.call("2000", "5551000")
    await ami.wait_for(lambda f: f.event == "QueueCallerJoin" and f.get("Channel") == call.name)
    await sim.clock.sleep(3)
    _, items = await ami.collect("QueueStatus", "QueueStatusComplete", Queue="support")
    entries = [f for f in items if f.event == "QueueEntry"]
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.get("Channel"), entry.get("Position"), entry.get("Uniqueid")) == (
        call.name,
        "1",
        call.uniqueid,
    )
    assert entry.get("Wait") == "3"  # the 3 simulated seconds since QueueCallerJoin
    params = items[0]
    assert (params.get("Calls"), params.get("Strategy")) == ("1", "rrmemory")
    _, summary = await ami.collect("QueueSummary", "QueueSummaryComplete", Queue="support")
    assert (summary[0].get("Callers"), summary[0].get("Available")) == ("1", "0")
    sim.phone("2000").hangup(call)
    abandon = await ami.wait_for(lambda f: f.event == "QueueCallerAbandon")
    assert abandon.get("Channel") == call.name
