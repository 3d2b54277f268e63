"""Fixtures of the real-PBX suite: one Asterisk, the phones and ccd for the whole session.

Collected only when ``CCD_ASTERISK`` names an installed Asterisk 22 (see tests/conftest.py);
``make test-real`` runs it. Set-up goes through ccd's own CLI, as an operator would.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from real_rig import Asterisk, Ccd, PanelUser, Phone, TcpProxy, free_port, wait_for  # noqa: E402

AGENT_PHONES = {"1001": "Agent Alice", "1002": "Agent Bob", "1003": "Agent Carl",
                "1004": "Agent Dana"}
SUPERVISOR = "1005"
CUSTOMER = "2000"  # "Customer Carol" <5557770001>, calls in like the PSTN (pjsip.conf)
#: numbers the PSTN phone answers for when ccd dials out through the trunk
PSTN_NUMBERS = ("15557770001", "15557770009", "15557770011", "15557770012", "15557770013",
                "15557770014")


@dataclass
class Rig:
    root: Path
    pbx: Asterisk
    ccd: Ccd
    phones: dict[str, Phone]
    pstn: Phone
    proxy: TcpProxy
    boot_log: list[str] = field(default_factory=list)
    panels: dict[str, PanelUser] = field(default_factory=dict)

    def panel(self, user: str) -> PanelUser:
        """A logged-in panel (browser) session of ``user``, kept for the whole run."""
        if user not in self.panels:
            self.panels[user] = PanelUser(f"http://127.0.0.1:{self.ccd.web_port}", user,
                                          f"pw-{user}-real")
        return self.panels[user]

    def phone(self, ext: str) -> Phone:
        return self.phones[ext]

    def quiet(self) -> None:
        """Between scenarios: no channel left, every phone idle, pending events dropped."""
        wait_for(lambda: "0 active channels" in self.pbx.cli("core show channels count"),
                 30, "Asterisk to have no channels left")
        for p in (*self.phones.values(), self.pstn):
            p.drain()


def _setup(ccd: Ccd) -> None:
    """The call centre, set up with ccd's CLI (what the demo seeds, minus the simulator)."""
    ccd.cli("db", "upgrade")
    ccd.cli("tenants", "add", "demo", "--name", "Demo Inc", "--did", "5551000", "--did",
            "5551001", "--did", "5551004")
    for q, rec in (("support", "always"), ("accounts", "always"), ("escalation", "on_demand"),
                   ("overflow", "always")):
        ccd.cli("queues", "add", q, "--tenant", "demo", "--wrapup", "10", "--sl", "20",
                "--recording", rec)
    skills = {"1001": ["support:0", "escalation:1", "overflow:1"],
              "1002": ["support:0", "overflow:1"],
              "1003": ["accounts:0", "overflow:1"],
              "1004": ["accounts:0", "escalation:0", "overflow:1"]}
    for ext, name in AGENT_PHONES.items():
        args = ["agents", "add", name, "--interface", f"PJSIP/{ext}", "--tenant", "demo"]
        for s in skills[ext]:
            args += ["--queue", s]
        ccd.cli(*args)
    ccd.cli("agents", "add", "Supervisor Eve", "--interface", f"PJSIP/{SUPERVISOR}",
            "--tenant", "demo", "--role", "supervisor")
    for user, role, ext in (("alice", "agent", "1001"), ("bob", "agent", "1002"),
                            ("carl", "agent", "1003"), ("dana", "agent", "1004"),
                            ("eve", "supervisor", SUPERVISOR)):
        ccd.cli("users", "add", user, "--tenant", "demo", "--role", role, "--agent",
                f"PJSIP/{ext}", "--password", f"pw-{user}-real")
    # no CLI for customers and hours yet: the rows the panel/demo would create
    tenant = ccd.row("SELECT id FROM tenants WHERE slug = 'demo'")
    assert tenant is not None
    ccd.rows("INSERT INTO customers (tenant_id, name, account_no, language) "
             "VALUES (%s, 'Customer Carol', '770001', 'en') RETURNING id", tenant["id"])
    cust = ccd.row("SELECT id FROM customers WHERE name = 'Customer Carol'")
    assert cust is not None
    ccd.rows("INSERT INTO customer_phones (tenant_id, customer_id, e164) VALUES (%s, %s, "
             "'+15557770001') RETURNING customer_id", tenant["id"], cust["id"])
    ccd.rows("INSERT INTO customers (tenant_id, name, account_no, language) VALUES "
             "(%s, 'Luhn Ltd', '79927398713', 'zh-CN') RETURNING id", tenant["id"])
    for weekday in range(7):  # open around the clock (scenarios change it and restore it)
        ccd.rows("INSERT INTO business_hours (tenant_id, calendar, weekday, opens, closes) "
                 "VALUES (%s, 'support', %s, '00:00', '24:00') RETURNING tenant_id",
                 tenant["id"], weekday)


def create_database(server_url: str) -> str:
    """An empty database on the test run's server (ccd's CLI migrates it)."""
    from ccd.store.db import with_database

    name = f"ccd_real_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(server_url, name)


def drop_database(server_url: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                     .format(sql.Identifier(str(name))))


@pytest.fixture(scope="session")
def rig(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    binary = os.environ["CCD_ASTERISK"]
    root = tmp_path_factory.mktemp("real")
    agi_port = free_port()
    pbx = Asterisk(binary, root / "pbx", agi=f"127.0.0.1:{agi_port}")
    pbx.prepare()
    db = create_database(pg_server_url)
    proxy = TcpProxy(pbx.ami_port)
    ccd = Ccd(root, db, pbx, agi_port, ami_port=proxy.port)
    pstn = Phone(root, "pstn", "", pbx, pstn_numbers=PSTN_NUMBERS)
    (pbx.etc / "site" / "pjsip-trunk-aor.conf").write_text(
        f"contact = sip:127.0.0.1:{pstn.sip_port}\n")
    phones: dict[str, Phone] = {}
    started: list[object] = []
    try:
        ccd.cli("prompts", "install", "--data-dir", str(pbx.root / "data"))
        pbx.start()
        started.append(pbx)
        boot_log = pbx.messages()
        for ext in (*AGENT_PHONES, SUPERVISOR, CUSTOMER):
            phones[ext] = Phone(root, ext, f"pw{ext}", pbx)
            phones[ext].start()
            started.append(phones[ext])
        pstn.start()
        started.append(pstn)
        for ext, ph in phones.items():
            wait_for(ph.registered, 20, f"phone {ext} to register")
        _setup(ccd)
        ccd.start()
        started.append(ccd)
        rig = Rig(root, pbx, ccd, phones, pstn, proxy, boot_log)
        yield rig
    finally:
        for p in rig.panels.values() if "rig" in locals() else ():
            p.stop()
        proxy.stop()
        for thing in reversed(started):
            try:
                thing.stop()  # type: ignore[attr-defined]
            except Exception as exc:  # keep stopping the others
                print(f"stopping {thing}: {exc}")
        drop_database(pg_server_url, db)


@pytest.fixture
def r(rig: Rig) -> Iterator[Rig]:
    """The rig, quiet before and after the scenario."""
    rig.proxy.restore()
    if rig.ccd.proc is None or rig.ccd.proc.poll() is not None:
        rig.ccd.start()  # a scenario stopped it
    if not rig.pbx.fully_booted():
        rig.pbx.start()
    rig.quiet()
    yield rig
    rig.pbx.cli("channel request hangup all")
