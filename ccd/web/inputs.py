"""Text that came from a request, checked before anything uses it.

PostgreSQL's ``text`` cannot hold a NUL byte (psycopg raises ``DataError``) and UTF-8
cannot encode an unpaired surrogate (``"\\ud800"`` in JSON); C0 control characters other
than tab, line feed and carriage return, and DEL, are never typed text either. The panel
refuses all of them with a 400 that names the field, before any view, query or AMI action
sees the request (:func:`request_problem`, run by the app for every request, and
:func:`value_problem` for Socket.IO messages).
"""

from __future__ import annotations

import re
from typing import Any

_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_NAME = re.compile(r"^[A-Za-z0-9_.\-\[\]]{1,40}$")
#: JSON nesting the panel accepts (its bodies are flat objects)
MAX_DEPTH = 16


def text_problem(value: str) -> str | None:
    """What is wrong with ``value`` as text (``"a NUL byte"`` ...), or None."""
    m = _BAD.search(value)
    if m is None:
        return None
    ch = m.group()
    if ch == "\x00":
        return "a NUL byte"
    if "\ud800" <= ch <= "\udfff":
        return "an unpaired surrogate (not valid Unicode)"
    return f"the control character U+{ord(ch):04X}"


def _label(name: str) -> str:
    """A field name fit to be shown back (names that are themselves hostile are not)."""
    return f"'{name}'" if _NAME.match(name) else "a field"


def value_problem(value: Any, name: str, depth: int = 0) -> str | None:
    """The first invalid text in ``value`` (a string, or JSON: lists, objects and their
    keys), as a message naming the field; None if all of it is fine."""
    if depth > MAX_DEPTH:
        return f"{_label(name)} is nested too deeply"
    if isinstance(value, str):
        why = text_problem(value)
        return f"{_label(name)} contains {why}" if why else None
    if isinstance(value, dict):
        for key, item in value.items():
            key = str(key)
            why = text_problem(key)
            if why:
                return f"a field name contains {why}"
            found = value_problem(item, key if depth == 0 else f"{name}.{key}", depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = value_problem(item, f"{name}[{i}]", depth + 1)
            if found:
                return found
    return None


def _multi(pairs: Any, what: str) -> str | None:
    for key, values in pairs:
        why = text_problem(key)
        if why:
            return f"a {what} name contains {why}"
        for v in values:
            found = value_problem(v, key)
            if found:
                return f"{what} {found}"
    return None


def request_problem(request: Any) -> str | None:
    """What makes this Flask request unusable as text, or None: invalid text in the URL
    path, the query, the form or the JSON body, or a JSON body that does not parse."""
    for key, v in (request.view_args or {}).items():
        if isinstance(v, str):
            why = text_problem(v)
            if why:
                return f"the URL ({_label(key)}) contains {why}"
    found = _multi(request.args.lists(), "parameter")
    if found:
        return found
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        found = _multi(request.form.lists(), "field")
        if found:
            return found
        if request.is_json and request.get_data(cache=True).strip():
            try:
                data = request.get_json(silent=True)
            except RecursionError:
                return "the JSON body is nested too deeply"
            if data is None:
                return "the body is not valid JSON (UTF-8)"
            found = value_problem(data, "body")
            if found:
                return f"field {found}" if not found.startswith("a field") else found
    return None
