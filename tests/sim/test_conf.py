"""One configuration for the simulator and a real Asterisk: the .conf parser, the dialplan
language, and asterisk-conf/ checked for completeness and dangling references."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_support import CAPTURE_CONFIG

from ccd.sim.conf import ConfError, parse_file, parse_text
from ccd.sim.dialplan import evaluate, expand, load_dialplan, pattern_matches
from ccd.sim.pbxconf import check_references, load_pbx_config, parse_callerid
from ccd.sim.simulator import default_config_dir

CONF = default_config_dir()
FILES = (
    "manager.conf",
    "pjsip.conf",
    "extensions.conf",
    "queues.conf",
    "musiconhold.conf",
    "modules.conf",
    "features.conf",
)


def test_templates_repeated_sections_and_comments() -> None:
    conf = parse_text(
        "[tmpl](!)\ntype = endpoint ; comment\ncontext = x\n"
        '[1001](tmpl)\ncontext = agents\ncallerid = "A\\;B" <1001>\n'
        "[1001]\ntype = aor\n;-- a block\ncomment --;\nmax_contacts => 2\n"
    )
    assert [s.name for s in conf.real()] == ["1001", "1001"]
    ep, aor = conf.all("1001")
    assert ep.templates == ["tmpl"]
    assert ep.items == [
        ("type", "endpoint"),
        ("context", "x"),
        ("context", "agents"),
        ("callerid", '"A;B" <1001>'),
    ]
    assert ep.get("context") == "agents"
    assert aor.get("max_contacts") == "2"
    assert conf.section("tmpl") is None


def test_include_and_errors(tmp_path: Path) -> None:
    (tmp_path / "extra.conf").write_text("[b]\nk = v\n")
    (tmp_path / "main.conf").write_text("[a]\nx = 1\n#include extra.conf\n")
    conf = parse_file(tmp_path / "main.conf")
    assert [s.name for s in conf.real()] == ["a", "b"]
    with pytest.raises(ConfError, match="outside of any"):
        parse_text("x = 1\n")
    with pytest.raises(ConfError, match="template 'nope' is not defined"):
        parse_text("[a](nope)\n")
    with pytest.raises(ConfError, match="unterminated"):
        parse_text("[a\n")
    with pytest.raises(ConfError, match="no such file"):
        parse_file(tmp_path / "missing.conf")


def test_dialplan_patterns_priorities_and_expressions() -> None:
    plan = load_dialplan(
        parse_text(
            "[c]\nexten => _100X,1,NoOp(x)\n same => n(two),Set(A=1)\n same => n,Hangup()\n"
            "exten => 1001,1,NoOp(exact)\ninclude => d\n[d]\nexten => _9.,1,NoOp(out)\n"
        )
    )
    assert plan.find("c", "1001").steps[1].data == "exact"
    assert plan.find("c", "1002").name == "_100X"
    assert plan.resolve_priority("c", "1002", "two") == 2
    assert plan.find("c", "9123").name == "_9."
    assert plan.find("c", "8") is None
    assert pattern_matches("_[1-3]XN", "159") and not pattern_matches("_[1-3]XN", "151")

    def look(name: str) -> str | None:
        return {"A": "5", "NAME": "support"}.get(name)

    def call(fn: str, args: str) -> str:
        return {"LEN": str(len(args))}.get(fn, "")

    assert expand("${A}-${NAME:0:3}-${LEN(${NAME})}", look, call) == "5-sup-7"
    assert expand("$[${A} + 2]", look, call) == "7"
    assert evaluate('"support" = "support" & 3 > 2') == "1"
    assert evaluate("0 ? yes : no") == "no"
    assert parse_callerid('"Agent Alice" <1001>') == ("Agent Alice", "1001")


@pytest.mark.parametrize("directory", [CONF, CAPTURE_CONFIG], ids=["asterisk-conf", "captures"])
def test_every_reference_resolves(directory: Path) -> None:
    cfg = load_pbx_config(directory)
    assert check_references(cfg) == []


def test_check_references_finds_dangling_ones(tmp_path: Path) -> None:
    for name in FILES:
        (tmp_path / name).write_text((CONF / name).read_text())
    (tmp_path / "extensions.conf").write_text(
        (CONF / "extensions.conf").read_text()
        + "\n[broken]\nexten => s,1,Queue(nosuchqueue)\n same => n,Goto(nowhere,s,1)\n"
        " same => n,Dial(PJSIP/9999)\ninclude => missing-ctx\n"
    )
    problems = check_references(load_pbx_config(tmp_path))
    assert any("no such queue nosuchqueue" in p for p in problems)
    assert any("context nowhere does not exist" in p for p in problems)
    assert any("PJSIP/9999: no such PJSIP endpoint" in p for p in problems)
    assert any("includes missing context missing-ctx" in p for p in problems)


def test_asterisk_conf_has_what_the_call_centre_needs() -> None:
    assert {f for f in FILES if (CONF / f).exists()} == set(FILES)
    cfg = load_pbx_config(CONF)
    manager = cfg.manager
    assert (manager.bindaddr, manager.port, manager.timestampevents) == ("127.0.0.1", 5038, True)
    ccd = manager.users["ccd"]
    assert ccd.permit == ["127.0.0.1/255.255.255.255"]
    assert "all" not in ccd.read and "all" not in ccd.write and "command" not in ccd.write
    assert {"call", "agent", "dialplan", "agi", "system"} <= ccd.read
    assert {"call", "agent", "originate"} <= ccd.write
    assert {f"100{i}" for i in range(1, 6)} | {"2000", "trunk"} <= set(cfg.endpoints)
    assert all(cfg.endpoints[f"100{i}"].context == "agents" for i in range(1, 5))
    # only supervisors' phones reach the spy codes
    assert cfg.endpoints["1005"].context == "supervisors"
    assert "ccd-spy" not in cfg.dialplan.contexts["agents"].includes
    assert "ccd-spy" in cfg.dialplan.contexts["supervisors"].includes
    assert cfg.endpoints["trunk"].context == cfg.endpoints["2000"].context == "from-trunk"
    plan = cfg.dialplan
    for ctx in (
        "from-trunk",
        "agents",
        "survey",
        "ccd-fallback",
        "ccd-outbound",
        "ccd-queues",
        "ccd-transfer",
        "ccd-spy",
        "outbound-msg",
        "ccd-after-queue",
        "ccd-overflow",
        "ccd-hold",
        "ccd-transfer-out",
    ):
        assert ctx in plan.contexts, ctx
    inbound = plan.find("from-trunk", "5551000")
    apps = [s.app for s in inbound.steps.values()]
    assert apps[:5] == ["NoOp", "Set", "Set", "Answer", "AGI"]
    assert inbound.steps[5].data == "agi://${CCD_AGI}/ivr"
    # ccd records queue calls itself on answer (per-queue policy), not the inbound dialplan;
    # the fallback path (ccd may be down) records as a safety net
    assert "MixMonitor" not in apps and "Queue" in apps
    fallback = [s.app for s in plan.find("ccd-fallback", "s").steps.values()]
    assert "MixMonitor" in fallback
    assert not any(q.members for q in cfg.queues.values())  # agents log in at run time
    for code in ("*21", "*22", "*23", "*24"):
        assert plan.find("agents", code) is not None
    # spy codes: 8 + extension listens, 81 + extension whispers, 82 + extension barges
    for code, opts in (("81001", "qE"), ("811001", "qwE"), ("821001", "qBE")):
        step = plan.find("ccd-spy", code).steps[1]
        assert step.app == "ChanSpy" and step.data.endswith(f",{opts}"), (code, step.data)
    strategies = {q.strategy for q in cfg.queues.values()}
    assert {"rrmemory", "leastrecent", "linear", "ringall"} <= strategies
    assert all(not q.ringinuse and q.wrapuptime > 0 for q in cfg.queues.values())
    assert cfg.features.atxfer == "*2" and cfg.features.blindxfer == "#1"
    assert "default" in cfg.moh_classes
