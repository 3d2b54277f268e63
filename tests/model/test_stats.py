"""Queue and agent statistics against values computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccd.cli.replay import replay_file
from ccd.model import domain as d
from ccd.model.live import LiveModel, ModelConfig
from ccd.model.stats import StatsCollector, interval_start

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"


def burst(threshold: float) -> StatsCollector:
    model = LiveModel(ModelConfig(wrapup={"support": 2.0}))
    events, _ = replay_file(next(CAPTURES.glob("scenario08*.ami")), model)
    st = StatsCollector({"support": threshold})
    st.feed_all(events)
    return st


def test_burst_queue_statistics_by_hand() -> None:
    # From the capture: 20 QueueCallerJoin between 1795465220.689 and .223.558 (one
    # 15-minute interval), 18 AgentConnect with HoldTime 0,0,0,6,6,7,11,12,13,17,18,18,
    # 20,23,24,26,28,31 (join->connect stamps: ... 18.024, 20.021, ..., 31.035 s),
    # 2 QueueCallerAbandon after 18.248 and 18.249 s.
    st = burst(20.0)
    [row] = st.queue_rows()
    assert row["queue"] == "support"
    assert row["start"] == interval_start(1795465220.689)
    assert (row["offered"], row["answered"], row["abandoned"], row["exited"]) == (20, 18, 2, 0)
    assert row["answered_in_sl"] == 12  # waits <= 20 s (20.021 is just over)
    assert row["abandoned_short"] == 2  # both abandoned before 20 s: excluded
    assert row["service_level"] == pytest.approx(100 * 12 / 18, abs=0.01)  # 66.67 %
    assert row["asa"] == pytest.approx(260.3 / 18, abs=0.05)  # 14.46 s
    assert row["longest_wait"] == pytest.approx(31.035, abs=0.002)
    assert row["avg_abandon_wait"] == pytest.approx(18.2485, abs=0.002)
    assert row["avg_wait"] == pytest.approx((260.3 + 36.497) / 20, abs=0.05)
    # AgentComplete TalkTime (whole seconds) add up to 75; each call's real talk differs
    # from its rounded TalkTime by less than a second
    assert abs(row["talk"] - 75) < 9
    # wrapuptime=2 after each of the 18 calls, but app_queue compares whole seconds
    # (member lastcall is a time_t), so it rings an agent again after 1-2 s: wrap-up
    # ends at 2 s or at that AgentCalled, whichever comes first
    assert 18 * 1.0 < row["wrapup"] <= 18 * 2.0 + 0.001
    assert row["aht"] == pytest.approx((row["talk"] + row["hold"] + row["wrapup"]) / 18,
                                       abs=0.01)


def test_service_level_threshold_changes_the_count() -> None:
    row = burst(30.0).queue_rows()[0]
    assert row["answered_in_sl"] == 17  # only the 31.035 s wait is over 30 s
    assert row["service_level"] == pytest.approx(100 * 17 / 18, abs=0.01)


def _state(ts: float, state: str, call_id: str = "") -> d.AgentStateChanged:
    return d.AgentStateChanged(ts, "PJSIP/1001", "Alice", state, "", "", call_id)


def test_agent_occupancy_by_hand() -> None:
    t0 = 1_800_000_000.0  # an interval boundary (divisible by 900)
    assert interval_start(t0) == t0
    st = StatsCollector()
    st.feed_all([
        _state(t0, "available"),          # 100 s available
        _state(t0 + 100, "ringing"),      # 5 s ringing
        _state(t0 + 105, "on_call"),      # 300 s on call
        _state(t0 + 405, "wrapup"),       # 30 s wrap-up
        _state(t0 + 435, "paused"),       # 200 s paused (not staffed)
        _state(t0 + 635, "available"),    # until t0 + 1000: 265 s here, 100 s next interval
    ])
    st.close(t0 + 1000)
    first, second = st.agent_rows()
    assert first["seconds"] == {"available": 365.0, "ringing": 5.0, "on_call": 300.0,
                                "wrapup": 30.0, "paused": 200.0}
    assert first["staffed"] == 700.0 and first["busy"] == 335.0
    assert first["occupancy"] == pytest.approx(100 * 335 / 700, abs=0.01)  # 47.86 %
    assert first["answered"] == 1
    assert second["start"] == t0 + 900 and second["seconds"] == {"available": 100.0}
    assert second["occupancy"] == 0.0


def test_exits_and_unfinished_waits() -> None:
    st = StatsCollector({"q": 10})
    t = 1_800_000_000.0
    st.feed(d.CallQueued(t, "c1", "q", 1, 1, "", ""))
    st.feed(d.QueueExited(t + 30, "c1", "q", "timeout", 30.0))
    st.feed(d.CallQueued(t + 1, "c2", "q", 1, 1, "", ""))
    rec = d.CallRecord(call_id="c2")
    st.feed(d.CallEnded(t + 6, "c2", "caller", 16, "", 0, 6, rec))  # ended while waiting
    [row] = st.queue_rows()
    assert (row["offered"], row["exited"], row["abandoned"], row["abandoned_short"]) == \
        (2, 1, 1, 1)
    assert row["service_level"] == 0.0  # 0 answered in SL / (1 exit + 1 abandon - 1 short)
    assert row["longest_wait"] == 30.0


def test_callers_still_waiting_do_not_count_in_the_service_level() -> None:
    st = StatsCollector({"q": 20})
    t = 1_800_000_000.0
    st.feed(d.CallQueued(t, "c1", "q", 1, 1, "", ""))
    st.feed(d.CallAnswered(t + 5, "c1", "q", "PJSIP/1001", "A", "PJSIP/1001-1", 5.0))
    st.feed(d.CallQueued(t + 6, "c2", "q", 1, 1, "", ""))  # still waiting
    [row] = st.queue_rows()
    assert (row["offered"], row["answered"], row["service_level"]) == (2, 1, 100.0)


# --------------------------------------------------------------------------- bounded work


class Counted(StatsCollector):
    """A collector that counts the interval rows it touches and stops a runaway loop."""

    LIMIT = 50_000

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.touched = 0

    def _agent_row(self, agent: str, start: float) -> object:  # type: ignore[override]
        self.touched += 1
        if self.touched > self.LIMIT:
            raise AssertionError(f"more than {self.LIMIT} intervals for one report")
        return super()._agent_row(agent, start)


@pytest.mark.parametrize("bogus", [0.0, -1e9, 1.0, 1_000_000_000.0])
def test_a_state_from_a_bogus_time_is_spread_over_a_bounded_number_of_intervals(
        bogus: float) -> None:
    t = 1_800_000_000.0
    st = Counted()
    st.feed_all([_state(bogus, "available"), _state(t, "paused"), _state(t + 60, "available")])
    st.close(t + 120)
    bound = st.max_span / st.interval + 3
    assert st.touched <= bound
    assert len(st.agents) <= bound
    # what is counted is the end of the stretch, up to the event that ended it
    last = st.agents[("PJSIP/1001", interval_start(t - 1))]
    assert last.seconds["available"] == pytest.approx(t - interval_start(t - 1))


def test_a_window_bounds_the_rows_whatever_the_times() -> None:
    day = interval_start(1_800_000_000.0, 86400)
    st = Counted(window=(day, day + 86400))
    st.feed_all([
        _state(0.0, "available"),                    # 1970: before the window
        _state(day + 3600, "on_call", "c1"),
        _state(day + 3700, "available"),
        _state(4.0e9, "paused"),                     # 2096: after it
        _state(day + 7200, "available"),             # time went back: nothing to spread
    ])
    st.feed(d.CallQueued(0.0, "c0", "q", 1, 1, "", ""))          # outside: not counted
    st.feed(d.CallQueued(day + 3590, "c1", "q", 1, 1, "", ""))
    st.close(9.0e9)
    assert st.touched <= 96 + 2
    assert all(day <= r.start < day + 86400 for r in st.agents.values())
    assert [(r.queue, r.offered) for r in st.queues.values()] == [("q", 1)]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_events_without_a_finite_time_are_ignored(bad: float) -> None:
    st = Counted()
    st.feed_all([_state(1_800_000_000.0, "available"), _state(bad, "paused")])
    st.feed(d.CallQueued(bad, "c1", "q", 1, 1, "", ""))
    st.close(bad)
    st.close(1_800_000_100.0)
    assert st.ignored == 2
    assert [r.seconds for r in st.agents.values()] == [{"available": 100.0}]
    assert not st.queues


REAL2 = CAPTURES / "real-2"


def replayed(name: str, wrapup: float = 10.0) -> tuple[list[d.DomainEvent], StatsCollector]:
    model = LiveModel(ModelConfig(wrapup={"support": wrapup}))
    events, _ = replay_file(next(CAPTURES.glob(f"**/{name}*.ami")), model)
    st = StatsCollector()
    st.feed_all(events)
    return events, st


def test_a_hold_while_connected_is_part_of_talk_not_added_twice() -> None:
    """T5e: the agent's phone held the call 5.093 s (expected.json) inside an 11.443 s
    talk that includes it; AHT = talk + wrap-up."""
    _, st = replayed("T5e-")
    tot = st.totals("support")
    assert tot.answered == 1
    assert tot.talk == pytest.approx(11.443, abs=0.01)
    assert tot.hold == pytest.approx(5.093, abs=0.01)
    assert tot.hold_extra == 0.0
    assert tot.wrapup == pytest.approx(10.0, abs=0.01)  # [model] wrapup support = 10
    assert tot.aht == pytest.approx(11.443 + 10.0, abs=0.02)


def test_a_hold_outside_talk_counts_once_in_the_handle_time() -> None:
    """scenario05b: Bob (support) holds the caller at 129.024 for his consultation and
    leaves the caller's bridge at 129.206; the hold ends with the transfer at 132.219."""
    _, st = replayed("scenario05b", wrapup=0.0)
    tot = st.totals("support")
    assert tot.talk == pytest.approx(129.206 - 125.775, abs=0.01)  # Bob's leg only
    assert tot.hold == pytest.approx(132.219 - 129.024, abs=0.01)
    assert tot.hold_extra == pytest.approx(132.219 - 129.206, abs=0.01)
    assert tot.aht == pytest.approx(tot.talk + tot.hold_extra, abs=0.01)


