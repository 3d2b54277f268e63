"""The second and third sets of real Asterisk 22 captures (``real-2/``, ``real-3/``) replayed
through the real parser and live model, checked against their ``expected.json`` ground
truth (the phones' ctrl_tcp events and the driver's clock, never ccd's output)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ccd.cli.replay import replay_file
from ccd.model.domain import CallEnded, CallRecord, DomainEvent
from ccd.model.live import LiveModel, ModelConfig

CAPTURES = Path("/work/shared/asterisk-captures")
if not CAPTURES.exists():  # a checkout elsewhere: ../shared relative to the repo
    CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures"


def capture(name: str) -> Path:
    (path,) = [p for p in CAPTURES.glob("real-*/**/*.ami") if p.name.startswith(name)]
    return path


def expected(name: str) -> dict[str, Any]:
    path = capture(name)
    return json.loads(path.with_name(path.name[:-4] + ".expected.json").read_text())


def run(name: str, model: LiveModel | None = None) -> tuple[list[DomainEvent], LiveModel]:
    model = model or LiveModel(ModelConfig(outbound_contexts=frozenset({"ccd-outbound"})))
    events, ingest = replay_file(capture(name), model)
    assert ingest.stats.malformed == 0 and ingest.stats.model_errors == 0
    return events, model


def records(events: list[DomainEvent]) -> dict[str, CallRecord]:
    return {e.record.call_id: e.record for e in events if isinstance(e, CallEnded)}


def test_epoch_receive_times_stand_in_for_missing_timestamps(tmp_path: Path) -> None:
    """real-2 files carry ``# t=<epoch>``: without Timestamp fields, those are the times."""
    src = capture("T5c").read_bytes()
    stripped = re.sub(rb"Timestamp: [0-9.]+\r\n", b"", src)
    path = tmp_path / "T5c-no-timestamps.ami"
    path.write_bytes(stripped)
    events, _ = replay_file(path, LiveModel())
    [r] = records(events).values()
    truth = expected("T5c")["calls"][0]["driver_times"]
    # the call starts when the customer dials and ends when the phones close it
    assert truth["t_dial"] - 0.1 < r.start < truth["pbx_answer"] + 0.1
    assert r.end == pytest.approx(truth["agent_closed"], abs=0.1)
