"""Hostile event times: a Timestamp of 0, negative, huge, not a number or far from the
link's time is replaced by the link's time and counted, and nothing downstream (the live
model, the statistics) does work that grows with what the frame said."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from ccd.ami.capture import timed_chunks
from ccd.ami.events import decode
from ccd.ami.ingest import Ingest
from ccd.ami.timestamps import MAX_SKEW, REANCHOR, WINDOW, LinkClock
from ccd.model.domain import CallEnded, DomainEvent
from ccd.model.live import LiveModel
from ccd.model.stats import StatsCollector

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"

T = 1_796_694_111.809095  # a real Timestamp (T7a)


class Counted(StatsCollector):
    """Counts the agent interval rows it touches; stops a runaway loop early."""

    def __init__(self) -> None:
        super().__init__()
        self.touched = 0

    def _agent_row(self, agent: str, start: float):  # type: ignore[no-untyped-def]
        self.touched += 1
        assert self.touched < 50_000, "the statistics loop ran away"
        return super()._agent_row(agent, start)


# --------------------------------------------------------------------------- the parser


@pytest.mark.parametrize("bad", ["0", "-5", "nan", "inf", "-inf", "1e300", "9999999999",
                                 "1" * 400, "0x10", ""])
def test_decode_refuses_impossible_timestamps(bad: str) -> None:
    raw = f"Event: Hangup\r\nTimestamp: {bad}\r\nUniqueid: 1.1\r\nChannel: PJSIP/1-1".encode()
    e = decode(raw, 123.0)
    assert e is not None and e.ts == 123.0


def test_the_link_clock_replaces_what_is_far_from_the_links_time() -> None:
    c = LinkClock()
    now = T + 0.002  # received 2 ms after Asterisk stamped it
    assert c.check(T, now) == T
    assert c.offset == pytest.approx(-0.002, abs=1e-6)
    assert c.check(T + 1.0, now + 1.0) == T + 1.0
    for far in (T - 10 * 86400, T + 3 * 3600, T + WINDOW + 5):  # plausible, but not here
        assert c.check(far, now + 2.0) == pytest.approx(T + 2.0)
    assert c.replaced == 3
    assert c.check(T + 3.0, now + 3.0) == T + 3.0  # and the next good one is taken


def test_the_first_timestamp_may_be_off_by_the_skew_between_hosts_only() -> None:
    c = LinkClock()
    assert c.check(T + 7200, T) == T + 7200  # Asterisk's clock is 2 h ahead of ccd's
    assert c.check(T + 7201, T + 1) == T + 7201
    other = LinkClock()
    assert other.check(T - MAX_SKEW - 60, T) == T  # a year 1970 / 2096 clock: no
    assert other.replaced == 1 and other.offset is None


def test_the_link_follows_a_real_jump_of_asterisks_clock_after_a_few_events() -> None:
    c = LinkClock()
    c.check(T, T)
    step = 3600.0  # Asterisk's clock is stepped by an hour
    got = [c.check(T + step + i, T + i) for i in range(1, REANCHOR + 3)]
    assert got[: REANCHOR - 1] == [T + i for i in range(1, REANCHOR)]  # the link's time
    assert got[REANCHOR - 1:] == [T + step + i for i in range(REANCHOR, REANCHOR + 3)]
    assert c.replaced == REANCHOR - 1 and c.reanchored == 1


def test_a_bogus_first_timestamp_costs_a_few_events_only() -> None:
    c = LinkClock()
    c.check(T + 80000, T)  # within the skew: taken, and wrong
    got = [c.check(T + i, T + i) for i in range(1, REANCHOR + 2)]
    assert got[-2:] == [T + REANCHOR, T + REANCHOR + 1]
    assert c.reanchored == 1


def test_without_a_receive_clock_the_stream_is_its_own_reference() -> None:
    c = LinkClock()
    assert c.check(T, 0.0) == T
    assert c.check(T + 3600 * 10, 0.0) == T + 36000  # a quiet night in a replayed log
    assert c.check(T + 36000 - 5, 0.0) == T + 36000 - 5  # events a little out of order
    assert c.check(1.0, 0.0) == T + 36000 - 5
    assert c.check(T + 36000 + 2 * 86400, 0.0) == T + 36000 - 5
    assert c.replaced == 2


# --------------------------------------------------------------------------- ingest path


HOSTILE = ["0", "-1", "nan", "inf", "1e300", "9999999999", "{far_past}", "{far_future}",
           "0.000001", "{tomorrow}"]
TOUCHED = {b"QueueMemberStatus", b"AgentCalled", b"AgentConnect", b"AgentComplete",
           b"Newstate", b"Hangup", b"BridgeEnter"}


def _poisoned(data: bytes, every: int = 9) -> tuple[bytes, int]:
    """The capture with some of its Timestamps replaced by hostile values."""
    out: list[bytes] = []
    event = b""
    seen = poisoned = 0
    for line in data.splitlines(keepends=True):
        if line.startswith(b"Event: "):
            event = line[7:].rstrip(b"\r\n")
        m = re.match(rb"Timestamp: (\d+\.\d+)\r\n", line)
        if m and event in TOUCHED:
            seen += 1
            if seen % every == 0 and poisoned < len(HOSTILE):
                real = float(m[1])
                bad = HOSTILE[poisoned].format(far_past=real - 30 * 86400,
                                               far_future=real + 7200,
                                               tomorrow=real + 86000)
                line = b"Timestamp: " + bad.encode() + b"\r\n"
                poisoned += 1
        out.append(line)
    return b"".join(out), poisoned


def _run(data: bytes) -> tuple[list[DomainEvent], Ingest]:
    ingest = Ingest(LiveModel())
    events: list[DomainEvent] = []
    for now, chunk in timed_chunks(data):
        events.extend(ingest.feed(chunk, now))
    return events, ingest


def test_hostile_timestamps_through_the_ingest_path_and_the_statistics() -> None:
    path = next(CAPTURES.glob("scenario08*.ami"))
    clean, _ = _run(path.read_bytes())
    data, poisoned = _poisoned(path.read_bytes())
    assert poisoned == len(HOSTILE)
    events, ingest = _run(data)
    assert ingest.clock.replaced == poisoned
    assert ingest.clock.reanchored == 0
    lo = min(e.ts for e in clean)
    hi = max(e.ts for e in clean)
    assert all(lo - 1 <= e.ts <= hi + 1 for e in events)
    # the calls come out the same (a replaced time is the link's time, within the window)
    def records(evs: list[DomainEvent]) -> list[tuple[str, str, str, str]]:
        return sorted((e.call_id, e.record.outcome, e.record.agent, e.hangup_by)
                      for e in evs if isinstance(e, CallEnded))
    assert records(events) == records(clean)
    st = Counted()
    st.feed_all(events)
    st.close(hi)
    states = sum(e.kind == "agent_state" for e in events)
    assert st.touched <= 2 * states  # no state spans more than two 15-minute intervals
    assert len(st.agents) <= 2 * len({e.agent for e in events if e.kind == "agent_state"})


def test_a_frame_without_receive_time_or_timestamp_changes_nothing() -> None:
    ingest = Ingest(LiveModel())
    ingest.frame(b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 10\r\n"
                 b"LastReload: 10\r\nStatus: Fully Booted")
    assert ingest.clock.replaced == 0
    assert not math.isnan(ingest.model.last_ts)


def test_ages_and_wrapup_from_asterisk_are_bounded() -> None:
    """The model turns a channel's Duration and a caller's Wait into times (now - age) and
    Wrapuptime into the end of a wrap-up: absurd values must not make absurd times."""
    from ccd.ami.events import MAX_AGE, MAX_WRAPUP, decode_fields

    chan = decode_fields({"Event": "CoreShowChannel", "Uniqueid": "1.1",
                          "Duration": "99999999:00:00"}, T)
    entry = decode_fields({"Event": "QueueEntry", "Queue": "q", "Wait": "-50"}, T)
    member = decode_fields({"Event": "QueueMember", "Queue": "q", "Location": "PJSIP/1",
                            "Wrapuptime": "1" + "0" * 30}, T)
    assert chan.duration == MAX_AGE  # type: ignore[union-attr]
    assert entry.wait == 0  # type: ignore[union-attr]
    assert member.wrapup == MAX_WRAPUP  # type: ignore[union-attr]