def test_wrapup_after_a_transfer_counts_for_the_queue_the_agent_answered_from() -> None:
    t = 1_800_000_000.0
    a, b = "PJSIP/1001", "PJSIP/1004"
    rec = d.CallRecord(call_id="c", start=t, end=t + 100, segments=[
        d.Segment(a, "PJSIP/1001-1", t + 5, t + 30, queue="sales"),
        d.Segment(b, "PJSIP/1004-1", t + 50, t + 100, queue="support")])

    def state(ts: float, agent: str, st: str, until: float | None = None) -> d.AgentStateChanged:
        return d.AgentStateChanged(ts, agent, "", st, "", "", "c", until=until)

    st = StatsCollector()
    st.feed_all([
        d.CallQueued(t, "c", "sales", 1, 1, "", ""),
        d.CallAnswered(t + 5, "c", "sales", a, "", "PJSIP/1001-1", 5.0),
        state(t + 5, a, "on_call"),
        # blind transfer to the support queue: Alice wraps up while the caller waits there
        d.CallQueued(t + 30, "c", "support", 1, 1, "", ""),
        state(t + 30, a, "wrapup", until=t + 40),
        state(t + 40, a, "available"),
        d.CallAnswered(t + 50, "c", "support", b, "", "PJSIP/1004-1", 20.0),
        state(t + 50, b, "on_call"),
        d.CallEnded(t + 100, "c", "caller", 16, "", 75.0, 100.0, rec),
        state(t + 100, b, "wrapup", until=t + 110),
        state(t + 110, b, "available"),
    ])
    sales, support = st.totals("sales"), st.totals("support")
    assert (sales.talk, sales.wrapup, sales.aht) == (25.0, 10.0, 35.0)
    assert (support.talk, support.wrapup, support.aht) == (50.0, 10.0, 60.0)


