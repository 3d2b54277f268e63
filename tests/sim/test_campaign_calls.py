"""Campaign calls through the trunk, against the real capture F7 (real-3): a number that
answers 486 Busy Here, and an answered call whose dialplan needs an application whose module
is not loaded (``No application 'AMD'``). Also the modules themselves: ModuleCheck,
``module load|unload``, modules.conf with autoload and a module that declines without its
configuration file, and ShowDialPlan."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sim_support import CAPTURES, AmiTestClient, compare, tokens

from ccd.ami.capture import read_capture
from ccd.ami.parser import FrameSplitter, parse_frame
from ccd.sim.ami.cli import run_command
from ccd.sim.modules import Modules, base_name, module_of
from ccd.sim.pbxconf import load_pbx_config
from ccd.sim.phones import PhoneProfile
from ccd.sim.simulator import SimOptions, Simulator, default_config_dir

F7 = CAPTURES / "real-3" / "F7-campaign-progressive" / "F7-campaign-progressive.ami"
SCALE = 20.0

pytestmark = pytest.mark.timeout(60)


def f7_frames() -> list[dict[str, str]]:
    splitter = FrameSplitter()
    return [parse_frame(raw) for raw in splitter.feed(read_capture(F7))
            if not raw.startswith(b"Asterisk Call Manager/")]


def call_slice(frames: list[dict[str, str]], channel: str, action_id: str
               ) -> list[dict[str, str]]:
    """Every frame of one originated call: its channel's events (Dest* for dial events)
    from Newchannel to Hangup, and the OriginateResponse of its Originate."""
    out = []
    for f in frames:
        if f.get("Event") == "OriginateResponse":
            if f.get("ActionID") == action_id:
                out.append(f)
        elif channel in (f.get("Channel"), f.get("DestChannel")):
            out.append(f)
    return out


def campaign_originate(number: str, amd: bool, campaign: int, attempt: int
                       ) -> dict[str, str | list[str]]:
    """The Originate ccd's dialer sent in F7 (ccd/campaigns/model.py)."""
    return dict(Channel=f"PJSIP/{number}@trunk", Context="ccd-campaign", Exten="s",
                Priority="1", Timeout="15000", CallerID="<5551000>", Async="true",
                Variable=[f"CCD_CAMPAIGN={campaign}", f"CCD_ATTEMPT={attempt}", "CCD_TENANT=2",
                          "CCD_QUEUE=overflow", f"CCD_AMD={1 if amd else 0}",
                          f"CCD_WAIT={1 if amd else 2}", "CCD_ABANDON_MSG=vm-goodbye"])


def conf_copy(tmp_path: Path, modules: str | None = None, amd_conf: bool = True) -> Path:
    d = tmp_path / "conf"
    shutil.copytree(default_config_dir(), d)
    if modules is not None:
        (d / "modules.conf").write_text(modules)
    if not amd_conf:
        (d / "amd.conf").unlink()
    return d


async def run_call(config_dir: Path, number: str, amd: bool, trunk: PhoneProfile,
                   decline: bool = False, ids: tuple[int, int] = (1, 2)
                   ) -> list[dict[str, str]]:
    """Originate one campaign call and return the frames of its channel."""
    opts = SimOptions(config_dir=config_dir, ami_port=0, time_scale=SCALE,
                      phones={"trunk": trunk})
    async with Simulator(opts) as sim:
        ami = await AmiTestClient.connect("127.0.0.1", sim.ami_port)
        await ami.login()
        start = len(ami.frames)
        resp = await ami.action("Originate", **campaign_originate(number, amd, *ids))
        aid = resp.get("ActionID")
        if decline:
            ringing = await ami.wait_for(lambda f: f.event == "Newstate"
                                         and f.get("ChannelState") == "5", 10, start)
            await sim.clock.sleep(1.0)
            ch = sim.engine.find_channel(ringing.get("Channel"))
            assert ch is not None
            assert sim.phone("trunk").hangup(ch)  # the UA declines: 486 Busy Here
        hangup = await ami.wait_for(lambda f: f.event == "Hangup", 20, start)
        await ami.wait_for(lambda f: f.event == "OriginateResponse"
                           and f.get("ActionID") == aid, 10, start)
        await ami.close()
    frames = [f.fields for f in ami.frames[start:] if f.event]
    return call_slice(frames, hangup.get("Channel"), aid)


