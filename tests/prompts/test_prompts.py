"""ccd's prompts: the catalogue covers everything played, install writes real 8 kHz WAV
files where Asterisk looks, the check finds what is missing the way Asterisk would."""

from __future__ import annotations

import re
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from ccd import prompts
from ccd.campaigns.agi import DEFAULT_PROMPTS
from ccd.ivr.flow import BUILTIN_FLOWS, load_flows
from ccd.sim.conf import parse_file

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "asterisk-conf"
CCD = [sys.executable, "-m", "ccd"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("astdata")
    report = prompts.install(data)
    assert len(report.written) == len(prompts.catalogue()) and not report.kept
    return data


def _dialplan_sounds() -> set[str]:
    """Every literal sound extensions.conf and features.conf play."""
    text = (CONF / "extensions.conf").read_text()
    found = set(re.findall(r"Playback\(([a-z0-9/_-]+)\)", text))
    found |= set(re.findall(r":(ccd/[a-z0-9-]+)\)\}\)", text))  # ${IF(...?x:ccd/...)}
    features = parse_file(CONF / "features.conf").section("general")
    assert features is not None
    for key in ("transferannouncesound", "xfersound", "xferfailsound", "transferretrysound",
                "transferinvalidsound", "courtesytone", "pickupsound", "pickupfailsound"):
        found.add(str(features.get(key)))
    return found


def test_the_catalogue_covers_every_sound_ccd_plays() -> None:
    shipped = prompts.shipped_names()
    need = prompts.needed_by_ccd(load_flows(BUILTIN_FLOWS))
    names = {n for items in need.by_user.values() for n, _ in items}
    assert names <= set(shipped), names - set(shipped)
    assert _dialplan_sounds() <= set(prompts.DIALPLAN_SOUNDS), \
        _dialplan_sounds() - set(prompts.DIALPLAN_SOUNDS)
    assert set(DEFAULT_PROMPTS.values()) <= set(shipped)
    # by-language sounds exist in both languages
    for name, langs in shipped.items():
        if langs != {""}:
            assert langs == {"en", "zh"}, (name, langs)


def test_install_writes_8khz_mono_wav_files_and_keeps_existing_ones(installed: Path) -> None:
    welcome = installed / "sounds/ccd/en/welcome.wav"
    with wave.open(str(welcome)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() > 8000 * 0.5  # a spoken sentence, not an empty file
    assert (installed / "moh/ccd/hold-1.wav").stat().st_size > 8000
    assert (installed / "sounds/zh/ccd/sorry.wav").exists()
    mine = installed / "sounds/ccd/zh/goodbye.wav"
    before = mine.read_bytes()
    mine.write_bytes(before[:100])  # "a studio recording"
    again = prompts.install(installed)
    assert not again.written and mine.read_bytes() == before[:100]
    mine.write_bytes(before)


def test_resolve_follows_asterisk_s_language_order(tmp_path: Path) -> None:
    s = tmp_path / "sounds"
    (s / "en/ccd").mkdir(parents=True)
    (s / "zh/ccd").mkdir(parents=True)
    (s / "en/ccd/sorry.wav").write_bytes(b"x")
    (s / "zh/ccd/hello.gsm").write_bytes(b"x")
    assert prompts.resolve(s, "ccd/sorry", "zh") == s / "en/ccd/sorry.wav"  # default: en
    assert prompts.resolve(s, "ccd/hello", "zh_CN") == s / "zh/ccd/hello.gsm"  # dialect off
    assert prompts.resolve(s, "ccd/hello", "en") is None
    assert prompts.resolve(s, "../etc/passwd", "en") is None


def test_check_names_each_missing_prompt_and_its_user(installed: Path, tmp_path: Path) -> None:
    flows = load_flows(BUILTIN_FLOWS)
    assert prompts.check(installed / "sounds", prompts.needed_by_ccd(flows)) == []
    missing = prompts.check(tmp_path, prompts.needed_by_ccd(flows))
    assert "flow support: ccd/en/welcome (language en)" in missing
    assert "dialplan: ccd/sorry (language zh)" in missing
    assert "surveys and notifications: ccd/survey-rate (language en)" in missing
    lines: list[str] = []
    with pytest.raises(prompts.PromptError, match="prompts missing under"):
        prompts.startup_check(tmp_path, flows, lines.append)
    prompts.startup_check(tmp_path / "elsewhere", flows, lines.append)  # not on this host
    assert lines and "cannot check" in lines[0]


def test_cli_check_and_install(installed: Path, tmp_path: Path) -> None:
    ok = subprocess.run([*CCD, "prompts", "check", "--data-dir", str(installed)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*CCD, "prompts", "check", "--data-dir", str(tmp_path), "--json"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "ccd/en/main-menu" in bad.stdout


def test_ccd_run_refuses_to_start_with_missing_prompts(tmp_path: Path) -> None:
    (tmp_path / "sounds").mkdir()
    r = subprocess.run([*CCD, "run"], capture_output=True, text=True, timeout=60,
                       env={"CCD_ASTERISK_DATA_DIR": str(tmp_path), "CCD_DATA_DIR":
                            str(tmp_path / "var"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2
    assert "prompts missing under" in r.stderr and "ccd prompts install" in r.stderr
    assert not (tmp_path / "var" / "pgdata").exists()  # refused before touching anything
