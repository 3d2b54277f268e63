"""The sounds ccd's call flows play: which exist, which are missing, and installing them.

ccd ships every prompt its IVR flows, dialplan (``asterisk-conf/extensions.conf``), surveys
and notifications play as text in ``catalogue.toml`` and synthesises them at install time
(espeak-ng, then sox to 8 kHz mono 16-bit WAV) into Asterisk's data directory:
``<astdatadir>/sounds/...`` and ``<astdatadir>/moh/ccd/`` for the hold music. A studio
recording of the same name replaces a synthetic one (install never overwrites).

Asterisk finds ``Playback(ccd/sorry)`` for a channel of language ``zh`` as
``sounds/zh/ccd/sorry``, else ``sounds/ccd/sorry``, else ``sounds/en/ccd/sorry``, in any
format it can read; :func:`resolve` follows the same order so ccd's start-up check and the
simulator agree with a real PBX about what plays.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import tomllib
import wave
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

CATALOGUE = Path(__file__).with_name("catalogue.toml")
#: file extensions Asterisk plays (formats loaded by asterisk-conf/modules.conf)
FORMATS = ("wav", "WAV", "wav49", "gsm", "sln", "sln16", "ulaw", "alaw", "pcm", "g722")
LANGUAGES = ("en", "zh")
DEFAULT_LANGUAGE = "en"

#: sounds the dialplan (asterisk-conf/extensions.conf) plays by name; Asterisk picks the
#: channel's language (tests/real and tests/prompts check this list against the file)
DIALPLAN_SOUNDS = (
    "ccd/sorry", "ccd/all-busy", "ccd/transfer-failed", "ccd/goodbye", "ccd/invalid-number",
    "ccd/on-hold", "ccd/paused", "ccd/unpaused", "ccd/logged-in", "ccd/logged-out",
    "ccd/outbound-message", "ccd/campaign-abandon", "beep", "ccd/beeperr",
)


class PromptError(RuntimeError):
    """Prompts cannot be installed or are missing; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Sound:
    """One file of the catalogue: where it goes and how it is made."""

    path: str  # under sounds/ (or moh/ for music on hold), without extension
    kind: str  # speech | tone | moh
    voice: str = ""
    text: str = ""
    sox: str = ""

    @property
    def language(self) -> str:
        """The language directory of a by-language sound (``en/ccd/x`` -> ``en``)."""
        first = self.path.split("/", 1)[0]
        return first if first in LANGUAGES else ""

    @property
    def name(self) -> str:
        """What Asterisk is asked to play (``en/ccd/sorry`` -> ``ccd/sorry``)."""
        return self.path.split("/", 1)[1] if self.language else self.path


@cache
def catalogue() -> tuple[Sound, ...]:
    """Every sound ccd ships, in catalogue order."""
    doc = tomllib.loads(CATALOGUE.read_text(encoding="utf-8"))
    out: list[Sound] = []
    for path, s in doc.get("sounds", {}).items():
        out.append(Sound(path, "speech", voice=s["voice"], text=s["text"]))
    for path, s in doc.get("tones", {}).items():
        out.append(Sound(path, "tone", sox=s["sox"]))
    for path, s in doc.get("moh", {}).items():
        out.append(Sound(path, "moh", sox=s["sox"]))
    return tuple(out)


def shipped_names() -> dict[str, set[str]]:
    """Sound name -> the languages ccd ships it in (``""`` = not by language)."""
    names: dict[str, set[str]] = {}
    for s in catalogue():
        if s.kind != "moh":
            names.setdefault(s.name, set()).add(s.language)
    return names


def _candidates(sounds_dir: Path, name: str, language: str) -> Iterable[Path]:
    """Asterisk's order: language, language without dialect, no language, then en."""
    tried: list[str] = []
    lang = language.replace("-", "_")
    while lang:
        tried.append(lang)
        lang = lang.rpartition("_")[0]
    tried.append("")
    if DEFAULT_LANGUAGE not in tried:
        tried.append(DEFAULT_LANGUAGE)
    for lang in tried:
        base = sounds_dir / lang / name if lang else sounds_dir / name
        for ext in FORMATS:
            yield base.with_name(f"{base.name}.{ext}")


def resolve(sounds_dir: Path, name: str, language: str = "") -> Path | None:
    """The file Asterisk would play for ``name`` on a channel of ``language``, if any."""
    if not name or name.startswith("/") or ".." in Path(name).parts:
        return None
    for p in _candidates(sounds_dir, name, language):
        if p.is_file():
            return p
    return None