def test_a_wrapup_never_outlasts_the_wrapup_time_asterisk_enforces() -> None:
    """An agent whose last stored state is wrap-up (the daemon stopped) adds at most the
    queue's wrap-up time to AHT, however late the report is made."""
    t = 1_800_000_000.0
    rec = d.CallRecord(call_id="c", start=t, end=t + 60,
                       segments=[d.Segment("PJSIP/1001", "PJSIP/1001-1", t + 5, t + 60,
                                           queue="q")])
    st = StatsCollector()
    st.feed_all([
        d.CallQueued(t, "c", "q", 1, 1, "", ""),
        d.CallAnswered(t + 5, "c", "q", "PJSIP/1001", "", "PJSIP/1001-1", 5.0),
        d.AgentStateChanged(t + 5, "PJSIP/1001", "", "on_call", "", "", "c"),
        d.CallEnded(t + 60, "c", "caller", 16, "", 55.0, 60.0, rec),
        d.AgentStateChanged(t + 60, "PJSIP/1001", "", "wrapup", "", "", "c", until=t + 70),
    ])
    st.close(t + 3600)
    tot = st.totals("q")
    assert (tot.talk, tot.wrapup, tot.aht) == (55.0, 10.0, 65.0)


def test_answered_calls_with_an_unknown_end_stay_out_of_aht() -> None:
    t = 1_800_000_000.0
    seg = d.Segment("PJSIP/1001", "PJSIP/1001-1", t + 5, t + 65, queue="q")
    known = d.CallRecord(call_id="k", start=t, end=t + 65, segments=[seg])
    lost = d.CallRecord(call_id="u", start=t, end=None, outcome="answered",
                        segments=[d.Segment("PJSIP/1002", "PJSIP/1002-1", t + 5, None,
                                            queue="q")])
    st = StatsCollector()
    st.feed_all([
        d.CallQueued(t, "k", "q", 1, 1, "", ""), d.CallQueued(t, "u", "q", 2, 2, "", ""),
        d.CallAnswered(t + 5, "k", "q", "PJSIP/1001", "", "PJSIP/1001-1", 5.0),
        d.CallAnswered(t + 5, "u", "q", "PJSIP/1002", "", "PJSIP/1002-1", 5.0),
        d.CallEnded(t + 65, "k", "caller", 16, "", 60.0, 65.0, known),
        d.CallEnded(t + 90, "u", "unknown", 0, "", None, None, lost),
    ])
    tot = st.totals("q")
    assert (tot.answered, tot.talk_unknown, tot.talk, tot.aht) == (2, 1, 60.0, 60.0)
