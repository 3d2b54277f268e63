"""The FastAGI server and the simulator's FastAGI client, over real loopback sockets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ccd.agi.protocol import (
    AgiDeadChannel,
    AgiHangup,
    AgiInvalidCommand,
    AgiUsageError,
    parse_args,
)
from ccd.agi.session import AgiMediaError, AgiSession
from ccd.sim.agi_client import (
    FAILURE,
    HANGUP,
    NOTFOUND,
    SUCCESS,
    Barge,
    ScriptedChannel,
    run_fastagi,
)

CAPTURES = Path("/work/shared/asterisk-captures/agi")
if not CAPTURES.is_dir():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures" / "agi"


def url(srv, script: str = "ivr") -> str:
    return f"agi://127.0.0.1:{srv.port}/{script}"


async def capture_script(s: AgiSession) -> None:
    """The script that produced the captures (README: VERBOSE, CHANNEL STATUS, ...)."""
    await s.verbose(f"FastAGI ivr for {s.caller_id} on {s.channel}")
    await s.channel_status()
    await s.stream_file("hello-world")
    r = await s.get_data("beep", 4000, 1)
    choice = r.digits or "none"
    await s.set_variable("IVR_CHOICE", choice)
    await s.set_variable("CUSTOMER_ID", "C" + s.caller_id[-6:])
    await s.get_variable("CUSTOMER_ID")
    await s.get_full_variable("${CALLERID(all)} in ${CONTEXT}")
    await s.verbose(f"FastAGI done, choice={choice}")


def capture_exchange(path: Path) -> list[tuple[list[str], str]]:
    """(command argv, reply) pairs of a capture log, headers skipped."""
    pairs: list[tuple[list[str], str]] = []
    direction, body, in_headers, cmd = "", "", True, None
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith("# "):
            if line.startswith("# t="):
                direction = line.split()[2]
            continue
        if in_headers:
            in_headers = line != "\n"
            continue
        body = line.rstrip("\n")
        if direction == "sent":
            cmd = parse_args(body)
        elif direction == "recv" and cmd is not None:
            pairs.append((cmd, body))
            cmd = None
    return pairs


@pytest.mark.parametrize("capture,inputs", [
    ("scenario01-*.log", [""]),   # no digit: 200 result= (timeout)
    ("scenario08-*0009-*.log", None),  # a burst caller who pressed a digit
])
async def test_replies_match_the_real_asterisk_transcripts(serve, capture, inputs) -> None:
    path = next(CAPTURES.glob(capture))
    want = capture_exchange(path)
    if inputs is None:  # the digit this caller pressed, read from the capture
        inputs = [next(r.split("=")[1] for c, r in want if c[:2] == ["GET", "DATA"])]
    header = path.read_text().split("\n", 1)[0]
    chan_name = header.split("channel=")[1]
    uniqueid = path.stem.split("-")[-1]
    from ccd.agi.protocol import parse_env
    block = "".join(line for line in path.read_text().splitlines(keepends=True)
                    if not line.startswith("# ")).split("\n\n")[0] + "\n\n"
    env = parse_env(block.encode())
    ch = ScriptedChannel(inputs, callerid=env["agi_callerid"],
                         calleridname=env["agi_calleridname"], name=chan_name,
                         uniqueid=uniqueid)
    srv = await serve({"ivr": capture_script})
    assert await run_fastagi(url(srv), ch) == SUCCESS
    got = [(parse_args(c), r) for c, r in ch.commands]
    assert got == want


async def test_client_sends_headers_exactly_like_asterisk(serve) -> None:
    seen: list[dict[str, str]] = []

    async def handler(s: AgiSession) -> None:
        seen.append(s.env)

    srv = await serve({"ivr": handler})
    ch = ScriptedChannel(uniqueid="1795465016.0")
    await run_fastagi(url(srv), ch)
    path = next(CAPTURES.glob("scenario01-*.log"))
    from ccd.agi.protocol import parse_env
    block = "".join(line for line in path.read_text().splitlines(keepends=True)
                    if not line.startswith("# ")).split("\n\n")[0] + "\n\n"
    want = parse_env(block.encode())
    want["agi_request"] = url(srv)
    assert list(seen[0]) == list(want)
    assert seen[0] == want


async def test_typed_commands(serve) -> None:
    out: dict[str, object] = {}

    async def handler(s: AgiSession) -> None:
        await s.answer()
        out["status"] = await s.channel_status()
        out["other"] = await s.channel_status("PJSIP/9999-00000001")
        out["play"] = await s.stream_file("hello-world")
        out["barge"] = await s.stream_file("hello-world", "123")
        out["data"] = await s.get_data("beep", 3000, 4)
        out["hash"] = await s.get_data("beep", 3000, 10)
        out["digit"] = await s.wait_for_digit(2000)
        out["say"] = await s.say_digits("123")
        out["num"] = await s.say_number(42)
        await s.set_variable("NAME", 'Zhang "San" \\ 张三')
        out["var"] = await s.get_variable("NAME")
        out["unset"] = await s.get_variable("NOPE")
        out["full"] = await s.get_full_variable("${CALLERID(num)}/${NAME}")
        out["exec"] = await s.exec("Playback", "tt-monkeys")
        out["rec"] = await s.record_file("/tmp/x", "wav", "#", 5000, beep=True, silence=2)
        await s.verbose("bye", 3)
        await s.goto("ccd-fallback", "s", 1)

    srv = await serve({"ivr": handler})
    ch = ScriptedChannel([Barge("2"), "12", "34#", "7"])
    assert await run_fastagi(url(srv), ch) == SUCCESS
    assert out["status"] == 6 and out["other"] is None
    assert out["play"].digit is None and out["play"].endpos == 11360
    assert out["barge"].digit == "2"
    assert out["data"].digits == "12" and out["data"].timed_out
    assert out["hash"].digits == "34" and not out["hash"].timed_out
    assert out["digit"] == "7"
    assert out["say"].digit is None and out["num"].digit is None
    assert out["var"] == 'Zhang "San" \\ 张三'
    assert ch.variables["NAME"] == 'Zhang "San" \\ 张三'
    assert out["unset"] is None
    assert out["full"] == '5557770001/Zhang "San" \\ 张三'
    assert out["exec"] == 0
    assert out["rec"].digit == "#" and out["rec"].reason == "dtmf" and out["rec"].endpos == 24000
    cmds = [c for c, _ in ch.commands]
    assert cmds[-3:] == ["SET CONTEXT ccd-fallback", "SET EXTENSION s", "SET PRIORITY 1"]
    assert "RECORD FILE /tmp/x wav # 5000 BEEP s=2" in cmds


async def test_invalid_command_usage_error_and_missing_sound(serve) -> None:
    errors: list[BaseException] = []

    async def handler(s: AgiSession) -> None:
        for words in (("FOO", "BAR"), ("GET", "VARIABLE"), ("SAY", "NUMBER", "abc", '""')):
            try:
                await s.command(*words)
            except (AgiInvalidCommand, AgiUsageError) as exc:
                errors.append(exc)
        try:
            await s.stream_file("no-such-sound")
        except AgiMediaError as exc:
            errors.append(exc)
        await s.set_variable("STILL", "ok")  # the session is still in step

    srv = await serve({"ivr": handler})
    ch = ScriptedChannel(missing=frozenset({"no-such-sound"}))
    # a sound that does not exist makes AGISTATUS=FAILURE, as res_agi.c does
    assert await run_fastagi(url(srv), ch) == FAILURE
    assert [type(e) for e in errors] == [AgiInvalidCommand, AgiUsageError, AgiUsageError,
                                        AgiMediaError]
    assert errors[0].reply.raw == "510 Invalid or unknown command"
    assert "GET VARIABLE <variablename>" in errors[1].usage
    replies = dict(ch.commands)
    assert replies["GET VARIABLE"] == "520 End of proper usage."  # the block's final line
    assert replies['STREAM FILE no-such-sound ""'] == "200 result=-1 endpos=0"
    assert ch.variables["STILL"] == "ok"


async def test_caller_hangup_between_commands_is_noticed(serve) -> None:
    """Asterisk sends HANGUP when the channel goes away while the script is busy."""
    seen: dict[str, object] = {}
    ch = ScriptedChannel()

    async def handler(s: AgiSession) -> None:
        await s.verbose("start")
        ch._hung_up = True  # the caller hangs up while the handler does something slow
        await asyncio.sleep(0.3)
        await s.set_variable("CCD_IVR_PATH", "x")  # allowed on a dead channel
        seen["after_set"] = s.hung_up
        try:
            await s.stream_file("hello-world")
        except AgiDeadChannel as exc:
            seen["dead"] = exc

    srv = await serve({"ivr": handler})
    assert await run_fastagi(url(srv), ch) == HANGUP
    assert seen["after_set"] is True
    assert isinstance(seen["dead"], AgiDeadChannel)
    assert ch.variables["CCD_IVR_PATH"] == "x"
    assert ch.commands[-1][1] == "511 Command Not Permitted on a dead channel or intercept routine"
    assert srv.stats.hangups == 1 and srv.stats.failed == 0


async def test_caller_hangup_during_get_data_raises_hangup(serve) -> None:
    seen: list[BaseException] = []

    async def handler(s: AgiSession) -> None:
        try:
            await s.get_data("main-menu", 5000, 1)
        except AgiHangup as exc:
            seen.append(exc)
            raise

    srv = await serve({"ivr": handler})
    ch = ScriptedChannel(["<hangup>"])
    assert await run_fastagi(url(srv), ch) == HANGUP
    assert isinstance(seen[0], AgiHangup)
    assert ch.commands[0][1] == "200 result=-1"


async def test_failing_handler_sends_the_caller_to_the_fallback(serve, caplog) -> None:
    async def broken(s: AgiSession) -> None:
        await s.verbose("about to fail")
        raise ZeroDivisionError("boom\nsecond line")

    srv = await serve({"ivr": broken})
    ch = ScriptedChannel(uniqueid="1795465099.7")
    assert await run_fastagi(url(srv), ch) == SUCCESS
    assert ch.variables["CCD_AGI_ERROR"] == "ZeroDivisionError: boom second line"
    assert [c for c, _ in ch.commands][-3:] == \
        ["SET CONTEXT ccd-fallback", "SET EXTENSION s", "SET PRIORITY 1"]
    assert srv.stats.failed == 1 and srv.stats.fallbacks == 1
    assert any("1795465099.7" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_a_failing_survey_does_not_requeue_the_caller(serve) -> None:
    async def broken(s: AgiSession) -> None:
        raise RuntimeError("survey store down")

    srv = await serve({})
    srv.route("survey", broken, fallback=False)
    ch = ScriptedChannel()
    assert await run_fastagi(url(srv, "survey"), ch) == SUCCESS
    assert ch.variables["CCD_AGI_ERROR"] == "RuntimeError: survey store down"
    assert not any(c.startswith("SET CONTEXT") for c, _ in ch.commands)  # dialplan goes on
    assert srv.stats.failed == 1 and srv.stats.fallbacks == 0


async def test_unknown_script_goes_to_the_fallback_too(serve) -> None:
    srv = await serve({"ivr": capture_script})
    ch = ScriptedChannel()
    assert await run_fastagi(url(srv, "nosuch"), ch) == SUCCESS
    assert ch.variables["CCD_AGI_ERROR"].startswith("LookupError: no AGI handler")
    assert ch.commands[-1][0] == "SET PRIORITY 1"


async def test_routes_by_path_prefix(serve) -> None:
    got: list[tuple[str, list[str]]] = []

    async def h(s: AgiSession) -> None:
        got.append((s.route, s.route_args))

    srv = await serve({"ivr": h, "survey": h})
    await run_fastagi(url(srv, "ivr/support"), ScriptedChannel())
    await run_fastagi(url(srv, "survey"), ScriptedChannel())
    assert got == [("ivr", ["support"]), ("survey", [])]


async def test_agistatus_values() -> None:
    assert await run_fastagi("http://127.0.0.1/ivr", ScriptedChannel()) == NOTFOUND
    # a port nobody listens on: Asterisk says FAILURE
    sock = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = sock.sockets[0].getsockname()[1]
    sock.close()
    await sock.wait_closed()
    assert await run_fastagi(f"agi://127.0.0.1:{port}/ivr", ScriptedChannel(),
                             connect_timeout=1) == FAILURE


def _cpu() -> float:
    t = time.process_time()
    return t


# on virtual time a server that spins never lets the clock reach header_timeout: the test
# then fails on this (real-time) limit instead of passing
@pytest.mark.timeout(60)
async def test_garbage_stalled_and_truncated_clients_cost_only_their_connection(serve) -> None:
    calls: list[str] = []

    async def handler(s: AgiSession) -> None:
        calls.append(s.uniqueid)
        await s.verbose("hi")

    srv = await serve({"ivr": handler}, header_timeout=0.5)

    async def raw(data: bytes, close: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        r, w = await asyncio.open_connection("127.0.0.1", srv.port)
        w.write(data)
        await w.drain()
        if close:
            w.close()
        return r, w

    # garbage with a blank line, garbage without one (too long), half a header then close
    await raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\n\n", close=False)
    await raw(b"x" * 70000, close=False)
    await raw(b"agi_network: yes\nagi_channel: PJSIP/1", close=True)
    stalled = [await raw(b"agi_network: yes\n", close=False) for _ in range(20)]
    cpu0 = _cpu()
    # the server keeps serving real sessions meanwhile
    for _ in range(5):
        assert await run_fastagi(url(srv), ScriptedChannel()) == SUCCESS
    await asyncio.sleep(1.0)  # stalled clients hit header_timeout; nothing may spin
    used = _cpu() - cpu0
    assert used < 0.5, f"{used:.2f} s of CPU while clients stalled"
    assert len(calls) == 5
    for r, _ in stalled:  # the server closed them
        assert await asyncio.wait_for(r.read(), 1.0) == b""
    assert srv.stats.rejected == 23
    assert srv.stats.active == 0
    assert srv.stats.completed == 5


async def test_closing_with_sessions_running_logs_no_error(serve, caplog) -> None:
    """Stopping ccd (Ctrl-C in `make run`) while callers are in the IVR ends their sessions
    quietly: no asyncio "Exception in callback" tracebacks."""
    started = asyncio.Event()

    async def handler(s: AgiSession) -> None:
        started.set()
        await s.get_data("beep", 60000, 4)  # the caller never presses anything

    srv = await serve({"ivr": handler})
    caller = asyncio.create_task(run_fastagi(url(srv), ScriptedChannel()))
    await asyncio.wait_for(started.wait(), 5)
    await srv.close()
    await asyncio.sleep(0.1)  # the server's done-callbacks run
    caller.cancel()
    await asyncio.gather(caller, return_exceptions=True)
    assert srv.stats.active == 0
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


async def test_many_concurrent_sessions(serve) -> None:
    async def handler(s: AgiSession) -> None:
        r = await s.get_data("beep", 1000, 1)
        await s.set_variable("IVR_CHOICE", r.digits or "none")

    srv = await serve({"ivr": handler})
    chans = [ScriptedChannel([str(i % 10)], uniqueid=f"1.{i}", delay=0.01) for i in range(300)]
    results = await asyncio.gather(*(run_fastagi(url(srv), c) for c in chans))
    assert results == [SUCCESS] * 300
    assert [c.variables["IVR_CHOICE"] for c in chans] == [str(i % 10) for i in range(300)]
    assert srv.stats.active == 0
