"""``python -m ccd.agi``: the FastAGI server with ccd's IVR routes, on its own.

The daemon runs the same server inside its event loop; this is for trying a dialplan
against ccd without the rest (``--config`` / ``CCD_*`` as for ``ccd``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os

from ccd.agi.server import AgiServer
from ccd.heap import settle_heap


async def serve(config_path: str | None, flows: str | None, database_url: str | None) -> None:
    from ccd.config import load
    from ccd.ivr.app import open_routes

    cfg = load(config_path)
    url = database_url if database_url is not None else (cfg.database.url or None)
    async with open_routes(flows_dir=flows, database_url=url) as routes:
        server = AgiServer.from_config(cfg.agi, routes)
        await server.start()
        settle_heap()
        try:
            await server.serve_forever()
        finally:
            await server.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ccd.agi", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.environ.get("CCD_CONFIG"))
    p.add_argument("--flows", default=None, help="IVR flows directory (default: built-in)")
    p.add_argument("--database-url", default=None,
                   help="PostgreSQL URL (default: [database] url; empty: no lookups)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.config, args.flows, args.database_url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
