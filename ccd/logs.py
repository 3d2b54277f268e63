"""Logging set-up: one structured line per record, text or JSON."""

from __future__ import annotations

import json
import logging
import sys
import time

_STD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        extra = " ".join(f"{k}={v!r}" for k, v in record.__dict__.items() if k not in _STD)
        # one record, one line: CR/LF in a message (a caller name from a trunk) cannot forge
        # further log lines
        msg = record.getMessage().replace("\r", "\\r").replace("\n", "\\n")
        line = f"{ts}.{int(record.msecs):03d}Z {record.levelname:<7} {record.name}: {msg}"
        if extra:
            line += " " + extra
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = {"ts": round(record.created, 3), "level": record.levelname,
             "logger": record.name, "msg": record.getMessage()}
        d.update({k: v for k, v in record.__dict__.items() if k not in _STD})
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d, default=str, ensure_ascii=False)


def setup(level: str = "INFO", fmt: str = "text", stream=sys.stderr) -> None:
    """Configure the root logger for ccd's processes."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_Json() if fmt == "json" else _Text())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("asyncio", "apscheduler", "werkzeug", "engineio", "socketio", "pgserver"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # the pool logs every reconnect attempt; the writer logs one clear line per outage
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
