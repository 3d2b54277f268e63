"""A small parser for Asterisk ``.conf`` files, the way Asterisk's config loader reads them.

Handles what the simulator's configuration uses and what pyst2's ``asterisk.config`` does not:
templates (``[name](!)``), sections inheriting from templates (``[1001](ep-tmpl,other)``),
several sections with the same name (PJSIP's endpoint/auth/aor trio), ``=>`` as well as ``=``,
repeated keys (``member =>``), ``;`` comments with ``\\;`` escapes, ``;-- block --;`` comments
and ``#include``. Items keep their order; a section's items start with its templates' items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class ConfError(ValueError):
    """A configuration file that Asterisk would refuse; says which file and line."""


@dataclass(slots=True)
class Section:
    """One ``[name]`` block (templates already applied to ``items``)."""

    name: str
    items: list[tuple[str, str]] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    is_template: bool = False
    file: str = ""
    line: int = 0

    def get(self, key: str, default: str | None = None) -> str | None:
        """Last value of ``key`` (later lines override earlier ones, as in Asterisk)."""
        for k, v in reversed(self.items):
            if k == key:
                return v
        return default

    def getall(self, key: str) -> list[str]:
        """Every value of a repeated key, in order."""
        return [v for k, v in self.items if k == key]

    def keys(self) -> list[str]:
        return [k for k, _ in self.items]


@dataclass(slots=True)
class ConfFile:
    """A parsed file: its sections in order (templates included, flagged)."""

    path: str
    sections: list[Section] = field(default_factory=list)

    def section(self, name: str) -> Section | None:
        """The first non-template section called ``name``."""
        for s in self.sections:
            if s.name == name and not s.is_template:
                return s
        return None

    def all(self, name: str) -> list[Section]:
        """Every non-template section called ``name`` (PJSIP reuses names across types)."""
        return [s for s in self.sections if s.name == name and not s.is_template]

    def real(self) -> list[Section]:
        """Every section that is not a template."""
        return [s for s in self.sections if not s.is_template]


def _strip_comment(line: str, in_block: bool) -> tuple[str, bool]:
    """Remove ``;`` comments (``\\;`` is a literal semicolon) and ``;-- --;`` blocks."""
    out: list[str] = []
    i = 0
    n = len(line)
    while i < n:
        if in_block:
            end = line.find("--;", i)
            if end < 0:
                return "".join(out), True
            i = end + 3
            in_block = False
            continue
        c = line[i]
        if c == "\\" and i + 1 < n and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if c == ";":
            if line.startswith(";--", i):
                in_block = True
                i += 3
                continue
            break
        out.append(c)
        i += 1
    return "".join(out), in_block


def parse_text(
    text: str, path: str = "<string>", base_dir: Path | None = None, _depth: int = 0
) -> ConfFile:
    """Parse the text of one ``.conf`` file (``#include`` resolved against ``base_dir``)."""
    conf = ConfFile(path)
    by_name: dict[str, list[Section]] = {}
    current: Section | None = None
    in_block = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line, in_block = _strip_comment(raw, in_block)
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            current = _directive(conf, by_name, current, line, path, lineno, base_dir, _depth)
            continue
        if line.startswith("["):
            current = _section_header(line, path, lineno, by_name)
            conf.sections.append(current)
            by_name.setdefault(current.name, []).append(current)
            continue
        if current is None:
            raise ConfError(f"{path}:{lineno}: setting outside of any [section]: {line!r}")
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfError(f"{path}:{lineno}: no '=' in {line!r}")
        if value.startswith(">"):
            value = value[1:]
        current.items.append((key.strip(), value.strip()))
    return conf


def _directive(
    conf: ConfFile,
    by_name: dict[str, list[Section]],
    current: Section | None,
    line: str,
    path: str,
    lineno: int,
    base_dir: Path | None,
    depth: int,
) -> Section | None:
    word, _, arg = line[1:].partition(" ")
    if word not in ("include", "tryinclude"):
        raise ConfError(f"{path}:{lineno}: unknown directive #{word}")
    arg = arg.strip().strip('"<>')
    target = Path(arg) if Path(arg).is_absolute() or base_dir is None else base_dir / arg
    if depth > 10:
        raise ConfError(f"{path}:{lineno}: #include nested too deeply")
    if not target.exists():
        if word == "tryinclude":
            return current
        raise ConfError(f"{path}:{lineno}: #include {arg}: no such file")
    sub = parse_text(target.read_text(encoding="utf-8"), str(target), target.parent, depth + 1)
    for s in sub.sections:
        conf.sections.append(s)
        by_name.setdefault(s.name, []).append(s)
    return conf.sections[-1] if sub.sections else current


def _section_header(
    line: str, path: str, lineno: int, by_name: dict[str, list[Section]]
) -> Section:
    close = line.find("]")
    if close < 0:
        raise ConfError(f"{path}:{lineno}: unterminated section header {line!r}")
    name = line[1:close].strip()
    if not name:
        raise ConfError(f"{path}:{lineno}: empty section name")
    section = Section(name, file=path, line=lineno)
    rest = line[close + 1 :].strip()
    if rest:
        if not (rest.startswith("(") and rest.endswith(")")):
            raise ConfError(f"{path}:{lineno}: bad section options {rest!r}")
        for opt in (o.strip() for o in rest[1:-1].split(",")):
            if not opt:
                continue
            if opt == "!":
                section.is_template = True
            elif opt == "+":
                raise ConfError(f"{path}:{lineno}: '(+)' section append is not supported")
            else:
                templates = [s for s in by_name.get(opt, []) if s.is_template] or by_name.get(
                    opt, []
                )
                if not templates:
                    raise ConfError(f"{path}:{lineno}: template {opt!r} is not defined above")
                section.templates.append(opt)
                section.items.extend(templates[-1].items)
    return section


def parse_file(path: str | Path) -> ConfFile:
    """Parse one file from disk."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfError(f"{p}: no such file") from None
    return parse_text(text, str(p), p.parent)
