"""Building AMI actions safely.

An AMI action is ``Key: Value`` lines ending with an empty line. A value holding CR
or LF would end the line early and let whoever controls the value (a caller ID from
a SIP trunk, a number typed in the panel) inject a second action, so such values
are refused here, in the one place every action is encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")

Value = str | int | float | bool | Iterable[str]


class AmiActionError(ValueError):
    """An action that must not be sent (bad key, CR/LF in a value, ...)."""


def _text(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if "\r" in text or "\n" in text:
        raise AmiActionError(
            f"AMI action field {key!r} contains a CR or LF character; refusing to send it "
            "(it would inject extra AMI headers)")
    if "\x00" in text:
        raise AmiActionError(f"AMI action field {key!r} contains a NUL character")
    return text


def encode_action(action: str, fields: Mapping[str, Value] | None = None,
                  action_id: str | None = None) -> bytes:
    """Encode one action. A list/tuple value repeats the key (``Variable: a=1``, ...)."""
    lines = [f"Action: {_text('Action', action)}"]
    if not _KEY.match(action):
        raise AmiActionError(f"invalid AMI action name {action!r}")
    if action_id is not None:
        lines.append(f"ActionID: {_text('ActionID', action_id)}")
    for key, value in (fields or {}).items():
        if not _KEY.match(key):
            raise AmiActionError(f"invalid AMI header name {key!r}")
        if value is None:
            continue
        if isinstance(value, (list, tuple, set, frozenset)):
            lines.extend(f"{key}: {_text(key, v)}" for v in value)
        else:
            lines.append(f"{key}: {_text(key, value)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