async def test_busy_number_is_reason_0_with_dialend_busy_and_cause_17() -> None:
    """Contact 12 of F7: the trunk answers 486 while ringing. chan_pjsip hangs the channel
    up (HangupRequest Cause 17 TechCause 486), DialEnd says BUSY, and the OriginateResponse
    Reason is 0, not 5: a busy SIP number is not a busy indication."""
    sim = await run_call(default_config_dir(), "15557770012", False,
                         PhoneProfile(answer="manual"), decline=True)
    cap = call_slice(f7_frames(), "PJSIP/trunk-00000015", "ccd-26790-149")
    problems = compare(tokens(sim), tokens(cap))
    assert not problems, "\n".join(problems)
    [resp] = [f for f in sim if f.get("Event") == "OriginateResponse"]
    assert (resp["Response"], resp["Reason"], resp["Uniqueid"]) == ("Failure", "0", "<unknown>")
    [req] = [f for f in sim if f.get("Event") == "HangupRequest"]
    [end] = [f for f in sim if f.get("Event") == "Hangup"]
    assert (req["Cause"], req["TechCause"]) == ("17", "486")
    assert (end["Cause"], end["Cause-txt"], end["TechCause"]) == ("17", "User busy", "486")


async def test_busy_profile_refuses_the_same_way() -> None:
    sim = await run_call(default_config_dir(), "15557770012", False,
                         PhoneProfile(answer="busy"))
    names = [f.get("Event") for f in sim if f.get("Event") not in ("VarSet", "DialState")]
    assert names[-4:] == ["HangupRequest", "DialEnd", "OriginateResponse", "Hangup"]
    assert [f["DialStatus"] for f in sim if f.get("Event") == "DialEnd"] == ["BUSY"]
    assert [f["Reason"] for f in sim if f.get("Event") == "OriginateResponse"] == ["0"]


async def test_no_answer_hangup_carries_tech_cause_480() -> None:
    sim = await run_call(default_config_dir(), "15557770013", False,
                         PhoneProfile(answer="never"), ids=(1, 3))
    [end] = [f for f in sim if f.get("Event") == "Hangup"]
    assert (end["Cause"], end.get("TechCause")) == ("19", "480")
    assert [f["Reason"] for f in sim if f.get("Event") == "OriginateResponse"] == ["3"]
    cap = call_slice(f7_frames(), "PJSIP/trunk-00000016", "ccd-26790-151")
    assert not compare(tokens(sim), tokens(cap))


MODULES_WITHOUT_AMD = """[modules]
autoload = no
load => pbx_config.so
load => chan_pjsip.so
load => app_queue.so
load => app_playback.so
load => res_musiconhold.so
"""


async def test_missing_application_hangs_up_like_asterisk(tmp_path: Path) -> None:
    """camp2 of F7 (AMD on, app_amd not loaded): the contact answers, the dialplan reaches
    AMD(), Asterisk logs ``No application 'AMD'`` and drops the call at once - no Newexten
    for AMD, SoftHangupRequest Cause 16, the restored AppDial2 at priority 3, Hangup Cause
    0 - the same events as the capture."""
    conf = conf_copy(tmp_path, MODULES_WITHOUT_AMD)
    sim = await run_call(conf, "15557770014", True, PhoneProfile(answer="auto"), ids=(2, 5))
    cap = call_slice(f7_frames(), "PJSIP/trunk-00000018", "ccd-26790-179")
    problems = compare(tokens(sim), tokens(cap))
    assert not problems, "\n".join(problems)
    apps = [f["Application"] for f in sim if f.get("Event") == "Newexten"]
    assert apps == ["AppDial2", "NoOp", "GotoIf", "AppDial2"]
    [end] = [f for f in sim if f.get("Event") == "Hangup"]
    assert (end["Cause"], end["Cause-txt"]) == ("0", "Unknown")


