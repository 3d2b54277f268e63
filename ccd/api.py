"""The daemon's local control API: JSON lines over a Unix socket.

The CLI (and tests) talk to the running daemon here, never by scraping logs. The
socket is created mode 0600 in the data directory and every request must carry the
token from ``<data_dir>/api.token`` (also 0600) or ``[api] token``, so only the
operator account that runs ccd can use it.

Request: ``{"token": "...", "method": "status", "params": {...}}`` + LF.
Reply: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "...", "code": N}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ccd.config import Config

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_REQUEST = 1 << 20


class ApiError(Exception):
    """A request the daemon refused; ``code`` becomes the CLI's exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def token_for(config: Config, create: bool = False) -> str:
    """The API token: from config, else from ``<data_dir>/api.token`` (made if asked)."""
    if config.api.token.get_secret_value():
        return config.api.token.get_secret_value()
    path = config.data_dir / "api.token"
    if path.exists():
        return path.read_text().strip()
    if not create:
        raise ApiError(f"no API token at {path}: is the ccd daemon running with this "
                       "data directory?", code=3)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    tok = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(tok + "\n")
    return tok


class ApiServer:
    """Serves registered methods on the Unix socket."""

    def __init__(self, path: Path, token: str) -> None:
        self.path = path
        self.token = token
        self.methods: dict[str, Handler] = {}
        self._server: asyncio.base_events.Server | None = None

    def register(self, name: str, fn: Handler) -> None:
        self.methods[name] = fn

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path),
                                                           limit=MAX_REQUEST)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        log.info("control API listening on %s", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self.path.exists():
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), 300)
                except (ValueError, asyncio.LimitOverrunError):
                    await self._reply(writer, {"ok": False, "error": "request too large",
                                               "code": 2})
                    return
                if not line:
                    return
                await self._reply(writer, await self._dispatch(line))
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("request must be a JSON object")
        except ValueError as exc:
            return {"ok": False, "error": f"bad request: {exc}", "code": 2}
        if not secrets.compare_digest(str(req.get("token", "")), self.token):
            return {"ok": False, "error": "invalid API token", "code": 2}
        fn = self.methods.get(str(req.get("method")))
        if fn is None:
            return {"ok": False, "error": f"unknown method {req.get('method')!r}", "code": 2}
        params = req.get("params") or {}
        if not isinstance(params, dict):
            return {"ok": False, "error": "params must be an object", "code": 2}
        try:
            return {"ok": True, "result": await fn(params)}
        except ApiError as exc:
            return {"ok": False, "error": str(exc), "code": exc.code}
        except Exception as exc:
            log.exception("API method %s failed", req.get("method"))
            return {"ok": False, "error": f"internal error: {exc}", "code": 1}

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
        writer.write(json.dumps(obj, default=str, ensure_ascii=False).encode() + b"\n")
        await writer.drain()


async def call(config: Config, method: str, params: dict[str, Any] | None = None,
               timeout: float = 10.0) -> Any:
    """Call the running daemon; raises :class:`ApiError` (code 3 when it is not running)."""
    token = token_for(config)
    path = config.api_socket
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_unix_connection(str(path), limit=64 * MAX_REQUEST), timeout)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise ApiError(f"the ccd daemon is not running (no socket at {path}); "
                       "start it with `ccd run`", code=3) from exc
    try:
        req = {"token": token, "method": method, "params": params or {}}
        writer.write(json.dumps(req).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    if not line:
        raise ApiError("the daemon closed the connection", code=3)
    reply = json.loads(line)
    if not reply.get("ok"):
        raise ApiError(reply.get("error", "unknown error"), int(reply.get("code", 1)))
    return reply.get("result")


def call_sync(config: Config, method: str, params: dict[str, Any] | None = None,
              timeout: float = 10.0) -> Any:
    """Blocking wrapper of :func:`call` for the CLI."""
    return asyncio.run(call(config, method, params, timeout))
