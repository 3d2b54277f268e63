"""The AMI frame splitter and parser: examples and properties (hypothesis)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccd.ami.actions import AmiActionError, encode_action
from ccd.ami.capture import read_capture, server_bytes
from ccd.ami.events import decode
from ccd.ami.parser import FrameError, FrameSplitter, event_name, parse_frame, peek_field

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"


def split_all(data: bytes, cuts: list[int], max_frame: int = 1 << 16) -> tuple[list[bytes], bytes]:
    sp = FrameSplitter(max_frame=max_frame)
    frames: list[bytes] = []
    prev = 0
    for c in sorted(set(cuts)):
        frames += sp.feed(data[prev:c])
        prev = c
    frames += sp.feed(data[prev:])
    return frames, sp.close()


def test_banner_and_frames() -> None:
    data = (b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: 1\r\n"
            b"Message: Authentication accepted\r\n\r\nEvent: FullyBooted\r\nUptime: 12\r\n\r\n")
    frames, tail = split_all(data, [])
    assert frames[0] == b"Asterisk Call Manager/11.0.0"
    assert parse_frame(frames[1])["Message"] == "Authentication accepted"
    assert event_name(frames[2]) == b"FullyBooted"
    assert tail == b""


def test_repeated_keys_and_odd_lines() -> None:
    f = parse_frame(b"Event: Status\r\nVariable: A=1\r\nVariable: B=2\r\nAppData:\r\n"
                    b"garbage line\r\nAccountCode: ")
    assert f["Variable"].split("\n") == ["A=1", "B=2"]
    assert f["AppData"] == "" and f["AccountCode"] == ""
    with pytest.raises(FrameError):
        parse_frame(b"no colon here\r\nnor here")


def test_non_utf8_caller_name_is_replaced_not_fatal() -> None:
    f = parse_frame(b"Event: Newchannel\r\nCallerIDName: \xff\xfe<script>\r\n")
    assert f["CallerIDName"].endswith("<script>")


def test_oversized_frame_is_skipped_and_stream_resyncs() -> None:
    big = b"Event: VarSet\r\nValue: " + b"x" * 5000 + b"\r\n\r\n"
    ok = b"Event: Hangup\r\nUniqueid: 1.1\r\n\r\n"
    for cuts in ([], [10, 100, 4000, 5030], list(range(0, len(big) + len(ok), 7))):
        sp = FrameSplitter(max_frame=1024)
        frames: list[bytes] = []
        data = big + ok
        prev = 0
        for c in [*cuts, len(data)]:
            frames += sp.feed(data[prev:c])
            prev = c
        assert frames == [ok[:-4]]
        assert sp.stats.oversized == 1
        assert sp.pending == 0


def test_truncated_frame_at_close() -> None:
    sp = FrameSplitter()
    assert sp.feed(b"Event: Hangup\r\nUniqueid: 1") == []
    assert sp.close() == b"Event: Hangup\r\nUniqueid: 1"
    assert sp.stats.truncated == 1


def test_peek_field() -> None:
    raw = b"Event: VarSet\r\nChannel: PJSIP/1-1\r\nVariable: MIXMONITOR_FILENAME\r\nValue: /a.wav"
    assert peek_field(raw, b"Variable") == "MIXMONITOR_FILENAME"
    assert peek_field(raw, b"Value") == "/a.wav"
    assert peek_field(raw, b"Nope") is None


def test_decode_skips_noise_cheaply() -> None:
    noise = b"Event: VarSet\r\nUniqueid: 1.1\r\nVariable: RTPAUDIOQOS\r\nValue: x"
    assert decode(noise) is None
    assert decode(b"Event: RTCPSent\r\nFoo: bar") is None
    kept = decode(b"Event: VarSet\r\nUniqueid: 1.1\r\nVariable: MIXMONITOR_FILENAME\r\n"
                  b"Value: /x.wav\r\nTimestamp: 12.5")
    assert kept is not None and kept.ts == 12.5


def test_actions_refuse_header_injection() -> None:
    assert encode_action("Ping", action_id="a1") == b"Action: Ping\r\nActionID: a1\r\n\r\n"
    out = encode_action("Originate", {"Channel": "PJSIP/1001", "Variable": ["A=1", "B=2"]})
    assert out.count(b"Variable: ") == 2
    for bad in ("1001\r\nAction: Command", "x\ny", "a\rb"):
        with pytest.raises(AmiActionError, match="CR or LF"):
            encode_action("Originate", {"CallerID": bad})
    with pytest.raises(AmiActionError):
        encode_action("Originate", {"Bad Key": "x"})
    with pytest.raises(AmiActionError):
        encode_action("Ping\r\nAction: Logoff")


# ------------------------------------------------------------------ properties

keys = st.from_regex(r"[A-Z][A-Za-z0-9-]{0,15}", fullmatch=True)
vals = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
               max_size=40)
frames_st = st.lists(st.lists(st.tuples(keys, vals), min_size=1, max_size=8), max_size=12)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(frames=frames_st, data=st.data())
def test_split_anywhere_gives_same_frames(frames: list[list[tuple[str, str]]],
                                          data: st.DataObject) -> None:
    wire = b"Asterisk Call Manager/11.0.0\r\n" + b"".join(
        ("".join(f"{k}: {v}\r\n" for k, v in fr) + "\r\n").encode() for fr in frames)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=30))
    whole, tail_whole = split_all(wire, [])
    pieces, tail = split_all(wire, cuts)
    assert pieces == whole and tail == tail_whole == b""
    assert len(whole) == len(frames) + 1
    for raw, fr in zip(whole[1:], frames, strict=True):
        parsed = parse_frame(raw)
        expect: dict[str, str] = {}
        for k, v in fr:
            expect[k] = expect[k] + "\n" + v if k in expect else v
        assert parsed == expect


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(blob=st.binary(max_size=600), data=st.data())
def test_any_bytes_split_anywhere_same_result_or_clean_error(blob: bytes,
                                                             data: st.DataObject) -> None:
    alphabet = st.sampled_from([b"\r\n", b"\r\n\r\n", b"Event: X", b": ", b"\r", b"\n",
                                b"Asterisk Call Manager/1", b"A"])
    extra = b"".join(data.draw(st.lists(alphabet, max_size=20)))
    stream = blob + extra + blob[::-1]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=25))
    whole = split_all(stream, [], max_frame=128)
    pieces = split_all(stream, cuts, max_frame=128)
    assert pieces == whole
    for raw in whole[0]:
        with contextlib.suppress(FrameError):
            assert isinstance(parse_frame(raw), dict)
        decode(raw)  # may return None; must never raise anything but FrameError
        assert len(raw) <= 128


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_real_capture_split_anywhere(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(CAPTURES.glob("*.ami"))))
    wire = read_capture(path)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=60))
    assert split_all(wire, cuts) == split_all(wire, [])


def test_capture_comment_lines_dropped() -> None:
    raw = b"# t=1\nEvent: A\r\nB: c\r\n\r\n# note x\nEvent: D\r\n\r\n"
    assert server_bytes(raw) == b"Event: A\r\nB: c\r\n\r\nEvent: D\r\n\r\n"
