"""Asterisk loads asterisk-conf/ cleanly, with every prompt ccd plays installed."""

from __future__ import annotations

import re

from conftest import Rig

from ccd import prompts


def test_asterisk_log_has_no_error_or_warning_after_start(rig: Rig) -> None:
    assert rig.boot_log, "Asterisk wrote no messages.log"
    bad = [line for line in rig.boot_log if re.search(r"\] (ERROR|WARNING)\[", line)]
    assert not bad, "Asterisk complained while loading asterisk-conf/:\n" + "\n".join(bad)


def test_every_module_asterisk_conf_asks_for_is_running(rig: Rig) -> None:
    wanted = re.findall(r"^(?:load|require) => (\S+)\.so", (rig.pbx.etc / "modules.conf")
                        .read_text(), re.M)
    shown = rig.pbx.cli("module show")
    missing = [m for m in wanted if f"{m}.so" not in shown]
    assert not missing, f"modules not running: {missing}"


def test_ccd_finds_every_prompt_where_asterisk_looks(rig: Rig) -> None:
    r = rig.ccd.cli("prompts", "check", "--data-dir", str(rig.pbx.root / "data"), "--json")
    assert '"missing": []' in r.stdout
    # and Asterisk agrees: a shipped prompt resolves for both languages
    sounds = rig.pbx.sounds
    for lang in ("en", "zh"):
        assert prompts.resolve(sounds, "ccd/sorry", lang) is not None
