"""Demo data for ``make run``: a tenant, its DIDs, queues, agents, users and customers.

Matches ``asterisk-conf/`` (queues, PJSIP endpoints 1001-1005, DIDs 5551000/1/4). Safe to
run again: existing rows are kept. Passwords are generated once per data directory and
kept in ``<data_dir>/demo-logins.txt`` (mode 0600), never in the code.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import psycopg

from ccd.security import hash_password

QUEUES = {  # name -> (display name, wrap-up s, SL threshold s, recording policy)
    "support": ("Support", 10, 20, "always"),
    "accounts": ("Accounts", 10, 30, "always"),
    "escalation": ("Escalation", 10, 20, "on_demand"),
    "overflow": ("Overflow", 10, 60, "never"),
}
AGENTS = [  # name, interface, skills (queue, penalty)
    ("Agent Alice", "PJSIP/1001", [("support", 0), ("escalation", 1), ("overflow", 1)]),
    ("Agent Bob", "PJSIP/1002", [("support", 0), ("overflow", 1)]),
    ("Agent Carl", "PJSIP/1003", [("accounts", 0), ("overflow", 1)]),
    ("Agent Dana", "PJSIP/1004", [("accounts", 0), ("escalation", 0), ("overflow", 1)]),
]
SUPERVISOR = ("Supervisor Eve", "PJSIP/1005")
USERS = [  # username, role, agent interface, language
    ("alice", "agent", "PJSIP/1001", "en"),
    ("bob", "agent", "PJSIP/1002", "zh-CN"),
    ("carl", "agent", "PJSIP/1003", "en"),
    ("dana", "agent", "PJSIP/1004", "en"),
    ("eve", "supervisor", "PJSIP/1005", "en"),
    ("admin", "admin", None, "en"),
]
CUSTOMERS = [  # name, account, vip, language, phones
    ("Customer Carol", "770001", False, "en", ["+15557770001"]),
    ("王伟 (Wang Wei)", "880002", True, "zh-CN", ["+8613800138000"]),
    ("ACME Procurement", "990003", True, "en", ["+15558000001", "+15558000002"]),
]


def logins(data_dir: Path) -> dict[str, str]:
    """The demo users' passwords, generated at the first call."""
    path = data_dir / "demo-logins.txt"
    if path.exists():
        pairs = (line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)
        return {u: p for u, p in pairs}
    data_dir.mkdir(parents=True, exist_ok=True)
    found = {u: secrets.token_urlsafe(9) for u, *_ in USERS}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(f"{u} {p}\n" for u, p in found.items()))
    return found


def seed(url: str, data_dir: Path) -> dict[str, Any]:
    """Create the demo tenant's set-up if missing; return what the demo prints."""
    passwords = logins(data_dir)
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute("INSERT INTO tenants (slug, name, timezone, default_country) VALUES "
                     "('demo', 'Demo Call Centre', 'UTC', 'US') ON CONFLICT (slug) DO NOTHING")
        (tid,) = conn.execute("SELECT id FROM tenants WHERE slug = 'demo'").fetchone()  # type: ignore[misc]
        for did in ("5551000", "5551001", "5551004"):
            conn.execute("INSERT INTO dids (number, tenant_id) VALUES (%s, %s) "
                         "ON CONFLICT (number) DO NOTHING", (did, tid))
        for name, (display, wrapup, sl, rec) in QUEUES.items():
            conn.execute("INSERT INTO queues (tenant_id, name, display_name, wrapup_seconds, "
                         "sl_threshold_seconds, recording_policy, surveys) VALUES "
                         "(%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                         (tid, name, display, wrapup, sl, rec, name == "support"))
        for name, iface, skills in [*AGENTS, (*SUPERVISOR, [])]:
            conn.execute("INSERT INTO agents (tenant_id, name, interface, extension, role) "
                         "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (interface) DO NOTHING",
                         (tid, name, iface, iface.split("/")[1],
                          "supervisor" if (name, iface) == SUPERVISOR else "agent"))
            for queue, penalty in skills:
                conn.execute("INSERT INTO agent_skills (tenant_id, agent_id, queue_id, penalty) "
                             "SELECT %s, a.id, q.id, %s FROM agents a, queues q WHERE "
                             "a.interface = %s AND q.name = %s ON CONFLICT DO NOTHING",
                             (tid, penalty, iface, queue))
        for username, role, iface, lang in USERS:
            if conn.execute("SELECT 1 FROM users WHERE username = %s", (username,)).fetchone():
                continue
            conn.execute("INSERT INTO users (tenant_id, username, password_hash, role, agent_id,"
                         " language) VALUES (%s, %s, %s, %s, (SELECT id FROM agents WHERE "
                         "interface = %s), %s)",
                         (tid, username, hash_password(passwords[username]), role, iface, lang))
        # the demo call centre is open around the clock (the flow's own calendar would close
        # it outside Shanghai office hours)
        for weekday in range(7):
            conn.execute("INSERT INTO business_hours (tenant_id, calendar, weekday, opens, closes)"
                         " VALUES (%s, 'support', %s, '00:00', '24:00') ON CONFLICT DO NOTHING",
                         (tid, weekday))
        for name, account, vip, lang, phones in CUSTOMERS:
            conn.execute("INSERT INTO customers (tenant_id, name, account_no, vip, language) "
                         "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id, account_no) "
                         "DO NOTHING", (tid, name, account, vip, lang))
            for phone in phones:
                conn.execute("INSERT INTO customer_phones (tenant_id, customer_id, e164) "
                             "SELECT %s, id, %s FROM customers WHERE tenant_id = %s AND "
                             "account_no = %s ON CONFLICT DO NOTHING", (tid, phone, tid, account))
    return {"tenant": "demo", "users": [(u, r, passwords[u]) for u, r, *_ in USERS],
            "agents": [a[1] for a in AGENTS]}
