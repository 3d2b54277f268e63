"""Scripted scenarios (TOML), the traffic model, and ``ccd sim`` on the command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner

import ccd.cli.sim  # noqa: F401  (registers "ccd sim" on the command group)
from ccd.ami.events import decode
from ccd.cli.main import cli
from ccd.model.domain import CallEnded
from ccd.model.live import LiveModel
from ccd.sim.events import Event
from ccd.sim.scenario import ScenarioError, ScenarioRunner, load_scenario, parse_scenario
from ccd.sim.simulator import SimOptions, Simulator
from ccd.sim.traffic import Traffic, TrafficOptions

SCENARIOS = Path(__file__).resolve().parents[2] / "ccd" / "sim" / "scenarios"


class ModelFeed:
    """Feeds the simulator's events to ccd's live model, as the daemon would."""

    def __init__(self, sim: Simulator) -> None:
        self.model = LiveModel()
        self.ended: list[CallEnded] = []
        sim.engine.subscribe(self.on_event)

    def on_event(self, ev: Event) -> None:
        typed = decode(ev.render(True)[:-4])
        if typed is not None:
            self.ended.extend(d for d in self.model.feed(typed) if isinstance(d, CallEnded))


async def test_shipped_scenario_runs(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / "inbound-answered.toml")
    async with Simulator(SimOptions(ami_port=0, time_scale=40.0, agi="127.0.0.1:1")) as sim:
        feed = ModelFeed(sim)
        result = await ScenarioRunner(sim, scenario).run()
        assert result.ok, result.failures
        assert set(result.calls) == {"c1", "c2"}
    outcomes = sorted((e.record.outcome, e.record.hangup_by) for e in feed.ended)
    assert outcomes == [("abandoned", "caller"), ("answered", "caller")]


async def test_restart_scenario() -> None:
    scenario = load_scenario(SCENARIOS / "restart-during-call.toml")
    async with Simulator(SimOptions(ami_port=0, time_scale=40.0, agi="127.0.0.1:1")) as sim:
        result = await ScenarioRunner(sim, scenario).run()
        assert result.ok, result.failures
        assert not sim.engine.channels
        assert sim.engine.uptime() <= 1


async def test_failed_expectation_is_reported() -> None:
    scenario = parse_scenario(
        {
            "steps": [
                {
                    "ami": {"Action": "QueueRemove", "Queue": "support", "Interface": "PJSIP/1001"},
                    "expect": {"Response": "Success"},
                },
                {"sleep": 1},
            ]
        }
    )
    async with Simulator(SimOptions(ami_port=0, time_scale=40.0)) as sim:
        result = await ScenarioRunner(sim, scenario).run()
    assert not result.ok
    assert result.failures == ["step 1: ami QueueRemove: Response is 'Error', expected 'Success'"]


def test_invalid_scenarios() -> None:
    with pytest.raises(ScenarioError, match="exactly one of"):
        parse_scenario({"steps": [{"sleep": 1, "hangup": "x"}]})
    with pytest.raises(ScenarioError, match="answer must be one of"):
        parse_scenario({"phones": {"1001": {"answer": "sometimes"}}, "steps": []})


async def test_seeded_traffic_runs_a_call_centre() -> None:
    opts = SimOptions(ami_port=0, time_scale=200.0, agi="127.0.0.1:1")
    async with Simulator(opts) as sim:
        feed = ModelFeed(sim)
        traffic = Traffic(
            sim,
            TrafficOptions(
                calls_per_minute=6, agents=2, handle_time=40, patience=45, seed=7, max_calls=20
            ),
        )
        await traffic.start()
        for _ in range(400):
            if traffic.stats.offered == 20 and not sim.engine.channels:
                break
            await asyncio.sleep(0.02)
        await traffic.stop()
        stats = traffic.stats
    assert stats.offered == 20
    assert stats.answered + stats.abandoned == 20
    assert stats.answered >= 5 and set(stats.by_agent) <= {"1001", "1002"}
    records = [e.record for e in feed.ended]
    assert len(records) == 20
    answered = [r for r in records if r.outcome == "answered"]
    assert len(answered) == stats.answered
    assert {r.agent for r in answered} <= {"PJSIP/1001", "PJSIP/1002"}
    assert all(r.hangup_by in ("caller", "agent") for r in answered)
    assert all(r.hangup_by == "caller" for r in records if r.outcome == "abandoned")


def test_ccd_sim_command_runs_a_scenario() -> None:
    # the command runs in real time: at x10 the scenario's 30-simulated-second waits give
    # the simulator three real seconds for what takes it milliseconds, however busy the CPU
    result = CliRunner().invoke(
        cli,
        [
            "sim",
            "--ami-port",
            "0",
            "--time-scale",
            "10",
            "--agi",
            "127.0.0.1:1",
            "--scenario",
            str(SCENARIOS / "inbound-answered.toml"),
        ],
    )
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("ccd sim: AMI 127.0.0.1:") and "time x10" in first
    assert "scenario inbound-answered.toml: ok" in result.output


def test_ccd_sim_command_rejects_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["sim", "--phone", "1001=sometimes"])
    assert bad.exit_code == 2
    missing = runner.invoke(cli, ["sim", "--config-dir", str(tmp_path)])
    assert missing.exit_code == 2
    assert "manager.conf: no such file" in missing.output
