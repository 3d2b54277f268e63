"""The dialplan: contexts, extensions, priorities and the ``${...}`` / ``$[...]`` language.

Built from ``extensions.conf`` (see :func:`load_dialplan`); pure data and pure functions,
the executor lives in :mod:`ccd.sim.pbx`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ccd.sim.conf import ConfError, ConfFile


@dataclass(slots=True)
class Step:
    """One priority of an extension: ``App(data)``."""

    priority: int
    app: str
    data: str
    label: str = ""


@dataclass(slots=True)
class Extension:
    name: str
    steps: dict[int, Step] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def is_pattern(self) -> bool:
        return self.name.startswith("_")


@dataclass(slots=True)
class Context:
    name: str
    extensions: dict[str, Extension] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Dialplan:
    contexts: dict[str, Context] = field(default_factory=dict)
    globals: dict[str, str] = field(default_factory=dict)

    def find(
        self, context: str, exten: str, _seen: frozenset[str] = frozenset()
    ) -> Extension | None:
        """The extension ``exten`` matches in ``context`` (includes followed, exact first)."""
        ctx = self.contexts.get(context)
        if ctx is None or context in _seen:
            return None
        found = ctx.extensions.get(exten)
        if found is not None and not found.is_pattern:
            return found
        best: tuple[int, Extension] | None = None
        for ext in ctx.extensions.values():
            if ext.is_pattern and pattern_matches(ext.name, exten):
                score = _specificity(ext.name)
                if best is None or score < best[0]:
                    best = (score, ext)
        if best is not None:
            return best[1]
        for inc in ctx.includes:
            found = self.find(inc, exten, _seen | {context})
            if found is not None:
                return found
        return None

    def step(self, context: str, exten: str, priority: int) -> Step | None:
        ext = self.find(context, exten)
        return None if ext is None else ext.steps.get(priority)

    def exists(self, context: str, exten: str, priority: int = 1) -> bool:
        return self.step(context, exten, priority) is not None

    def resolve_priority(self, context: str, exten: str, priority: str) -> int | None:
        """A priority given as a number or a label (``ivr``); None if neither exists."""
        ext = self.find(context, exten)
        if ext is None:
            return None
        if priority.isdigit():
            return int(priority)
        return ext.labels.get(priority)


_CLASSES = {"X": "0123456789", "Z": "123456789", "N": "23456789"}


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 1
    p = pattern
    while i < len(p):
        c = p[i]
        up = c.upper()
        if up in _CLASSES:
            out.append(f"[{_CLASSES[up]}]")
        elif c == ".":
            out.append(".+")
        elif c == "!":
            out.append(".*")
        elif c == "[":
            j = p.find("]", i)
            if j < 0:
                raise ConfError(f"unterminated [ in pattern {pattern}")
            out.append("[" + re.escape(p[i + 1 : j]).replace("\\-", "-") + "]")
            i = j
        elif c == "-":
            pass  # dashes are ignored in patterns, as Asterisk does
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def pattern_matches(pattern: str, exten: str) -> bool:
    """Does ``_100X``-style ``pattern`` match ``exten``?"""
    rx = _REGEX_CACHE.get(pattern)
    if rx is None:
        rx = _REGEX_CACHE[pattern] = _pattern_regex(pattern)
    return rx.match(exten) is not None


def _specificity(pattern: str) -> int:
    # fewer possible matches sort first, roughly like Asterisk's pattern ordering
    score = 0
    for c in pattern[1:]:
        up = c.upper()
        if up == "X":
            score += 10
        elif up == "Z":
            score += 9
        elif up == "N":
            score += 8
        elif c in ".!":
            score += 1000
        elif c == "[":
            score += 5
    return score


def split_app(spec: str) -> tuple[str, str]:
    """``Queue(support,tT)`` -> (``Queue``, ``support,tT``); ``Hangup`` -> (``Hangup``, '')."""
    spec = spec.strip()
    paren = spec.find("(")
    if paren < 0:
        name, _, data = spec.partition(",")
        return name.strip(), data
    name = spec[:paren].strip()
    data = spec[paren + 1 :]
    if data.endswith(")"):
        data = data[:-1]
    return name, data


def load_dialplan(conf: ConfFile) -> Dialplan:
    """Build the dialplan from a parsed ``extensions.conf``."""
    plan = Dialplan()
    for section in conf.real():
        if section.name == "general":
            continue
        if section.name == "globals":
            for k, v in section.items:
                plan.globals[k] = v
            continue
        ctx = plan.contexts.setdefault(section.name, Context(section.name))
        last: Extension | None = None
        last_prio = 0
        for key, value in section.items:
            where = f"{section.file}: [{section.name}] {key} => {value}"
            if key == "include":
                ctx.includes.append(value.strip())
                continue
            if key not in ("exten", "same"):
                continue
            if key == "exten":
                name, sep, rest = value.partition(",")
                if not sep:
                    raise ConfError(f"{where}: missing priority")
                name = name.strip().split("/", 1)[0]
                last = ctx.extensions.setdefault(name, Extension(name))
                last_prio = 0
            elif last is None:
                raise ConfError(f"{where}: 'same' before any 'exten'")
            else:
                rest = value
            prio_s, sep, app_spec = rest.partition(",")
            if not sep and prio_s.strip() != "hint":
                raise ConfError(f"{where}: missing application")
            prio_s = prio_s.strip()
            label = ""
            m = re.match(r"^(\w+)\((\w+)\)$", prio_s)
            if m:
                prio_s, label = m.group(1), m.group(2)
            if prio_s == "hint":
                continue
            if prio_s == "n":
                prio = last_prio + 1
            elif prio_s == "s":
                prio = last_prio
            elif prio_s.isdigit():
                prio = int(prio_s)
            elif prio_s.startswith("n+") and prio_s[2:].isdigit():
                prio = last_prio + int(prio_s[2:])
            else:
                raise ConfError(f"{where}: bad priority {prio_s!r}")
            app, data = split_app(app_spec)
            last.steps[prio] = Step(prio, app, data, label)
            if label:
                last.labels[label] = prio
            last_prio = prio
    return plan


# --------------------------------------------------------------------------- expressions

T = TypeVar("T", str, float)
Lookup = Callable[[str], str | None]
FunctionCall = Callable[[str, str], str]


def expand(text: str, lookup: Lookup, call: FunctionCall) -> str:
    """Substitute ``${VAR}``, ``${FUNC(args)}``, ``${VAR:offset:length}`` and ``$[expr]``."""
    if "$" not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "$" and i + 1 < n and text[i + 1] in "{[":
            opener = text[i + 1]
            closer = "}" if opener == "{" else "]"
            j = _matching(text, i + 2, opener, closer)
            inner = expand(text[i + 2 : j], lookup, call)
            if opener == "{":
                out.append(_resolve(inner, lookup, call))
            else:
                out.append(evaluate(inner))
            i = j + 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _matching(text: str, start: int, opener: str, closer: str) -> int:
    depth = 1
    i = start
    while i < len(text):
        c = text[i]
        if c == "$" and i + 1 < len(text) and text[i + 1] in "{[":
            inner_close = "}" if text[i + 1] == "{" else "]"
            i = _matching(text, i + 2, text[i + 1], inner_close) + 1
            continue
        if c == opener:
            depth += 1
        elif c == closer:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(text)


def _resolve(inner: str, lookup: Lookup, call: FunctionCall) -> str:
    paren = inner.find("(")
    if paren > 0 and inner.endswith(")") and re.match(r"^[A-Za-z_][\w.]*$", inner[:paren]):
        return call(inner[:paren], inner[paren + 1 : -1])
    name, offset, length = inner, None, None
    m = re.match(r"^([^:]+):(-?\d+)(?::(-?\d+))?$", inner)
    if m:
        name, offset = m.group(1), int(m.group(2))
        length = int(m.group(3)) if m.group(3) is not None else None
    value = lookup(name) or ""
    if offset is not None:
        value = value[offset:]
        if length is not None:
            value = value[:length]
    return value


_TOKEN = re.compile(r'\s*(?:(=~|!=|<=|>=|[|&=<>+\-*/%!?:()])|"([^"]*)"|([^\s|&=<>+\-*/%!?:()"]+))')


def evaluate(expr: str) -> str:
    """Evaluate an Asterisk ``$[...]`` expression (logic, comparison, arithmetic, ?:)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        if m.group(1):
            tokens.append(("op", m.group(1)))
        elif m.group(2) is not None:
            tokens.append(("str", m.group(2)))
        elif m.group(3):
            tokens.append(("str", m.group(3)))
    if not tokens:
        return ""
    parser = _ExprParser(tokens)
    try:
        value = parser.ternary()
    except (IndexError, ValueError, ZeroDivisionError):
        return "0"
    return _fmt(value)