async def test_amd_runs_when_its_module_is_loaded() -> None:
    """With asterisk-conf's modules.conf (load => app_amd.so, amd.conf present) AMD()
    exists: a person is HUMAN and the call goes on to the queue."""
    sim = await run_call(default_config_dir(), "15557770014", True,
                         PhoneProfile(answer="auto"))
    sets = {f["Variable"]: f["Value"] for f in sim if f.get("Event") == "VarSet"}
    assert sets["AMDSTATUS"] == "HUMAN" and sets["CCD_AMD_STATUS"] == "HUMAN"
    apps = [f["Application"] for f in sim if f.get("Event") == "Newexten"]
    assert apps[:5] == ["AppDial2", "NoOp", "GotoIf", "AMD", "Set"] and "Queue" in apps


async def test_answering_machine_is_detected() -> None:
    sim = await run_call(default_config_dir(), "15557770014", True,
                         PhoneProfile(answer="auto", machine=True))
    sets = {f["Variable"]: f["Value"] for f in sim if f.get("Event") == "VarSet"}
    assert sets["AMDSTATUS"] == "MACHINE" and sets["AMDCAUSE"].startswith("LONGGREETING")
    assert "Queue" not in [f["Application"] for f in sim if f.get("Event") == "Newexten"]


# ------------------------------------------------------------------ modules


def test_modules_conf_autoload_no_loads_exactly_the_listed_modules() -> None:
    mods = Modules.from_config(load_pbx_config(default_config_dir()))
    for name in ("app_amd", "app_queue", "app_playback", "res_agi", "chan_pjsip"):
        assert mods.is_loaded(name) and mods.is_loaded(name + ".so")
    assert mods.is_loaded("APP_AMD.SO")  # case-insensitive, as find_resource
    assert not mods.is_loaded("app_amd.s") and not mods.is_loaded("")
    assert not mods.is_loaded("chan_iax2") and not mods.is_loaded("app_festival")
    assert mods.has_app("AMD") and mods.has_app("queue") and mods.has_app("NoOp")


def test_autoload_yes_and_a_module_without_its_config_declines(tmp_path: Path) -> None:
    """The rig of F7: autoload = yes and no amd.conf, so app_amd declined to load."""
    conf = conf_copy(tmp_path, "[modules]\nautoload = yes\nnoload => app_voicemail.so\n",
                     amd_conf=False)
    mods = Modules.from_config(load_pbx_config(conf))
    assert not mods.is_loaded("app_amd") and not mods.has_app("AMD")
    assert not mods.is_loaded("app_voicemail") and not mods.has_app("VoiceMail")
    assert mods.is_loaded("app_queue") and mods.has_app("Queue")
    assert not mods.load("app_amd.so")  # still no amd.conf
    (conf / "amd.conf").write_text("[general]\n")
    assert mods.load("app_amd.so") and mods.has_app("AMD")


def test_application_modules() -> None:
    assert module_of("AMD") == "app_amd" and module_of("queue") == "app_queue"
    assert module_of("Playback") == "app_playback" and module_of("AGI") == "res_agi"
    assert module_of("GotoIf") == "" and module_of("Set") == ""  # the PBX core
    assert module_of("SomethingElse") is None
    assert base_name(" App_Amd.so ") == "app_amd"