def wav_seconds(path: Path) -> float | None:
    """Length of a WAV file (None when it is not a readable PCM WAV)."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate() or 8000)
    except (OSError, EOFError, wave.Error):
        return None


@dataclass(slots=True)
class Needed:
    """Sounds something plays, by who plays them (for messages that say where to look)."""

    by_user: dict[str, set[tuple[str, str]]] = field(default_factory=dict)

    def add(self, user: str, name: str, language: str = "") -> None:
        self.by_user.setdefault(user, set()).add((name, language))

    def missing(self, sounds_dir: Path) -> list[tuple[str, str, str]]:
        """(user, name, language) of every sound that does not resolve, sorted."""
        out = []
        for user, items in self.by_user.items():
            for name, lang in items:
                if resolve(sounds_dir, name, lang) is None:
                    out.append((user, name, lang))
        return sorted(out)


def needed_by_flows(flows: Mapping[str, object]) -> Needed:
    """The sounds every prompt of every loaded IVR flow names, in each of its languages."""
    need = Needed()
    for fname, flow in flows.items():
        doc = flow.doc  # type: ignore[attr-defined]
        header = flow.header  # type: ignore[attr-defined]
        for lang, table in doc.prompts.items():
            chan_lang = header.channel_languages.get(lang, lang.split("-")[0].lower())
            for sound in table.values():
                need.add(f"flow {fname}", sound, chan_lang)
    return need


def needed_by_ccd(flows: Mapping[str, object]) -> Needed:
    """Everything ccd itself plays: the flows, the dialplan, surveys and notifications."""
    from ccd.campaigns.agi import DEFAULT_PROMPTS

    need = needed_by_flows(flows)
    for lang in LANGUAGES:
        for name in DIALPLAN_SOUNDS:
            need.add("dialplan", name, lang)
        for name in DEFAULT_PROMPTS.values():
            need.add("surveys and notifications", name, lang)
    return need


def check(sounds_dir: Path, need: Needed) -> list[str]:
    """Human lines naming each missing sound; empty when everything plays."""
    return [f"{user}: {name}" + (f" (language {lang})" if lang else "")
            for user, name, lang in need.missing(sounds_dir)]


# ------------------------------------------------------------------ installing

@dataclass(slots=True)
class InstallReport:
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"written": len(self.written), "kept": len(self.kept), "files": self.written}


def _tools() -> tuple[str, str]:
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if not espeak or not sox:
        missing = [n for n, p in (("espeak-ng", espeak), ("sox", sox)) if not p]
        raise PromptError(f"{' and '.join(missing)} not installed: ccd synthesises its "
                          "prompts with them (apt-get install espeak-ng sox)")
    return espeak, sox


def target(data_dir: Path, sound: Sound) -> Path:
    """Where ``sound`` is installed under Asterisk's data directory."""
    top = "moh" if sound.kind == "moh" else "sounds"
    return data_dir / top / f"{sound.path}.wav"


def _exists(data_dir: Path, sound: Sound) -> bool:
    if sound.kind == "moh":
        return target(data_dir, sound).exists()
    base = data_dir / "sounds" / sound.path
    return any(base.with_name(f"{base.name}.{ext}").exists() for ext in FORMATS) or (
        sound.kind == "tone" and resolve(data_dir / "sounds", sound.path, "en") is not None)


def _make(sound: Sound, out: Path, espeak: str, sox: str, work: Path) -> None:
    tmp = out.with_name(f".{out.name}.tmp.wav")
    if sound.kind == "speech":
        raw = work / "speech.wav"
        subprocess.run([espeak, "-v", sound.voice, "-s", "150", "-w", str(raw), sound.text],
                       check=True, capture_output=True, timeout=60)
        cmd = [sox, str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
               str(tmp), "norm", "-3"]
    else:
        cmd = [sox, "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
               str(tmp), *sound.sox.split()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    tmp.chmod(0o644)
    tmp.replace(out)


def install(data_dir: Path, *, force: bool = False,
            progress: Callable[[Sound, bool], None] | None = None) -> InstallReport:
    """Synthesise every catalogue sound missing under ``data_dir`` (Asterisk's astdatadir).

    Files that exist (in any format) are kept unless ``force``; each file is written to a
    temporary name and renamed, so Asterisk never plays half a file.
    """
    espeak, sox = _tools()
    report = InstallReport()
    with tempfile.TemporaryDirectory(prefix="ccd-prompts-") as tmp:
        for sound in catalogue():
            out = target(data_dir, sound)
            if not force and _exists(data_dir, sound):
                report.kept.append(str(out))
                if progress:
                    progress(sound, False)
                continue
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
                _make(sound, out, espeak, sox, Path(tmp))
            except (OSError, subprocess.SubprocessError) as exc:
                detail = getattr(exc, "stderr", b"") or b""
                raise PromptError(f"cannot write {out}: {exc} {detail.decode(errors='replace')}"
                                  .strip()) from exc
            report.written.append(str(out))
            if progress:
                progress(sound, True)
    return report


def startup_check(sounds_dir: Path, flows: Mapping[str, object],
                  log: Callable[[str], None]) -> None:
    """Refuse to run a call centre whose prompts are missing (PromptError names them).

    Asterisk ends an AGI with AGISTATUS=FAILURE when it is asked to play a file it does not
    have, so a missing prompt would silently send every caller down the fallback path. When
    the sounds directory is not visible from this host the check is skipped with a warning.
    """
    if not sounds_dir.is_dir():
        log(f"cannot check the prompts: {sounds_dir} is not on this host; run "
            "`ccd prompts check --data-dir DIR` on the Asterisk host (or set [asterisk] "
            "data_dir)")
        return
    missing = check(sounds_dir, needed_by_ccd(flows))
    if missing:
        shown = "; ".join(missing[:8]) + (f"; ... ({len(missing)} in all)"
                                          if len(missing) > 8 else "")
        raise PromptError(f"{len(missing)} prompts missing under {sounds_dir}: {shown}. "
                          "Install them with `ccd prompts install` (or record them), or set "
                          "[asterisk] check_prompts = false")
