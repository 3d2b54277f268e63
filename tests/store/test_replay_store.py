"""``ccd replay FILE --store``: a saved AMI stream backfilled through the daemon's writer,
idempotently, and seen by ``ccd report``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ccd.cli.main import EXIT_OK, EXIT_UNAVAILABLE, cli
from ccd.demo_seed import seed

REAL2 = Path("/work/shared/asterisk-captures/real-2")
if not REAL2.exists():
    REAL2 = Path(__file__).resolve().parents[3] / "shared" / "asterisk-captures" / "real-2"


def ccd(tmp_path: Path, db_url: str, *args: str) -> tuple[int, str, str]:
    env = {"CCD_CONFIG": "", "CCD_DATABASE_URL": db_url, "CCD_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(cli, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_replay_store_writes_once_and_reports(db_url: str, tmp_path: Path,
                                              rows: Callable[..., list[tuple[Any, ...]]],
                                              snapshot: Callable[[str], dict[str, Any]]) -> None:
    seed(db_url, tmp_path)
    path = next(REAL2.glob("T5c-*.ami"))
    code, out, err = ccd(tmp_path, db_url, "replay", str(path), "--store", "--json")
    assert code == EXIT_OK, err
    first = json.loads(out)
    assert first["stored"]["written"] == len(first["events"]) > 0
    assert first["stored"]["already_stored"] == 0
    # T5c.expected.json: call 1796693752.21 on the support DID, answered by PJSIP/1002
    (call,) = rows(db_url, "SELECT c.call_id, t.slug, c.did, c.queue, c.agent, c.outcome, "
                           "c.open FROM calls c JOIN tenants t ON t.id = c.tenant_id")
    assert call == ("1796693752.21", "demo", "5551000", "support", "PJSIP/1002", "answered",
                    False)
    before = snapshot(db_url)
    # a second backfill of the same stream stores nothing twice
    code, out, err = ccd(tmp_path, db_url, "replay", str(path), "--store", "--json")
    assert code == EXIT_OK, err
    second = json.loads(out)
    assert second["stored"] == {"written": 0, "already_stored": len(first["events"]),
                                "refused": 0}
    assert snapshot(db_url) == before
    assert not list(tmp_path.glob("replay-spool-*"))  # the private spool is gone
    # ccd report sees the backfilled call
    code, out, err = ccd(tmp_path, db_url, "report", "queues", "--from", "2026-12-08T00:00",
                         "--to", "2026-12-09T00:00", "--total", "--json")
    assert code == EXIT_OK, err
    [support] = [r for r in json.loads(out) if r["queue"] == "support"]
    assert (support["offered"], support["answered"]) == (1, 1)


def test_replay_store_without_database_exits_3(tmp_path: Path) -> None:
    path = next(REAL2.glob("T5c-*.ami"))
    url = f"postgresql://ccd@/ccd?host={tmp_path}&connect_timeout=1"
    code, _, err = ccd(tmp_path, url, "replay", str(path), "--store")
    assert code == EXIT_UNAVAILABLE
    assert "run the same command again" in err
