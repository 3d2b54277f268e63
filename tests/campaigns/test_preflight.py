"""The dialplan check before a campaign dials: ShowDialPlan and ModuleCheck over ccd's real
AMI client, against the simulated PBX (which answers both like Asterisk 22.10.1 did on the
real PBX: ``Response: Error`` / ``Module not loaded``, ``Did not find context X``)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ccd.ami.client import AmiClient
from ccd.campaigns import preflight
from ccd.campaigns.preflight import DialplanCheck, module_of, needed_apps
from ccd.config import AmiConfig
from ccd.sim import modules as sim_modules
from ccd.sim.simulator import SimOptions, Simulator

PBX = Path(__file__).resolve().parent / "pbx"
pytestmark = pytest.mark.timeout(60)


class Rig:
    def __init__(self, sim: Simulator, client: AmiClient) -> None:
        self.sim, self.client = sim, client
        self.now = time.time()
        self.check = DialplanCheck(lambda: self.client, lambda: self.now)


async def start_rig(config_dir: Path, user: str = "ccd") -> tuple[Simulator, AmiClient]:
    sim = Simulator(SimOptions(config_dir=config_dir, ami_port=0, time_scale=10.0))
    await sim.start()
    client = AmiClient(AmiConfig(port=sim.ami_port, username=user, backoff_initial=0.05,
                                 backoff_max=0.2), lambda raw, now: None)
    client.start()
    await client.wait_connected(5)
    return sim, client


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sim, client = await start_rig(PBX)
    try:
        yield Rig(sim, client)
    finally:
        await client.stop()
        await sim.stop()


def test_needed_applications() -> None:
    apps = ["NoOp", "GotoIf", "AMD", "Set", "GotoIf", "Queue", "Set", "Playback", "Hangup"]
    assert needed_apps(apps, amd=True) == ["NoOp", "GotoIf", "AMD", "Set", "Queue",
                                           "Playback", "Hangup"]
    assert "AMD" not in needed_apps(apps, amd=False)
    assert [module_of(a) for a in ("AMD", "Queue", "Playback", "Dial", "AGI", "GotoIf")] == \
        ["app_amd", "app_queue", "app_playback", "app_dial", "res_agi", ""]
    assert module_of("SomeCustomApp") is None


def test_ccd_and_the_simulator_agree_on_which_module_has_which_application() -> None:
    apps = {a for apps in sim_modules.MODULE_APPS.values() for a in apps}
    apps |= {"NoOp", "Set", "GotoIf", "Answer", "Hangup", "Wait", "Goto", "BackGround"}
    for app in sorted(apps):
        mine = module_of(app)
        if mine is not None:
            assert mine == sim_modules.module_of(app), app
    for app in preflight.APP_MODULES:
        assert sim_modules.module_of(app) in (None, preflight.APP_MODULES[app]), app


async def test_the_campaign_context_with_and_without_amd(rig: Rig) -> None:
    v = await rig.check.verdict("ccd-campaign", amd=True)
    assert v.ok and v.problem == "" and {"AMD", "Queue", "Playback"} <= set(v.apps)
    # the operator unloads app_amd: the verdict holds for its connection a while ...
    assert rig.sim.engine.modules.unload("app_amd.so")
    assert (await rig.check.verdict("ccd-campaign", amd=True)).ok
    # ... and not past RECHECK (or after a dropped call invalidates it)
    rig.now += preflight.RECHECK + 1
    v = await rig.check.verdict("ccd-campaign", amd=True)
    assert not v.ok and v.missing == ("AMD (app_amd)",)
    assert "AMD (app_amd)" in v.problem and "ccd-campaign" in v.problem
    # without AMD the same context is fine
    assert (await rig.check.verdict("ccd-campaign", amd=False)).ok
    rig.sim.engine.modules.load("app_amd")
    assert not (await rig.check.verdict("ccd-campaign", amd=True)).ok  # cached
    rig.check.invalidate()
    assert (await rig.check.verdict("ccd-campaign", amd=True)).ok


async def test_every_module_a_context_needs_is_checked(rig: Rig) -> None:
    rig.sim.engine.modules.unload("app_queue")
    rig.sim.engine.modules.unload("app_playback")
    v = await rig.check.verdict("ccd-campaign", amd=False)
    assert v.missing == ("Queue (app_queue)", "Playback (app_playback)")
    assert (await rig.check.verdict("ccd-campaign-preview", amd=False)).ok  # Set, Dial
    notify = await rig.check.verdict("ccd-notify", amd=False)
    assert notify.missing == ("Queue (app_queue)",)
    rig.sim.engine.modules.unload("res_agi")
    rig.check.invalidate()
    notify = await rig.check.verdict("ccd-notify", amd=False)
    assert notify.missing == ("AGI (res_agi)", "Queue (app_queue)")


async def test_a_context_asterisk_does_not_have(rig: Rig) -> None:
    v = await rig.check.verdict("ccd-campaign-typo", amd=False)
    assert not v.ok and v.problem == "Asterisk has no dialplan context ccd-campaign-typo"


async def test_every_reconnect_checks_again(rig: Rig) -> None:
    """An Asterisk restart is a new AMI connection: what was true before is asked again
    (here the PBX comes back without app_amd, e.g. amd.conf was removed)."""
    assert (await rig.check.verdict("ccd-campaign", amd=True)).ok
    rig.sim.boot_hooks.append(lambda engine: engine.modules.unload("app_amd"))
    before = rig.client.stats.connects
    await rig.sim.restart(0.1)

    async def reconnected() -> bool:
        return rig.client.stats.connects > before and rig.client.connected

    deadline = time.monotonic() + 10
    while not await reconnected():
        assert time.monotonic() < deadline, "no reconnect"
        await asyncio.sleep(0.05)
    v = await rig.check.verdict("ccd-campaign", amd=True)  # same clock: only the link changed
    assert not v.ok and v.missing == ("AMD (app_amd)",)


async def test_an_ami_user_without_the_system_class_cannot_check(tmp_path: Path) -> None:
    conf = tmp_path / "pbx"
    shutil.copytree(PBX, conf)
    with (conf / "manager.conf").open("a") as f:
        f.write("\n[nosys]\nsecret = ccdsecret\nread = all\n"
                "write = call,agent,originate,reporting\n")
    sim, client = await start_rig(conf, user="nosys")
    try:
        check = DialplanCheck(lambda: client, time.time)
        v = await check.verdict("ccd-campaign", amd=True)
        assert not v.ok and "ModuleCheck: Permission denied" in v.problem
        assert "write = system" in v.problem
    finally:
        await client.stop()
        await sim.stop()


def test_verdicts_are_plain_data() -> None:
    v = preflight.Verdict(False, "ccd-campaign", True, "Asterisk lacks AMD (app_amd)",
                          ("AMD (app_amd)",))
    d: dict[str, Any] = v.to_dict()
    assert d["ok"] is False and d["missing"] == ["AMD (app_amd)"] and d["context"] == \
        "ccd-campaign"
