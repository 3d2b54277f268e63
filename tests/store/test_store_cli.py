"""``ccd db upgrade`` / ``ccd db status`` and the embedded PostgreSQL."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ccd.cli import db as _db  # noqa: F401  (registers `ccd db` until main.py imports it)
from ccd.cli.main import EXIT_ERROR, EXIT_OK, EXIT_UNAVAILABLE, cli
from ccd.store import migrate
from ccd.store.db import DatabaseUnavailable, connect
from ccd.store.embedded import EmbeddedPostgres


def run(*args: str, **env: str) -> tuple[int, str, str]:
    base = {"CCD_CONFIG": "", "CCD_SQL_DIR": ""}
    result = CliRunner().invoke(cli, ["db", *args], env={**base, **env})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def with_password(url: str, password: str) -> str:
    return url.replace("postgresql://postgres:@", f"postgresql://postgres:{password}@")


def test_upgrade_then_status(empty_db_url: str) -> None:
    url = with_password(empty_db_url, "hunter2")  # trust auth: any password works
    code, out, _ = run("status", CCD_DATABASE_URL=url)
    assert code == EXIT_OK and "pending" in out and "ccd db upgrade" in out
    code, out, _ = run("upgrade", CCD_DATABASE_URL=url)
    assert code == EXIT_OK, out
    assert "applied 001_init.sql" in out and "hunter2" not in out and ":***@" in out
    code, out, _ = run("upgrade", CCD_DATABASE_URL=url)
    assert code == EXIT_OK and "nothing to apply" in out
    code, out, _ = run("status", "--json", CCD_DATABASE_URL=url)
    assert code == EXIT_OK
    st = json.loads(out)
    assert st["up_to_date"] is True and st["pending"] == []
    assert [a["version"] for a in st["applied"]] == [m.version for m in migrate.discover()]
    assert "hunter2" not in out and st["database"].startswith("postgresql://postgres:***@")


def test_unreachable_database_exits_3(tmp_path: Path) -> None:
    url = f"postgresql://ccd:hunter2@/ccd?host={tmp_path}"
    for cmd in (["upgrade"], ["status"], ["status", "--json"]):
        code, out, err = run(*cmd, CCD_DATABASE_URL=url)
        assert code == EXIT_UNAVAILABLE
        assert "cannot connect to postgresql://ccd:***@" in err
        assert "CCD_DATABASE_URL" in err and "hunter2" not in out + err


def test_changed_migration_exits_1(empty_db_url: str, tmp_path: Path) -> None:
    sql = tmp_path / "sql"
    sql.mkdir()
    (sql / "001_a.sql").write_text("CREATE TABLE a (id int);\n")
    code, _, _ = run("upgrade", CCD_DATABASE_URL=empty_db_url, CCD_SQL_DIR=str(sql))
    assert code == EXIT_OK
    (sql / "001_a.sql").write_text("CREATE TABLE a (id bigint);\n")
    code, _, err = run("upgrade", CCD_DATABASE_URL=empty_db_url, CCD_SQL_DIR=str(sql))
    assert code == EXIT_ERROR and "001_a.sql was changed after it was applied" in err
    code, out, _ = run("status", "--json", CCD_DATABASE_URL=empty_db_url, CCD_SQL_DIR=str(sql))
    assert code == EXIT_ERROR and json.loads(out)["changed"][0]["file"] == "001_a.sql"
    code, out, _ = run("status", CCD_DATABASE_URL=empty_db_url, CCD_SQL_DIR=str(sql))
    assert code == EXIT_ERROR and "changed" in out


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Outside pytest's tmp_path: a pytest session starting meanwhile resets
    /tmp/pytest-of-<user> to 0700, and the server runs as another user when we are root."""
    top = Path(tempfile.mkdtemp(prefix="ccd-embedded-"))
    yield top / "var"
    shutil.rmtree(top, ignore_errors=True)


def test_embedded_server_when_no_url(data_dir: Path) -> None:
    data = data_dir
    code, out, err = run("upgrade", CCD_DATA_DIR=str(data), CCD_DATABASE_URL="")
    assert code == EXIT_OK, err
    assert "applied 001_init.sql" in out and (data / "pgdata" / "PG_VERSION").is_file()
    code, out, _ = run("status", "--json", CCD_DATA_DIR=str(data), CCD_DATABASE_URL="")
    assert code == EXIT_OK and json.loads(out)["up_to_date"] is True

    # a handle left by a process that died without detaching must not keep it running
    dead = subprocess.Popen(["true"])
    dead.wait()
    (data / "pgdata" / ".handle_pids.json").write_text(json.dumps([dead.pid]))
    pg = EmbeddedPostgres(data)
    url = pg.start()
    with connect(url) as conn:
        assert conn.execute("SELECT current_database(), count(*) FROM schema_migrations"
                            ).fetchone() == ("ccd", len(migrate.discover()))
    pg.stop()
    with pytest.raises(DatabaseUnavailable):  # stopped: it was the last user
        connect(url, connect_timeout=2).close()
