"""The AGI wire format: replies, quoting, headers - checked against the real captures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccd.agi.protocol import (
    AgiProtocolError,
    build_command,
    env_lines,
    is_usage_end,
    parse_args,
    parse_env,
    parse_reply_line,
    quote,
    script_of,
)

CAPTURES = Path("/work/shared/asterisk-captures/agi")
if not CAPTURES.is_dir():  # CI: shared/ sits beside the checkout
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures" / "agi"


def transcript(path: Path) -> list[tuple[str, str]]:
    """(direction, text) chunks of a capture log (``recv`` = from Asterisk)."""
    out: list[tuple[str, str]] = []
    direction = ""
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith("# t="):
            direction = line.split()[2]
            continue
        if line.startswith("# "):
            continue
        out.append((direction, line))
    return out


def test_every_reply_in_the_captures_parses() -> None:
    logs = sorted(CAPTURES.glob("*.log"))
    assert len(logs) == 30
    seen = set()
    for log in logs:
        chunks = transcript(log)
        header_done = False
        for direction, text in chunks:
            if direction != "recv":
                continue
            if not header_done:
                header_done = text == "\n"
                continue
            r = parse_reply_line(text.rstrip("\n"))
            assert r.code == 200
            seen.add(text.rstrip("\n"))
    assert "200 result= (timeout)" in seen
    assert "200 result=0 endpos=11360" in seen


@pytest.mark.parametrize(("line", "result", "data", "extra", "text"), [
    ("200 result=1", "1", None, {}, ""),
    ("200 result=6", "6", None, {}, ""),
    ("200 result=0 endpos=11360", "0", None, {"endpos": "11360"}, ""),
    ("200 result= (timeout)", "", "timeout", {}, ""),
    ("200 result=12 (timeout)", "12", "timeout", {}, ""),
    ("200 result=007", "007", None, {}, ""),
    ("200 result=1 (C770001)", "1", "C770001", {}, ""),
    ('200 result=1 ("Customer Carol" <5557770001> in from-trunk)', "1",
     '"Customer Carol" <5557770001> in from-trunk', {}, ""),
    ("200 result=1 (a) b=c)", "1", "a) b=c", {}, ""),
    ("200 result=1 ()", "1", "", {}, ""),
    ("200 result=35 (dtmf) endpos=16000", "35", "dtmf", {"endpos": "16000"}, ""),
    ("200 result=-1 (hangup) endpos=0", "-1", "hangup", {"endpos": "0"}, ""),
    ("200 result=1 (digit) digit=5 endpos=1200", "1", "digit",
     {"digit": "5", "endpos": "1200"}, ""),
    ("200 result=0 Gosub complete", "0", None, {}, "Gosub complete"),
    ("100 result=0 Trying...", "0", None, {}, "Trying..."),
])
def test_reply_forms(line: str, result: str, data: str | None, extra: dict[str, str],
                     text: str) -> None:
    r = parse_reply_line(line)
    assert (r.result, r.data, r.extra, r.text) == (result, data, extra, text)


def test_error_replies_keep_their_text() -> None:
    r = parse_reply_line("511 Command Not Permitted on a dead channel or intercept routine")
    assert r.code == 511 and r.text.startswith("Command Not Permitted")
    r = parse_reply_line("503 result=-2 Memory allocation failure")
    assert (r.code, r.result, r.text) == (503, "-2", "Memory allocation failure")


@pytest.mark.parametrize("line", ["HTTP/1.1 200 OK", "hello", "20 result=1", "200 resul=1", ""])
def test_garbage_replies_are_protocol_errors(line: str) -> None:
    with pytest.raises(AgiProtocolError):
        parse_reply_line(line)


def test_usage_block_end_detection() -> None:
    assert is_usage_end("520 End of proper usage.")
    # older Asterisk glued the end line to the usage text
    assert is_usage_end("Returns the digits received from the channel.520 End of proper usage.")
    assert not is_usage_end(" Usage: GET DATA <file> [timeout] [max digits]")


@given(st.lists(st.text(st.characters(blacklist_characters="\r\n\x00",
                                      blacklist_categories=("Cs",)), max_size=20), max_size=6))
def test_quote_round_trips_through_asterisks_argument_parser(words: list[str]) -> None:
    line = build_command("SET", "VARIABLE", *words).decode()
    assert parse_args(line.rstrip("\n")) == ["SET", "VARIABLE", *words]


def test_capture_command_lines_parse_like_asterisk() -> None:
    assert parse_args('STREAM FILE hello-world ""') == ["STREAM", "FILE", "hello-world", ""]
    assert parse_args('GET FULL VARIABLE "${CALLERID(all)} in ${CONTEXT}"') == \
        ["GET", "FULL", "VARIABLE", "${CALLERID(all)} in ${CONTEXT}"]
    assert parse_args('SET VARIABLE X "a \\"b\\" \\\\ c"') == ["SET", "VARIABLE", "X", 'a "b" \\ c']


@pytest.mark.parametrize("bad", ["a\nHANGUP", "x\r", "nul\0"])
def test_line_breaks_cannot_inject_a_command(bad: str) -> None:
    with pytest.raises(ValueError):
        quote(bad)
    with pytest.raises(ValueError):
        build_command("SET", "VARIABLE", "X", bad)


def test_commands_longer_than_asterisks_buffer_are_refused() -> None:
    build_command("SET", "VARIABLE", "X", "a" * 2000)
    with pytest.raises(ValueError, match="2047"):
        build_command("SET", "VARIABLE", "X", "a" * 2100)


def test_headers_of_a_capture_parse_and_reencode_byte_for_byte() -> None:
    log = next(CAPTURES.glob("scenario01-*.log"))
    block = ""
    for direction, text in transcript(log):
        if direction == "recv":
            block += text
            if text == "\n":
                break
    env = parse_env(block.encode())
    assert env["agi_uniqueid"] == "1795465016.0"
    assert env["agi_accountcode"] == ""
    assert script_of(env) == "ivr"
    assert env_lines(env) == block.encode()


@pytest.mark.parametrize("block", [
    b"GET / HTTP/1.1\nHost: x\n\n",
    b"agi_channel PJSIP/1\n\n",
    b"\n",
    b"agi_ch-annel: x\n\n",
])
def test_bad_header_blocks_are_refused(block: bytes) -> None:
    with pytest.raises(AgiProtocolError):
        parse_env(block)


def test_script_of_request_without_network_script() -> None:
    assert script_of({"agi_request": "agi://10.0.0.1:4573/ivr/support?x=1"}) == "ivr/support"
    assert script_of({"agi_network_script": "survey"}) == "survey"
