"""Events duplicated, dropped or reordered (as around a reconnect) never corrupt the model."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ccd.ami.capture import read_capture
from ccd.ami.events import decode
from ccd.ami.parser import FrameSplitter
from ccd.cli.replay import replay_file
from ccd.model.domain import CallEnded
from ccd.model.live import LiveModel, Snapshot

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"
NAMES = sorted(p.name for p in CAPTURES.glob("*.ami"))


def typed(path: Path) -> list:
    out = []
    for raw in FrameSplitter().feed(read_capture(path)):
        e = decode(raw)
        if e is not None:
            out.append(e)
    return out


def summary(records: list) -> list[tuple]:
    return sorted((r.call_id, r.outcome, r.agent, r.hangup_by, r.queue, r.talk_seconds,
                   r.total_seconds, tuple(r.recordings), len(r.transfers)) for r in records)


@pytest.mark.parametrize("name", NAMES)
def test_duplicated_events_change_nothing(name: str) -> None:
    clean = summary([e.record for e in replay_file(CAPTURES / name, LiveModel())[0]
                     if isinstance(e, CallEnded)])
    events = typed(CAPTURES / name)
    rng = random.Random(name)
    doubled = []
    for e in events:
        doubled.append(e)
        if rng.random() < 0.3:
            doubled.append(e)  # delivered twice
    model = LiveModel()
    out = [x for e in doubled for x in model.feed(e)]
    assert summary([x.record for x in out if isinstance(x, CallEnded)]) == clean
    queue_answers = sum(1 for r in clean if r[1] == "answered" and r[2])
    assert sum(x.kind == "answered" for x in out) == queue_answers  # no double answers


@pytest.mark.parametrize("seed", range(12))
def test_dropped_and_shuffled_events_never_break_the_model(seed: int) -> None:
    rng = random.Random(seed)
    name = NAMES[seed % len(NAMES)]
    events = [e for e in typed(CAPTURES / name) if rng.random() > 0.15]  # lose 15%
    for _ in range(len(events) // 20):  # swap some neighbours
        i = rng.randrange(len(events) - 1)
        events[i], events[i + 1] = events[i + 1], events[i]
    model = LiveModel()
    for e in events:
        model.feed(e)
    # the link comes back and Asterisk has nothing left: every call is closed
    out = model.reconcile(Snapshot(ts=model.last_ts + 1))
    assert not model.calls and not model.channels
    for x in out:
        if isinstance(x, CallEnded):
            r = x.record
            assert r.end_reason or x.hangup_by
            # nothing tells when they ended: the end is unknown, never the reconnect time;
            # talk is known only if every stretch of it ended before
            assert r.end is None and r.total_seconds is None
            assert (r.talk_seconds is None) == any(s.end is None for s in r.segments)
            assert r.end_window is not None
            assert r.end_window[0] <= r.end_window[1] == round(model.last_ts + 1, 6)
