"""The simulator's FastAGI client on the wire: raw bytes, as a FastAGI server sees them."""

from __future__ import annotations

import asyncio

from ccd.sim.agi_client import HANG_UP, HANGUP, SUCCESS, ScriptedChannel, run_fastagi


async def raw_session(channel: ScriptedChannel, script: list[bytes],
                      script_path: str = "ivr") -> tuple[str, bytes, list[bytes]]:
    """Serve one session that sends ``script`` lines; returns status, headers, replies."""
    replies: list[bytes] = []
    headers = b""

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal headers
        headers = await r.readuntil(b"\n\n")
        for line in script:
            w.write(line)
            await w.drain()
            out = b""
            while True:  # one reply: until a line that is not a 520-/100 continuation
                chunk = await r.readline()
                out += chunk
                in_usage = out.startswith(b"520-") and not chunk.startswith(b"520 ")
                if not chunk or not (chunk.startswith((b"520-", b"100 ", b"HANGUP"))
                                     or in_usage):
                    break
            replies.append(out)
        w.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        status = await run_fastagi(f"agi://127.0.0.1:{port}/{script_path}", channel)
    finally:
        srv.close()
        await srv.wait_closed()
    return status, headers, replies


async def test_exact_reply_bytes() -> None:
    ch = ScriptedChannel(["", "42"])
    status, headers, replies = await raw_session(ch, [
        b'STREAM FILE hello-world ""\n',
        b"GET DATA beep 4000 1\n",
        b"GET DATA beep 4000 5\n",
        b"get variable NOPE\n",
        b"SET VARIABLE A \"x y\"\n",
        b"GET VARIABLE A\n",
        b"GET FULL VARIABLE \"${CALLERID(all)} in ${CONTEXT}\"\n",
        b"CHANNEL STATUS\n",
        b"GET VARIABLE\n",
        b"BOGUS COMMAND\n",
        b"SAY NUMBER abc \"\"\n",
    ])
    assert status == SUCCESS
    assert headers.startswith(b"agi_network: yes\nagi_network_script: ivr\nagi_request: agi://")
    assert headers.endswith(b"agi_accountcode: \nagi_threadid: 140203790612160\n\n")
    assert replies == [
        b"200 result=0 endpos=11360\n",
        b"200 result= (timeout)\n",
        b"200 result=42 (timeout)\n",
        b"200 result=0\n",
        b"200 result=1\n",
        b"200 result=1 (x y)\n",
        b'200 result=1 ("Customer Carol" <5557770001> in from-trunk)\n',
        b"200 result=6\n",
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b"Usage: GET VARIABLE <variablename>\n520 End of proper usage.\n",
        b"510 Invalid or unknown command\n",
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b"Usage: SAY NUMBER <number> <escape digits> [gender]\n520 End of proper usage.\n",
    ]


async def test_hangup_during_a_command_then_dead_channel_rules() -> None:
    ch = ScriptedChannel([HANG_UP])
    status, _, replies = await raw_session(ch, [
        b"GET DATA main-menu 5000 1\n",
        b"SET VARIABLE CCD_IVR_PATH main\n",
        b"STREAM FILE goodbye \"\"\n",
        b"GET VARIABLE CCD_IVR_PATH\n",
    ])
    assert status == HANGUP
    assert replies == [
        b"200 result=-1\n",
        # then the notification (before the next reply, as res_agi.c's loop sends it);
        # SET VARIABLE is allowed on a dead channel
        b"HANGUP\n200 result=1\n",
        b"511 Command Not Permitted on a dead channel or intercept routine\n",
        b"200 result=1 (main)\n",
    ]


async def test_overlong_command_is_cut_like_asterisk() -> None:
    ch = ScriptedChannel()
    long_value = b"a" * 2100
    _, _, replies = await raw_session(ch, [b"SET VARIABLE X " + long_value + b"\n"])
    # res_agi.c reads 2047 bytes as one command; the rest is parsed as another one
    assert replies[0] == b"200 result=1\n"
    assert len(ch.variables["X"]) == 2047 - len(b"SET VARIABLE X ")
    assert ch.commands[1][1] == "510 Invalid or unknown command"
