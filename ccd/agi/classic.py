"""``ccd-agi``: ccd's AGI handlers as a classic AGI script (stdin/stdout, one process a call).

For sites that cannot run the FastAGI server::

    exten => 5551000,n,AGI(ccd-agi,ivr)          ; or AGI(ccd-agi,ivr,support) for a flow

Asterisk starts the script with the route as its arguments, writes the ``agi_*``
environment to its stdin and reads commands from its stdout. The environment, the
command writing and SIGHUP (Asterisk's hangup signal for classic AGI) go through pyst2's
``asterisk.agi.AGI`` (its ``fastagi.py`` is Python 2 only, its ``AGI`` class works over
any pair of streams); replies are read with ccd's own parser so that handlers see exactly
what they see over FastAGI. The handlers, their fallback on failure and the storage are
the same as the FastAGI server's (``ccd.ivr.app.open_routes`` by default).

The FastAGI server is the way to run at volume: this starts a Python process per call
(``bench/agi.py`` measures the difference).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import io
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ccd.agi.protocol import AgiHangup
from ccd.agi.server import Fallback, SessionRunner
from ccd.agi.session import AgiSession

log = logging.getLogger("ccd.agi")


class PystTransport:
    """:class:`~ccd.agi.session.AgiTransport` over a pyst2 ``AGI`` object.

    Classic AGI learns of a hangup by SIGHUP (pyst2 records it); it is turned into the
    ``HANGUP`` line FastAGI would have sent, so the session reacts the same way and can
    still run the commands Asterisk allows on a dead channel (SET VARIABLE ...).
    """

    def __init__(self, agi: Any) -> None:
        self.agi = agi
        self._hangup_told = False

    async def send(self, data: bytes) -> None:
        try:
            self.agi.send_command(data.decode("utf-8").rstrip("\n"))
        except (BrokenPipeError, OSError) as exc:
            raise AgiHangup(f"stdout closed: {exc}") from None

    async def readline(self) -> str:
        if not self._hangup_told and getattr(self.agi, "_got_sighup", False):
            self._hangup_told = True
            return "HANGUP\n"
        try:
            return self.agi.stdin.readline()
        except OSError:
            return ""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.agi.stdout.flush()


def _factory(spec: str) -> Any:
    """``module:function`` -> the function."""
    mod, _, name = spec.partition(":")
    return getattr(importlib.import_module(mod), name or "open_routes")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ccd-agi", description=__doc__.split("\n\n")[0])
    p.add_argument("route", nargs="*", help="route and its arguments (default: ivr)")
    p.add_argument("--config", default=os.environ.get("CCD_CONFIG"),
                   help="ccd configuration file (database URL, [agi] fallback_context)")
    p.add_argument("--flows", default=None, help="IVR flows directory (default: built-in)")
    p.add_argument("--database-url", default=None,
                   help="PostgreSQL URL (default: [database] url; none = no lookups)")
    p.add_argument("--routes", default="ccd.ivr.app:open_routes",
                   help="module:function returning the routes context manager")
    p.add_argument("--debug", action="store_true", help="pyst2's protocol trace on stderr")
    return p


def _settings(args: argparse.Namespace) -> tuple[str | None, str]:
    """Database URL and fallback context from the options and ccd's configuration."""
    url, fallback = args.database_url, "ccd-fallback"
    try:
        from ccd.config import load

        cfg = load(args.config)
    except Exception as exc:
        log.warning("ccd configuration not loaded (%s); using defaults", exc)
        return url, fallback
    return url or cfg.database.url or None, cfg.agi.fallback_context


async def _run(session: AgiSession, args: argparse.Namespace, url: str | None,
               fallback_context: str) -> str:
    factory = _factory(args.routes)
    runner = SessionRunner(fallback=Fallback(context=fallback_context))
    try:
        async with factory(flows_dir=args.flows, database_url=url) as routes:
            for name, handler in routes.items():
                runner.route(name, handler)
            return await runner.run(session)
    except Exception as exc:  # the routes themselves failed to load: still never strand
        log.exception("ccd-agi: routes not available")
        runner.stats.failed += 1
        return await runner.send_to_fallback(session, exc)


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None,
         stdout: TextIO | None = None) -> int:
    """Entry point of ``ccd-agi``: one AGI session on stdin/stdout."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        stream=sys.stderr, format="ccd-agi: %(levelname)s %(message)s")
    from asterisk.agi import AGI

    stdin = stdin or io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    stdout = stdout or io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
    trace: TextIO = sys.stderr if args.debug else open(os.devnull, "w")  # noqa: SIM115
    try:
        agi = AGI(stdin=stdin, stdout=stdout, stderr=trace)
        session = AgiSession(dict(agi.env), PystTransport(agi))
        # classic AGI's agi_request is the script's path: the route comes from argv
        session.script = "/".join(args.route) if args.route else "ivr"
        url, fallback_context = _settings(args)
        result = asyncio.run(_run(session, args, url, fallback_context))
        log.debug("session %s: %s", session.uniqueid, result)
    finally:
        if trace is not sys.stderr:
            trace.close()
        with contextlib.suppress(Exception):
            stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
