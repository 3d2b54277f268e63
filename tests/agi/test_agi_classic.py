"""ccd-agi: the same IVR as a classic AGI script, with pyst2's AGI class on stdin/stdout."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pytest

from ccd.agi.classic import main
from ccd.ivr.flow import BUILTIN_FLOWS
from ccd.sim.agi_client import HANG_UP, HANGUP, SUCCESS, ScriptedChannel, run_classic_agi

#: ccd-agi runs as a separate process, in real time
pytestmark = pytest.mark.realtime

ARGV = [sys.executable, "-m", "ccd.agi.classic"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.fixture
def open_flows(tmp_path: Path) -> str:
    """The built-in flows with the support calendar open around the clock.

    The process runs on the real clock, so the shipped calendar (Shanghai office hours)
    would send the caller to the closed branch at night and on Sundays.
    """
    text = (BUILTIN_FLOWS / "support.toml").read_text()
    always = "\n".join(f'{d} = ["00:00-24:00"]' for d in DAYS)
    text, n = re.subn(r"\[calendars\.support\]\n.*?(?=\n\[nodes\.)",
                      f'[calendars.support]\ntimezone = "UTC"\n{always}\nholidays = []\n',
                      text, flags=re.S)
    assert n == 1, "support.toml's calendar section moved"
    (tmp_path / "support.toml").write_text(text)
    return str(tmp_path)


async def test_classic_agi_runs_the_ivr_in_a_process(open_flows: str) -> None:
    ch = ScriptedChannel(["2", "3"])
    status = await run_classic_agi([*ARGV, "--flows", open_flows, "ivr"], ch,
                                   request="ccd-agi")
    assert status == SUCCESS
    v = ch.variables
    assert (v["CCD_QUEUE"], v["CCD_LANG"]) == ("support", "en")
    assert v["CCD_IVR_PATH"].startswith("identify(not_found)>language=2>welcome>hours(open)")


async def test_classic_agi_hangup_by_sighup(open_flows: str) -> None:
    ch = ScriptedChannel(["2", HANG_UP])  # hangs up in the main menu
    status = await run_classic_agi([*ARGV, "--flows", open_flows, "ivr"], ch,
                                   request="ccd-agi")
    assert status == HANGUP
    # after SIGHUP the script still sets the path (allowed on a dead channel) and ends
    assert ch.variables["CCD_IVR_PATH"].endswith("main(hangup)")
    assert "CCD_QUEUE" not in ch.variables


async def test_classic_agi_flow_from_arguments(tmp_path: Path) -> None:
    flows = Path(__file__).resolve().parents[1] / "ivr" / "flows"
    ch = ScriptedChannel(["9"])
    status = await run_classic_agi([*ARGV, "--flows", str(flows), "ivr", "desk"], ch)
    assert status == SUCCESS
    assert ch.variables["CCD_QUEUE"] == "desk"


def test_broken_deployment_still_sends_the_caller_to_the_fallback(tmp_path: Path) -> None:
    """Flows that do not load: ccd-agi answers with the fallback instead of dying."""
    (tmp_path / "bad.toml").write_text("[flow]\nstart = 'x'\n")
    headers = "agi_request: ccd-agi\nagi_channel: PJSIP/2000-00000001\n" \
              "agi_uniqueid: 1795465016.3\nagi_arg_1: ivr\n\n"
    stdin = io.StringIO(headers + "200 result=1\n" + "200 result=0\n" * 3)
    stdout = io.StringIO()
    assert main(["--flows", str(tmp_path), "ivr"], stdin=stdin, stdout=stdout) == 0
    lines = stdout.getvalue().splitlines()
    assert lines[0].startswith('SET VARIABLE CCD_AGI_ERROR "FlowError: ')
    assert "bad.toml" in lines[0]
    assert lines[1:] == ["SET CONTEXT ccd-fallback", "SET EXTENSION s", "SET PRIORITY 1"]