def _num(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def _fmt(v: str | float) -> str:
    if isinstance(v, float):
        return str(int(v)) if v == int(v) else repr(v)
    return v


def _compare(op: str, x: T, y: T) -> bool:
    """Numbers compare as numbers, anything else as strings (like Asterisk's $[ ])."""
    if op == "=":
        return x == y
    if op == "!=":
        return x != y
    if op == "<":
        return x < y
    if op == ">":
        return x > y
    if op == "<=":
        return x <= y
    return x >= y


def _truthy(v: str | float) -> bool:
    if isinstance(v, float):
        return v != 0
    n = _num(v)
    return (n != 0) if n is not None else v != ""


class _ExprParser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.t = tokens
        self.i = 0

    def peek(self) -> str | None:
        if self.i < len(self.t) and self.t[self.i][0] == "op":
            return self.t[self.i][1]
        return None

    def take(self) -> tuple[str, str]:
        tok = self.t[self.i]
        self.i += 1
        return tok

    def ternary(self) -> str | float:
        cond = self.logic_or()
        if self.peek() == "?":
            self.take()
            yes = self.logic_or()
            no: str | float = ""
            if self.peek() == ":":
                self.take()
                no = self.logic_or()
            return yes if _truthy(cond) else no
        return cond

    def logic_or(self) -> str | float:
        left = self.logic_and()
        while self.peek() == "|":
            self.take()
            right = self.logic_and()
            left = left if _truthy(left) else right
        return left

    def logic_and(self) -> str | float:
        left = self.compare()
        while self.peek() == "&":
            self.take()
            right = self.compare()
            left = left if _truthy(left) and _truthy(right) else 0.0
        return left

    def compare(self) -> str | float:
        left = self.additive()
        while self.peek() in ("=", "!=", "<", ">", "<=", ">=", "=~"):
            op = self.take()[1]
            right = self.additive()
            if op == "=~":
                left = 1.0 if re.search(_fmt(right), _fmt(left)) else 0.0
                continue
            a, b = _num(_fmt(left)), _num(_fmt(right))
            if a is not None and b is not None:
                result = _compare(op, a, b)
            else:
                result = _compare(op, _fmt(left), _fmt(right))
            left = 1.0 if result else 0.0
        return left

    def additive(self) -> str | float:
        left = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            right = self.term()
            a, b = _num(_fmt(left)), _num(_fmt(right))
            if a is None or b is None:
                raise ValueError("non-numeric operand")
            left = a + b if op == "+" else a - b
        return left

    def term(self) -> str | float:
        left = self.unary()
        while self.peek() in ("*", "/", "%"):
            op = self.take()[1]
            right = self.unary()
            a, b = _num(_fmt(left)), _num(_fmt(right))
            if a is None or b is None:
                raise ValueError("non-numeric operand")
            left = a * b if op == "*" else (float(int(a / b)) if op == "/" else a % b)
        return left

    def unary(self) -> str | float:
        op = self.peek()
        if op == "!":
            self.take()
            return 0.0 if _truthy(self.unary()) else 1.0
        if op == "-":
            self.take()
            v = _num(_fmt(self.unary()))
            if v is None:
                raise ValueError("non-numeric operand")
            return -v
        if op == "(":
            self.take()
            v = self.ternary()
            if self.peek() == ")":
                self.take()
            return v
        kind, value = self.take()
        if kind == "op":
            raise ValueError(f"unexpected {value}")
        return value


def split_args(data: str) -> list[str]:
    """Split application arguments on commas, respecting quotes and parentheses."""
    args: list[str] = []
    cur: list[str] = []
    depth = 0
    quote = False
    for c in data:
        if c == '"':
            quote = not quote
            cur.append(c)
        elif c in "([{" and not quote:
            depth += 1
            cur.append(c)
        elif c in ")]}" and not quote:
            depth -= 1
            cur.append(c)
        elif c == "," and depth <= 0 and not quote:
            args.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    args.append("".join(cur))
    return args
