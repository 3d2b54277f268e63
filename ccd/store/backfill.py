"""Backfill: store domain events derived from a saved AMI stream (``ccd replay --store``).

The events go through the daemon's own :class:`~ccd.store.writer.EventWriter` (spool,
batches, projections), each with a deterministic ``event_id`` derived from what the
event says, so storing the same stream twice writes nothing the second time (the
writer skips event ids already in ``call_events``).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ccd.config import Config
from ccd.model.domain import DomainEvent
from ccd.model.live import LiveModel
from ccd.store.db import connect, open_async_pool
from ccd.store.writer import EventWriter

log = logging.getLogger(__name__)

#: namespace of the uuid5 event ids of replayed events
REPLAY_NAMESPACE = uuid.UUID("5b0c7d1e-8f5e-4c1a-9a53-3f2c6c1d0a11")


def replay_event_ids(events: Sequence[DomainEvent]) -> list[str]:
    """One id per event: the same fact (kind, time, call or agent, and what it says for
    agents and the PBX) gets the same id in every replay of the same stream; identical
    facts in one stream are told apart by their order."""
    seen: Counter[str] = Counter()
    ids: list[str] = []
    for e in events:
        d = e.to_dict()
        key = "|".join((e.kind, f"{e.ts:.6f}", str(d.get("call_id", "")),
                        str(d.get("agent", "")), str(d.get("state", "")),
                        str(d.get("what", ""))))
        n = seen[key]
        seen[key] += 1
        ids.append(str(uuid.uuid5(REPLAY_NAMESPACE, f"{key}|{n}")))
    return ids


def queue_wrapups(url: str) -> dict[str, float]:
    """Each queue's wrap-up seconds from the database, as the daemon gives them to its
    model (``Services.sync_queue_settings``)."""
    with connect(url, application_name="ccd-replay") as conn:
        return {name: float(w) for name, w in conn.execute(
            "SELECT name, wrapup_seconds FROM queues WHERE wrapup_seconds > 0")}


def agent_interfaces(url: str) -> frozenset[str]:
    """The agents' interfaces from the database (the daemon's model knows them too)."""
    with connect(url, application_name="ccd-replay") as conn:
        return frozenset(i for (i,) in conn.execute("SELECT interface FROM agents"))


def configure(model: LiveModel, url: str) -> None:
    """Give a replay's model what the daemon's model learns from the database."""
    model.config.wrapup.update(queue_wrapups(url))
    model.config.agent_interfaces = agent_interfaces(url)
    with connect(url, application_name="ccd-replay") as conn:
        model.config.dids = frozenset(n for (n,) in conn.execute("SELECT number FROM dids"))


@dataclass(slots=True)
class BackfillResult:
    written: int
    duplicates: int
    rejected: int


async def store_events(config: Config, url: str, events: Sequence[DomainEvent],
                       timeout: float = 120.0) -> BackfillResult:
    """Write ``events`` into the database at ``url`` with deterministic ids.

    Uses a private spool under ``<data_dir>`` (a running daemon keeps its own), removed
    afterwards. Raises ``TimeoutError`` if the database does not take them in time
    (nothing is lost: storing again is idempotent).
    """
    config.data_dir.mkdir(parents=True, exist_ok=True)
    spool = Path(tempfile.mkdtemp(prefix="replay-spool-", dir=config.data_dir))
    pool = await open_async_pool(url, name="ccd-replay")
    s = config.store
    writer = EventWriter(pool, spool, batch_size=s.batch_size,
                         flush_interval=min(s.flush_interval, 0.1),
                         retry_interval=s.retry_interval,
                         recording_dir=config.recording.dir)
    try:
        await writer.start()
        for event, event_id in zip(events, replay_event_ids(events), strict=True):
            writer.submit(event, event_id)
        await writer.flush(timeout)
    finally:
        await writer.close(timeout=5)
        await pool.close()
        st = writer.stats
        if not st.spooled_pending and not st.rejected:
            shutil.rmtree(spool, ignore_errors=True)
        else:
            log.warning("replay spool %s kept (%d pending, %d refused)", spool,
                        st.spooled_pending, st.rejected)
    return BackfillResult(st.written, st.duplicates, st.rejected)


def store_events_sync(config: Config, url: str, events: Sequence[DomainEvent],
                      timeout: float = 120.0) -> BackfillResult:
    """:func:`store_events` for synchronous callers (the CLI)."""
    return asyncio.run(store_events(config, url, events, timeout))