async def test_module_check_show_dialplan_and_cli_module_unload() -> None:
    opts = SimOptions(config_dir=default_config_dir(), ami_port=0, time_scale=SCALE)
    async with Simulator(opts) as sim:
        ami = await AmiTestClient.connect("127.0.0.1", sim.ami_port)
        await ami.login()
        ok = await ami.action("ModuleCheck", Module="app_amd")
        assert (ok.get("Response"), ok.get("Version")) == ("Success", "")
        ok = await ami.action("ModuleCheck", Module="app_amd.so")
        assert ok.get("Response") == "Success"
        # the operator unloads it (CLI `module unload app_amd.so`)
        done, out = await run_command(sim.ami, "module unload app_amd.so")
        assert done and out == ["Unloaded app_amd.so"]
        again, out = await run_command(sim.ami, "module unload app_amd.so")
        assert not again and out == ["Unable to unload resource app_amd.so"]
        for name in ("app_amd", "app_amd.so", "app_nothing", ""):
            no = await ami.action("ModuleCheck", Module=name)
            assert (no.get("Response"), no.get("Message")) == ("Error", "Module not loaded")
        _, out = await run_command(sim.ami, "core show application AMD")
        assert out == ["Your application(s) is (are) not registered"]
        done, out = await run_command(sim.ami, "module load app_amd.so")
        assert done and out == ["Loaded app_amd.so"]
        assert (await ami.action("ModuleCheck", Module="app_amd")).get("Response") == "Success"

        resp, items = await ami.collect("ShowDialPlan", "ShowDialPlanComplete",
                                        Context="ccd-campaign")
        assert resp.get("Message") == "DialPlan list will follow"
        steps = [(f.get("Priority"), f.get("Application")) for f in items[:-1]]
        assert ("3", "AMD") in steps and ("6", "Queue") in steps
        assert [f.get("ExtensionLabel") for f in items if f.get("Priority") == "6"] == ["agent"]
        assert items[-1].get("ListItems") == str(len(items) - 1)
        missing = await ami.action("ShowDialPlan", Context="nope-ctx")
        assert (missing.get("Response"), missing.get("Message")) == (
            "Error", "Did not find context nope-ctx")
        await ami.close()


async def test_restart_loads_the_modules_of_modules_conf_again() -> None:
    opts = SimOptions(config_dir=default_config_dir(), ami_port=0, time_scale=SCALE)
    async with Simulator(opts) as sim:
        assert sim.engine.modules.unload("app_amd")
        assert not sim.engine.modules.has_app("AMD")
        await sim.restart(0.05)
        assert sim.engine.modules.has_app("AMD")


def test_asterisk_conf_loads_every_application_its_dialplan_uses() -> None:
    """modules.conf (autoload = no) must load the module of every application that
    extensions.conf runs, or calls die with ``No application`` like camp2 of F7."""
    cfg = load_pbx_config(default_config_dir())
    mods = Modules.from_config(cfg)
    used = {s.app for c in cfg.dialplan.contexts.values() for e in c.extensions.values()
            for s in e.steps.values()}
    assert {"AMD", "Queue", "Playback", "AGI"} <= used
    unknown = sorted(a for a in used if module_of(a) is None)
    assert not unknown, f"applications the module table does not know: {unknown}"
    missing = sorted(f"{a} ({module_of(a)})" for a in used if not mods.has_app(a))
    assert not missing, f"modules.conf does not load: {missing}"


async def test_a_number_only_caller_id_keeps_the_trunks_name() -> None:
    """ccd's campaigns originate with CallerID ``<5551000>``: Asterisk's ast_set_callerid
    changes only the number, so the trunk channel still says "Support Line" (what the
    campaign screen pop used to show), and the OriginateResponse reports the Originate's
    own parts (name <unknown>), as in F7."""
    sim = await run_call(default_config_dir(), "15557770011", False,
                         PhoneProfile(answer="auto"), ids=(1, 1))
    [new] = [f for f in sim if f.get("Event") == "Newchannel"]
    cap = call_slice(f7_frames(), "PJSIP/trunk-00000013", "ccd-26790-145")
    [cap_resp] = [f for f in cap if f.get("Event") == "OriginateResponse"]
    [resp] = [f for f in sim if f.get("Event") == "OriginateResponse"]
    assert (resp["CallerIDNum"], resp["CallerIDName"]) == (
        cap_resp["CallerIDNum"], cap_resp["CallerIDName"]) == ("5551000", "<unknown>")
    queued = [f for f in sim if f.get("Event") == "QueueCallerJoin"]
    [cap_queued] = [f for f in cap if f.get("Event") == "QueueCallerJoin"]
    assert (new["CallerIDName"], new["CallerIDNum"]) == ("Support Line", "5551000")
    assert [(f["CallerIDName"], f["CallerIDNum"]) for f in queued] == [
        (cap_queued["CallerIDName"], cap_queued["CallerIDNum"])] == [("Support Line",
                                                                      "5551000")]
