"""The pacer (pure): modes, the compliance guard, the predictive estimate, the figures,
and the benchmark's simulation as a compliance check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from ccd.campaigns.pacer import (
    PacerInput,
    PacerSettings,
    PacerStats,
    RollingCount,
    answer_probability,
    decide,
)

BENCH = Path(__file__).resolve().parents[2] / "bench" / "dialer.py"


def stats_after(settings: PacerSettings, live: int, abandoned: int, t: float = 0.0) -> PacerStats:
    st = PacerStats(settings, t)
    for i in range(live):
        st.record_attempt(True, 8.0)
        st.record_attempt(False)
        st.record_attempt(False)
        st.record_live(i < abandoned, t + i)
    return st


def test_settings_enforce_the_rules() -> None:
    with pytest.raises(ValueError, match="15 s"):
        PacerSettings(ring_timeout=10)
    with pytest.raises(ValueError):
        PacerSettings(max_abandon=0.05)
    with pytest.raises(ValueError):
        PacerSettings(mode="blast")
    assert PacerSettings().target == pytest.approx(0.024)


def test_preview_notify_progressive() -> None:
    st = PacerStats(PacerSettings(), 0.0)
    inp = PacerInput(now=0.0, idle=5, talking=3, ringing=(1.0, 2.0), waiting=1, channels=6)
    assert decide(PacerSettings(mode="preview"), st, inp).calls == 0
    assert decide(PacerSettings(mode="notify", max_channels=10), st, inp).calls == 4
    assert decide(PacerSettings(mode="progressive"), st, inp).calls == 2
    capped = decide(PacerSettings(mode="progressive", max_channels=7), st, inp)
    assert capped.calls == 1


def test_predictive_starts_progressive_until_there_is_a_budget() -> None:
    s = PacerSettings(mode="predictive")
    fresh = PacerStats(s, 0.0)
    inp = PacerInput(now=100.0, idle=10, talking=20)
    d = decide(s, fresh, inp)
    assert (d.how, d.calls) == ("guard", 10)
    warmed = stats_after(s, 200, 0)
    d2 = decide(s, warmed, inp)
    assert d2.how == "predictive" and d2.calls > 10
    # at the limit: back to one call per idle agent
    spent = stats_after(s, 200, 6)
    assert decide(s, spent, inp).how == "guard"


def test_predictive_dials_less_when_calls_ring_or_abandons_happen() -> None:
    s = PacerSettings(mode="predictive", max_channels=500)
    st = stats_after(s, 400, 0)
    base = decide(s, st, PacerInput(now=500.0, idle=10, talking=40)).calls
    ringing = decide(s, st, PacerInput(now=500.0, idle=10, talking=40,
                                        ringing=(1.0,) * 15)).calls
    assert ringing < base
    old = decide(s, st, PacerInput(now=500.0, idle=10, talking=40, ringing=(18.0,) * 15)).calls
    assert ringing < old  # calls that rang long are unlikely to be answered
    st2 = stats_after(s, 400, 0)
    for i in range(5):
        st2.record_live(True, 600.0 + i)
    assert st2.threshold() < st.threshold()
    assert decide(s, st2, PacerInput(now=700.0, idle=10, talking=40)).calls < base
    nobody = decide(s, st, PacerInput(now=500.0, idle=0, talking=0))
    assert nobody.calls == 0


def test_answer_probability() -> None:
    p = [answer_probability(0.3, age, 8.0, 20.0) for age in (0.0, 5.0, 15.0, 20.0)]
    assert p[0] == pytest.approx(0.3)
    assert p[0] > p[1] > p[2] > p[3] == 0.0


def test_figures_per_scope() -> None:
    s = PacerSettings(mode="predictive", window=3600.0, period=10_000.0)
    st = PacerStats(s, 0.0)
    for i in range(100):
        st.record_live(i < 3, float(i))
    r = st.rates(100.0)
    assert (r["campaign_pct"], r["window_pct"], r["live"], r["abandoned"]) == (3.0, 3.0, 100, 3)
    later = st.rates(100.0 + 3600.0 + 120.0)  # the window has moved past every call
    assert (later["window_live"], later["campaign_pct"]) == (0, 3.0)
    st.record_live(False, 10_500.0)  # a new 10 000 s period has begun
    assert (st.period_live, st.period_abandoned, st.period_start) == (1, 0, 10_000.0)
    st.seed(live=50, abandoned=1, period_start=0.0, period_live=50, period_abandoned=1,
            window=[(60.0, 10, 1)], attempts=100, lives=30, ring_mean=9.0, talk_mean=80.0)
    assert st.live_rate() == pytest.approx((30 * 0.3 + 30) / 130)
    assert (st.window.live, st.ring_mean, st.talk_mean) == (10, 9.0, 80.0)


def test_rolling_count_expiry() -> None:
    rc = RollingCount(600.0, 60.0)
    rc.add(0.0, 1, 1)
    rc.add(30.0, 2, 0)
    rc.add(300.0, 1, 0)
    rc.expire(650.0)
    assert (rc.live, rc.abandoned) == (4, 1)
    rc.expire(661.0)
    assert (rc.live, rc.abandoned) == (1, 0)


@pytest.fixture(scope="module")
def bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_dialer", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_dialer"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(("agents", "rate", "seed"), [(20, 0.25, 1), (20, 0.40, 2), (50, 0.32, 3)])
def test_simulated_shift_stays_compliant_and_beats_progressive(bench, agents: int, rate: float,
                                                               seed: int) -> None:
    stream = bench.ContactStream(seed, rate)
    prog = bench.simulate("progressive", agents, stream, 1.0)
    pred = bench.simulate("predictive", agents, stream, 1.0)
    assert prog.abandoned == 0
    assert pred.live > 300
    assert pred.abandon_pct <= 3.0
    assert pred.occupancy > prog.occupancy * 1.1
    assert pred.per_agent_hour > prog.per_agent_hour
