"""AMI events as the simulator emits them, and their wire format.

An :class:`Event` is built once and rendered per session (with or without ``Timestamp:``,
the way ``timestampevents`` decides). Field order follows Asterisk 22: ``Event``,
``Privilege``, ``Timestamp``, then the snapshot fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: AMI class names (manager.conf read=/write=) and the Privilege label events carry
SYSTEM, CALL, AGENT, DIALPLAN, AGI, DTMF, SECURITY, REPORTING = (
    "system",
    "call",
    "agent",
    "dialplan",
    "agi",
    "dtmf",
    "security",
    "reporting",
)

CLASSES = (
    "system",
    "call",
    "log",
    "verbose",
    "command",
    "agent",
    "user",
    "config",
    "dtmf",
    "reporting",
    "cdr",
    "dialplan",
    "originate",
    "agi",
    "cc",
    "aoc",
    "test",
    "security",
    "message",
)

Fields = list[tuple[str, str]]
FieldSeq = Sequence[tuple[str, str]]


@dataclass(slots=True)
class Event:
    """One AMI event. ``privilege`` is its class (``call``); None = list item of an action."""

    name: str
    fields: Fields
    privilege: str | None = None
    ts: float = 0.0
    stamp: bool = True  # carries a Timestamp when timestampevents=yes

    def render(self, timestamps: bool) -> bytes:
        lines = [f"Event: {self.name}"]
        if self.privilege is not None:
            lines.append(f"Privilege: {self.privilege},all")
            if timestamps and self.stamp:
                lines.append(f"Timestamp: {self.ts:.6f}")
        lines.extend(f"{k}: {v}" for k, v in self.fields)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")

    def get(self, key: str, default: str = "") -> str:
        for k, v in self.fields:
            if k == key:
                return v
        return default


def response(status: str, action_id: str | None, fields: FieldSeq = ()) -> bytes:
    """``Response: Success`` frame with the ActionID right after the status, as Asterisk."""
    lines = [f"Response: {status}"]
    if action_id is not None:
        lines.append(f"ActionID: {action_id}")
    lines.extend(f"{k}: {v}" for k, v in fields)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")


def list_item(name: str, fields: FieldSeq, action_id: str | None) -> bytes:
    """An event of an action's list (no Privilege/Timestamp; ActionID last)."""
    lines = [f"Event: {name}"]
    lines.extend(f"{k}: {v}" for k, v in fields)
    if action_id is not None:
        lines.append(f"ActionID: {action_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")


def list_complete(name: str, count: int, action_id: str | None, extra: FieldSeq = ()) -> bytes:
    """``...Complete`` event ending a list: ActionID, EventList: Complete, ListItems."""
    lines = [f"Event: {name}"]
    if action_id is not None:
        lines.append(f"ActionID: {action_id}")
    lines.append("EventList: Complete")
    lines.append(f"ListItems: {count}")
    lines.extend(f"{k}: {v}" for k, v in extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")
