"""Checks on digits callers type."""

from __future__ import annotations


def luhn_ok(digits: str) -> bool:
    """True if ``digits`` pass the Luhn (mod 10) check used by card and account numbers."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_complete(stem: str) -> str:
    """``stem`` with the Luhn check digit appended (for test data and account numbering)."""
    for d in "0123456789":
        if luhn_ok(stem + d):
            return stem + d
    raise ValueError(f"not digits: {stem!r}")
