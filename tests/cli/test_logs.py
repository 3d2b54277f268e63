"""Structured log lines: one record per line, JSON when asked, no forged lines."""

from __future__ import annotations

import io
import json
import logging

import pytest

from ccd import logs


@pytest.fixture(autouse=True)
def _restore_root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_caller_controlled_newlines_cannot_forge_log_lines() -> None:
    buf = io.StringIO()
    logs.setup("INFO", "text", buf)
    logging.getLogger("ccd.test").info("call from %s", "Eve\n2026-01-01 ERROR forged\r")
    out = buf.getvalue()
    assert out.count("\n") == 1
    assert out.rstrip("\n").endswith("call from Eve\\n2026-01-01 ERROR forged\\r")


def test_json_lines() -> None:
    buf = io.StringIO()
    logs.setup("INFO", "json", buf)
    logging.getLogger("ccd.test").warning("link %s", "down", extra={"peer": "127.0.0.1"})
    rec = json.loads(buf.getvalue())
    assert (rec["level"], rec["msg"], rec["peer"]) == ("WARNING", "link down", "127.0.0.1")
