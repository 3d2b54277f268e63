"""The ``recordings`` projection, confined to each tenant's recording directory.

The writer (:func:`ccd.store.writer.plan`) hands every event to :meth:`RecordingIndex.statements`.
A recording path (``recording_started`` / ``recording_stopped`` file, the call record's
``recordings`` at ``call_ended``) is indexed only if, resolved (:func:`ccd.recfiles.locate`),
it lies inside ``<recording.dir>/<slug>/`` where ``<slug>`` is the tenant the call belongs to
at that moment. At ``call_ended`` the call's rows are checked again against its final tenant
(a call's tenant can change when its queue becomes known: its recordings follow it).

Anything else is refused: not indexed (so neither exported nor deleted by retention), kept in
``recording_refusals`` with the call id, the path and the reason, and logged (the database
raises a WARNING for every new refusal, which :func:`ccd.store.db.log_notice` logs).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, LiteralString

from ccd.recfiles import Refused, locate, real_root

log = logging.getLogger(__name__)

Statement = tuple[LiteralString, dict[str, Any]]

#: refused before it reached the database (outside recording.dir, not a tenant directory ...)
REFUSE: LiteralString = """
INSERT INTO recording_refusals (tenant_id, call_id, path, reason, event_id)
SELECT tenant_id, call_id, %(file)s, %(reason)s, %(event_id)s FROM calls
WHERE call_id = %(call_id)s
ON CONFLICT (call_id, path) DO NOTHING
"""

# the tenant check and the refusal of a path in another tenant's directory, shared by the
# three statements below (a data-modifying CTE always runs)
_CHECK: LiteralString = """
WITH c AS (
    SELECT c.tenant_id, c.call_id, t.slug,
           starts_with(%(file)s, %(root)s || t.slug || '/') AS inside
    FROM calls c JOIN tenants t ON t.id = c.tenant_id WHERE c.call_id = %(call_id)s),
refused AS (
    INSERT INTO recording_refusals (tenant_id, call_id, path, reason, event_id)
    SELECT tenant_id, call_id, %(raw)s, 'in the directory of tenant ' || %(slug)s
           || ', not in ' || %(root)s || slug || '/ (the call''s tenant)', %(event_id)s
    FROM c WHERE NOT inside
    ON CONFLICT (call_id, path) DO NOTHING)
"""

STARTED: LiteralString = _CHECK + """
INSERT INTO recordings AS r (tenant_id, call_id, path, channel, started_at)
SELECT tenant_id, call_id, %(file)s, %(channel)s, %(started)s::timestamptz FROM c WHERE inside
ON CONFLICT (path) DO UPDATE SET
    started_at = LEAST(r.started_at, EXCLUDED.started_at),
    channel = CASE WHEN r.channel = '' THEN EXCLUDED.channel ELSE r.channel END
WHERE r.call_id = EXCLUDED.call_id
"""

STOPPED: LiteralString = _CHECK + """
INSERT INTO recordings AS r (tenant_id, call_id, path, channel, stopped_at)
SELECT tenant_id, call_id, %(file)s, %(channel)s, %(ts)s FROM c WHERE inside
ON CONFLICT (path) DO UPDATE SET
    stopped_at = GREATEST(r.stopped_at, EXCLUDED.stopped_at)
WHERE r.call_id = EXCLUDED.call_id
"""

ENDED: LiteralString = _CHECK + """
INSERT INTO recordings (tenant_id, call_id, path)
SELECT tenant_id, call_id, %(file)s FROM c WHERE inside
ON CONFLICT (path) DO NOTHING
"""

#: at call_ended: rows of the call that are not in its (final) tenant's directory leave the index
RECHECK: LiteralString = """
WITH gone AS (
    DELETE FROM recordings r USING calls c JOIN tenants t ON t.id = c.tenant_id
    WHERE c.call_id = %(call_id)s AND r.call_id = c.call_id
      AND NOT starts_with(r.path, %(root)s || t.slug || '/')
    RETURNING r.tenant_id, r.call_id, r.path, t.slug)
INSERT INTO recording_refusals (tenant_id, call_id, path, reason, event_id)
SELECT tenant_id, call_id, path, 'not in ' || %(root)s || slug
       || '/: the call belongs to that tenant now', %(event_id)s FROM gone
ON CONFLICT (call_id, path) DO NOTHING
"""

_KINDS: dict[str, LiteralString] = {"recording_started": STARTED,
                                    "recording_stopped": STOPPED, "call_ended": ENDED}


class RecordingIndex:
    """Turns the recording paths of an event into confined ``recordings`` rows.

    ``recording_dir`` is ``recording.dir``; None (a writer without one) refuses every path.
    """

    def __init__(self, recording_dir: Path | str | None) -> None:
        self.root = real_root(recording_dir) if recording_dir is not None else None

    def statements(self, base: dict[str, Any], event: dict[str, Any]) -> list[Statement]:
        """The statements for ``event`` (``base``: event_id, ts, call_id, agent); [] when it
        carries no recording path."""
        kind = str(event.get("kind") or "")
        query = _KINDS.get(kind)
        if query is None or not base.get("call_id"):
            return []
        if kind == "call_ended":
            record = event.get("record")
            raw = record.get("recordings") if isinstance(record, dict) else None
            paths = [p for p in raw or [] if p != ""]
        else:
            paths = [event["file"]] if event.get("file") else []
        out: list[Statement] = []
        seen: set[str] = set()
        for raw_path in paths:
            text = (raw_path if isinstance(raw_path, str) else repr(raw_path))[:4200]
            try:
                if self.root is None:
                    raise Refused("the writer has no recording directory (recording.dir)")
                path, slug = locate(raw_path, self.root)
            except Refused as exc:
                if text not in seen:
                    seen.add(text)
                    out.append((REFUSE, {**base, "file": text, "reason": exc.reason}))
                continue
            if path in seen:
                continue
            seen.add(path)
            # a recording a resync found running started at a time ccd does not know
            started = None if kind == "recording_started" and event.get("adopted") \
                else base.get("ts")
            out.append((query, {**base, "file": path, "raw": text, "slug": slug,
                                "root": f"{self.root}/", "started": started,
                                "channel": str(event.get("channel") or "")}))
        if kind == "call_ended" and self.root is not None:
            out.append((RECHECK, {**base, "root": f"{self.root}/"}))
        return out
