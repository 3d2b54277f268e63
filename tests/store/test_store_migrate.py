"""Migrations: order, idempotence, checksums, status, locking, and the real schema."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ccd.store import migrate
from ccd.store.db import DatabaseUnavailable


def write(d: Path, name: str, text: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    p = d / name
    p.write_text(text)
    return p


@pytest.fixture
def sql_dir(tmp_path: Path) -> Path:
    d = tmp_path / "sql"
    write(d, "001_first.sql", "CREATE TABLE a (id int PRIMARY KEY);\n"
                              "INSERT INTO a VALUES (1);\n")
    # 002 needs 001, 010 needs 002: only the right order works
    write(d, "002_second.sql", "CREATE TABLE b (id int PRIMARY KEY REFERENCES a);\n"
                               "INSERT INTO b SELECT id FROM a;\n")
    write(d, "010_other_team.sql", "ALTER TABLE b ADD COLUMN note text NOT NULL DEFAULT '50%';\n"
                                   "INSERT INTO a VALUES (2); INSERT INTO b VALUES (2);\n")
    return d


def applied(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT version, name FROM schema_migrations "
                            "ORDER BY applied_at, version").fetchall()


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_applies_in_order_and_records_each(empty_db_url: str, sql_dir: Path) -> None:
    done = migrate.upgrade(empty_db_url, sql_dir)
    assert [m.filename for m in done] == ["001_first.sql", "002_second.sql", "010_other_team.sql"]
    assert applied(empty_db_url) == [(1, "first"), (2, "second"), (10, "other_team")]
    assert rows(empty_db_url, "SELECT id, note FROM b ORDER BY id") == [(1, "50%"), (2, "50%")]
    sums = dict(rows(empty_db_url, "SELECT version, checksum FROM schema_migrations"))
    assert sums[2] == migrate.checksum((sql_dir / "002_second.sql").read_bytes())


def test_second_run_is_a_no_op(empty_db_url: str, sql_dir: Path) -> None:
    migrate.upgrade(empty_db_url, sql_dir)
    before = rows(empty_db_url, "SELECT version, applied_at FROM schema_migrations")
    assert migrate.upgrade(empty_db_url, sql_dir) == []
    assert rows(empty_db_url, "SELECT version, applied_at FROM schema_migrations") == before
    assert rows(empty_db_url, "SELECT count(*) FROM a") == [(2,)]


def test_checksum_mismatch_is_reported_and_nothing_applied(empty_db_url: str,
                                                           sql_dir: Path) -> None:
    migrate.upgrade(empty_db_url, sql_dir)
    write(sql_dir, "002_second.sql", "CREATE TABLE b (id int);\n")  # edited after release
    write(sql_dir, "011_new.sql", "CREATE TABLE c (id int);\n")
    with pytest.raises(migrate.ChecksumMismatch, match=r"002_second\.sql was changed"):
        migrate.upgrade(empty_db_url, sql_dir)
    assert rows(empty_db_url, "SELECT to_regclass('c')") == [(None,)]
    st = migrate.status(empty_db_url, sql_dir)
    assert [m.version for m, _ in st.changed] == [2]
    assert not st.up_to_date
    # CR/LF-only differences are not changes
    (sql_dir / "002_second.sql").write_bytes(
        b"CREATE TABLE b (id int PRIMARY KEY REFERENCES a);\r\nINSERT INTO b SELECT id FROM a;\r\n")
    assert migrate.status(empty_db_url, sql_dir).changed == []


def test_status_lists_pending(empty_db_url: str, sql_dir: Path, tmp_path: Path) -> None:
    st = migrate.status(empty_db_url, sql_dir)  # never migrated: no schema_migrations yet
    assert [m.version for m in st.pending] == [1, 2, 10]
    assert st.applied == []
    assert rows(empty_db_url, "SELECT to_regclass('schema_migrations')") == [(None,)]
    migrate.upgrade(empty_db_url, sql_dir)
    write(sql_dir, "003_later.sql", "CREATE TABLE d (id int);\n")
    st = migrate.status(empty_db_url, sql_dir)
    assert [a.version for a in st.applied] == [1, 2, 10]
    assert [m.filename for m in st.pending] == ["003_later.sql"]
    d = st.to_dict()
    assert d["up_to_date"] is False and d["pending"][0]["version"] == 3
    # out of order (a lower number than one applied) is still applied
    assert [m.version for m in migrate.upgrade(empty_db_url, sql_dir)] == [3]
    # a migration the database has but this checkout lacks is reported, not fatal
    (sql_dir / "010_other_team.sql").unlink()
    st = migrate.status(empty_db_url, sql_dir)
    assert [a.version for a in st.unknown] == [10] and st.up_to_date
    assert migrate.upgrade(empty_db_url, sql_dir) == []


def test_failed_migration_is_rolled_back(empty_db_url: str, sql_dir: Path) -> None:
    write(sql_dir, "003_broken.sql", "CREATE TABLE e (id int);\nINSERT INTO nowhere VALUES (1);\n")
    write(sql_dir, "004_after.sql", "CREATE TABLE f (id int);\n")
    with pytest.raises(migrate.MigrationError, match=r"003_broken\.sql failed.*nowhere"):
        migrate.upgrade(empty_db_url, sql_dir)
    # 001 and 002 stay applied; 003 left nothing behind; nothing after it was tried
    assert [v for v, _ in applied(empty_db_url)] == [1, 2]
    assert rows(empty_db_url, "SELECT to_regclass('e'), to_regclass('f')") == [(None, None)]
    assert rows(empty_db_url, "SELECT count(*) FROM information_schema.columns "
                              "WHERE table_name = 'b' AND column_name = 'note'") == [(0,)]


def test_bad_file_names_and_duplicates(tmp_path: Path) -> None:
    d = tmp_path / "bad"
    write(d, "1-init.sql", "SELECT 1;")
    with pytest.raises(migrate.MigrationError, match=r"NNN_name\.sql"):
        migrate.discover(d)
    d = tmp_path / "dup"
    write(d, "001_a.sql", "SELECT 1;")
    write(d, "001_b.sql", "SELECT 1;")
    with pytest.raises(migrate.MigrationError, match="share version 1"):
        migrate.discover(d)


def test_concurrent_upgrades_apply_once(empty_db_url: str, sql_dir: Path) -> None:
    write(sql_dir, "011_slow.sql", "SELECT pg_sleep(0.5);\nCREATE TABLE slow (id int);\n")
    results: list[object] = []

    def run() -> None:
        try:
            results.append(migrate.upgrade(empty_db_url, sql_dir))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(isinstance(r, list) for r in results), results
    counts = sorted(len(r) for r in results)  # type: ignore[arg-type]
    assert counts == [0, 4]  # one applied everything, the other waited and found nothing
    assert time.monotonic() - t0 >= 0.5
    assert [v for v, _ in applied(empty_db_url)] == [1, 2, 10, 11]


def test_lock_timeout(empty_db_url: str, sql_dir: Path) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", migrate.LOCK_KEY)
        with pytest.raises(migrate.MigrationError, match="migration lock"):
            migrate.upgrade(empty_db_url, sql_dir, lock_timeout=0.3)
    assert rows(empty_db_url, "SELECT to_regclass('a')") == [(None,)]


def test_unreachable_database(tmp_path: Path, sql_dir: Path) -> None:
    url = f"postgresql://ccd:s3cret@/ccd?host={tmp_path}"  # no server there
    with pytest.raises(DatabaseUnavailable) as err:
        migrate.upgrade(url, sql_dir)
    assert "s3cret" not in str(err.value) and "***" in str(err.value)


def test_sql_dir_is_found_in_the_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CCD_SQL_DIR", raising=False)
    d = migrate.sql_dir()
    assert (d / "001_init.sql").is_file()
    assert d == Path(migrate.__file__).resolve().parents[2] / "sql"
    monkeypatch.setenv("CCD_SQL_DIR", str(tmp_path / "missing"))
    with pytest.raises(migrate.MigrationError, match="CCD_SQL_DIR"):
        migrate.sql_dir()


# ---------------------------------------------------------------- the real schema


TENANT_TABLES = ["dids", "queues", "customers", "customer_phones", "agents", "agent_skills",
                 "calls", "call_legs", "call_events", "recordings", "agent_states"]


def test_real_schema_is_applied_and_tenant_owned(db_url: str) -> None:
    st = migrate.status(db_url)
    assert st.up_to_date and 1 in [a.version for a in st.applied]
    have = {t for (t,) in rows(db_url, """
        SELECT table_name FROM information_schema.columns
        WHERE table_schema = 'public' AND column_name = 'tenant_id'
          AND is_nullable = 'NO'""")}
    assert set(TENANT_TABLES) <= have
    assert rows(db_url, "SELECT slug, timezone, default_country, retention_days FROM tenants") \
        == [("default", "UTC", "US", 365)]
    pk = rows(db_url, """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = 'call_events'::regclass AND i.indisprimary""")
    assert pk == [("event_id", "uuid")]


def test_tenant_resolution_did_then_queue_then_default(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        acme = conn.execute("INSERT INTO tenants (slug, name, timezone) "
                            "VALUES ('acme', 'Acme', 'Europe/Paris') RETURNING id").fetchone()[0]
        beta = conn.execute("INSERT INTO tenants (slug, name) VALUES ('beta', 'Beta') "
                            "RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO dids (number, tenant_id) VALUES ('5551000', %s)", (acme,))
        conn.execute("INSERT INTO queues (tenant_id, name) VALUES (%s, 'support')", (beta,))
        default = conn.execute("SELECT ccd_default_tenant()").fetchone()[0]

        def resolve(did: str | None, queue: str | None) -> int:
            return conn.execute("SELECT ccd_resolve_tenant(%s, %s)", (did, queue)).fetchone()[0]

        assert resolve("5551000", "support") == acme
        assert resolve("5559999", "support") == beta
        assert resolve("", "support") == beta
        assert resolve("5559999", "nope") == default
        assert resolve(None, None) == default


def test_schema_constraints(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        t = conn.execute("SELECT id FROM tenants WHERE slug = 'default'").fetchone()[0]
        for bad in [
            "DELETE FROM tenants WHERE slug = 'default'",
            "UPDATE tenants SET slug = 'other' WHERE slug = 'default'",
            "INSERT INTO tenants (slug, name, timezone) VALUES ('x', 'X', 'Mars/Olympus')",
            f"INSERT INTO queues (tenant_id, name, recording_policy) "
            f"VALUES ({t}, 'q', 'sometimes')",
            f"INSERT INTO agents (tenant_id, name, interface, role) "
            f"VALUES ({t}, 'A', 'PJSIP/1', 'boss')",
        ]:
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(bad)
        conn.execute(f"INSERT INTO queues (tenant_id, name) VALUES ({t}, 'support')")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(f"INSERT INTO queues (tenant_id, name) VALUES ({t}, 'support')")
        cust = conn.execute(f"INSERT INTO customers (tenant_id, name, account_no) "
                            f"VALUES ({t}, 'Carol', 'C1') RETURNING id").fetchone()[0]
        conn.execute(f"INSERT INTO customer_phones (tenant_id, customer_id, e164) "
                     f"VALUES ({t}, {cust}, '+15557770001')")
        with pytest.raises(psycopg.errors.CheckViolation):  # not E.164
            conn.execute(f"INSERT INTO customer_phones (tenant_id, customer_id, e164) "
                         f"VALUES ({t}, {cust}, '5557770001')")
        other = conn.execute("INSERT INTO tenants (slug, name) VALUES ('o', 'O') "
                             "RETURNING id").fetchone()[0]
        with pytest.raises(psycopg.errors.ForeignKeyViolation):  # phone of another tenant
            conn.execute(f"INSERT INTO customer_phones (tenant_id, customer_id, e164) "
                         f"VALUES ({other}, {cust}, '+15557770002')")
    defs = [d for (d,) in rows(db_url, "SELECT indexdef FROM pg_indexes "
                                        "WHERE tablename = 'customer_phones'")]
    assert any(d.startswith("CREATE UNIQUE INDEX customer_phones_lookup") and
               d.endswith("(tenant_id, e164)") for d in defs), defs


def test_connection_lost_while_migrating(empty_db_url: str, sql_dir: Path,
                                         pg_proxy: Any) -> None:
    write(sql_dir, "011_slow.sql", "CREATE TABLE slow (id int);\nSELECT pg_sleep(3);\n")
    url = pg_proxy.url(empty_db_url)

    def cut_while_011_runs() -> None:
        """Cut the link once the server is inside 011 (not after a guessed delay: on a
        busy machine 001-010 may take longer than that)."""
        with psycopg.connect(empty_db_url, autocommit=True) as watch:
            end = time.monotonic() + 60
            while time.monotonic() < end:
                row = watch.execute("SELECT count(*) FROM pg_stat_activity WHERE state = "
                                    "'active' AND pid <> pg_backend_pid() AND query LIKE %s",
                                    ("%pg_sleep(3)%",)).fetchone()
                if row and row[0]:
                    pg_proxy.cut()
                    return
                time.sleep(0.01)

    threading.Thread(target=cut_while_011_runs, daemon=True).start()
    with pytest.raises(DatabaseUnavailable, match=r"while applying 011_slow\.sql"):
        migrate.upgrade(url, sql_dir)
    # the interrupted migration never committed: it is still pending
    st = migrate.status(empty_db_url, sql_dir)
    assert [m.version for m in st.pending] == [11]
