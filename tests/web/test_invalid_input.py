"""Text no field can hold (a NUL byte, an unpaired surrogate, control characters), sent to
every panel endpoint that takes text (URL path, query, form, JSON body, Socket.IO): a clear
400 naming the field, nothing stored, never a 500. Against the real stack."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest
import requests
from web_support import Live, Stack, Web

pytestmark = pytest.mark.timeout(240)

NUL = "a\x00b"
TABLES = ("tickets", "ticket_events", "customers", "customer_phones", "call_dispositions",
          "login_throttle")


def _counts(stack: Stack) -> dict[str, Any]:
    with psycopg.connect(stack.db_url) as conn:
        out: dict[str, Any] = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()
                               for t in TABLES}
        out["languages"] = conn.execute(
            "SELECT array_agg(language ORDER BY id) FROM users").fetchone()
        out["ticket"] = conn.execute(
            "SELECT array_agg((status, due_at, assignee_agent_id, assignee_queue_id) "
            "ORDER BY id) FROM tickets").fetchone()
    return out


def _assert_refused(r: requests.Response, field: str, why: str = "a NUL byte") -> None:
    assert r.status_code == 400, (r.status_code, r.text[:300])
    if r.headers.get("Content-Type", "").startswith("application/json"):
        data = r.json()
        assert data["ok"] is False
        message = data["error"]
    else:
        assert r.headers["Content-Type"].startswith("text/plain")
        message = r.text
    assert message.startswith("invalid input"), message
    assert field in message and why in message, message


#: (who, method, path, kind, payload, field named in the answer); {carol}, {ticket},
#: {bob}, {call} are filled in from the seed data
CASES: list[tuple[str, str, str, str, dict[str, Any], str]] = [
    # pages: forms and queries
    ("alice", "POST", "/language", "form", {"language": "en" + NUL}, "'language'"),
    ("alice", "GET", "/tickets", "query", {"q": NUL}, "'q'"),
    ("alice", "GET", "/tickets", "query", {"status": NUL}, "'status'"),
    ("alice", "GET", "/tickets", "query", {"sort": NUL}, "'sort'"),
    ("alice", "GET", "/tickets/new", "query", {"subject": NUL}, "'subject'"),
    ("alice", "GET", "/tickets/new", "query", {"call_id": NUL}, "'call_id'"),
    ("alice", "POST", "/tickets/new", "form", {"subject": NUL}, "'subject'"),
    ("alice", "POST", "/tickets/new", "form", {"subject": "ok", "description": NUL},
     "'description'"),
    ("alice", "POST", "/tickets/new", "form", {"subject": "ok", "call_id": NUL}, "'call_id'"),
    ("alice", "POST", "/tickets/new", "form", {"subject": "ok", "priority": NUL},
     "'priority'"),
    ("alice", "POST", "/tickets/new", "form", {"subject": "ok", "assignee": NUL},
     "'assignee'"),
    ("alice", "POST", "/tickets/new", "form", {"subject": "ok", "due": NUL}, "'due'"),
    ("alice", "POST", "/tickets/new", "form", {"subject": "ok", "customer_id": NUL},
     "'customer_id'"),
    ("alice", "POST", "/tickets/{ticket}/comment", "form", {"body": NUL}, "'body'"),
    ("alice", "POST", "/tickets/{ticket}/status", "form", {"status": NUL}, "'status'"),
    ("alice", "POST", "/tickets/{ticket}/assign", "form", {"assignee": NUL}, "'assignee'"),
    ("alice", "POST", "/tickets/{ticket}/due", "form", {"due": NUL}, "'due'"),
    ("alice", "GET", "/customers", "query", {"q": NUL}, "'q'"),
    # JSON API
    ("alice", "POST", "/api/agent/pause", "json", {"reason": NUL}, "'reason'"),
    ("alice", "GET", "/api/calls/x%00y", "query", {}, "'call_id'"),
    ("alice", "POST", "/api/calls/x%00y/hangup", "json", {}, "'call_id'"),
    ("alice", "POST", "/api/calls/{call}/record", "json", {"what": NUL}, "'what'"),
    ("alice", "POST", "/api/calls/{call}/transfer", "json",
     {"kind": "number", "target": "555" + NUL}, "'target'"),
    ("alice", "POST", "/api/calls/{call}/wrapup", "json",
     {"code": "resolved", "notes": NUL}, "'notes'"),
    ("alice", "POST", "/api/dial", "json", {"number": "555" + NUL}, "'number'"),
    ("alice", "POST", "/api/customers", "json", {"name": NUL, "phone": "+15550001111"},
     "'name'"),
    ("alice", "POST", "/api/customers", "json", {"name": "ok", "phone": "+1555" + NUL},
     "'phone'"),
    ("alice", "POST", "/api/customers", "json", {"name": "ok", "account_no": NUL},
     "'account_no'"),
    ("alice", "POST", "/api/customers", "json", {"name": "ok", "notes": NUL}, "'notes'"),
    ("alice", "POST", "/api/customers", "json", {"name": "ok", "call_id": NUL}, "'call_id'"),
    ("alice", "GET", "/api/customers/{carol}", "query", {"call": NUL}, "'call'"),
    ("alice", "GET", "/api/tickets", "query", {"q": NUL}, "'q'"),
    ("alice", "POST", "/api/tickets", "json", {"subject": NUL}, "'subject'"),
    ("alice", "POST", "/api/tickets", "json", {"subject": "ok", "description": NUL},
     "'description'"),
    ("alice", "POST", "/api/tickets", "json", {"subject": "ok", "due": NUL}, "'due'"),
    ("alice", "POST", "/api/tickets", "json", {"subject": "ok", "call_id": NUL}, "'call_id'"),
    ("alice", "POST", "/api/tickets", "json", {"subject": "ok", "assignee": NUL},
     "'assignee'"),
    ("alice", "POST", "/api/tickets", "json", {"subject": "ok", "customer_id": NUL},
     "'customer_id'"),
    ("alice", "POST", "/api/preview/camp%00aign/next", "json", {}, "'campaign'"),
    ("alice", "POST", "/api/preview/spring/dial", "json", {"contact_id": NUL},
     "'contact_id'"),
    ("sue", "POST", "/api/agents/{bob}/pause", "json", {"reason": NUL}, "'reason'"),
    ("sue", "POST", "/api/agents/{bob}/spy", "json", {"mode": NUL}, "'mode'"),
]


@pytest.fixture(scope="module")
def users(stack: Stack) -> dict[str, Web]:
    out = {}
    for name in ("alice", "sue"):
        w = Web(stack.url)
        assert w.login(name).status_code == 200
        out[name] = w
    return out


def _send(w: Web, method: str, path: str, kind: str, payload: dict[str, Any]
          ) -> requests.Response:
    headers = {"X-CSRFToken": w.csrf}
    if kind == "json":
        return w.http.request(method, w.base + path, json=payload, headers=headers,
                              allow_redirects=False)
    if kind == "form":
        return w.http.request(method, w.base + path, data={**payload, "csrf_token": w.csrf},
                              allow_redirects=False)
    return w.http.request(method, w.base + path, params=payload, allow_redirects=False)


@pytest.mark.parametrize(("who", "method", "path", "kind", "payload", "field"), CASES,
                         ids=[f"{c[1]} {c[2]} {c[5]}" for c in CASES])
def test_a_nul_byte_anywhere_is_a_clear_400(stack: Stack, users: dict[str, Web], who: str,
                                            method: str, path: str, kind: str,
                                            payload: dict[str, Any], field: str) -> None:
    ids = stack.ids  # type: ignore[attr-defined]
    path = path.format(carol=ids["c_carol"], ticket=ids["k_carol"], bob=ids["a_bob"],
                       call="1795000000.1")
    before = _counts(stack)
    r = _send(users[who], method, path, kind, payload)
    _assert_refused(r, field)
    assert _counts(stack) == before


def test_login_with_a_nul_byte(stack: Stack) -> None:
    before = _counts(stack)
    for data, field in (({"username": "ali" + NUL, "password": "whatever-pass"}, "'username'"),
                        ({"username": "alice", "password": "pass" + NUL}, "'password'")):
        http = requests.Session()
        page = http.get(stack.url + "/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        r = http.post(stack.url + "/login", data={**data, "csrf_token": token.group(1)},
                      allow_redirects=False)
        _assert_refused(r, field)
        assert http.get(stack.url + "/api/me").status_code == 401
    assert _counts(stack) == before


RAW: list[tuple[str, bytes, str, str]] = [
    # an unpaired surrogate is valid JSON but not Unicode text
    ("/api/customers", b'{"name": "x\\ud800y", "phone": "+15550002222"}', "'name'",
     "unpaired surrogate"),
    ("/api/tickets", b'{"subject": "\\udfff"}', "'subject'", "unpaired surrogate"),
    ("/api/tickets", b'{"subject": "bell\\u0007"}', "'subject'", "U+0007"),
    ("/api/tickets", b'{"subj\\u0000ect": "x"}', "a field name", "a NUL byte"),
    ("/api/tickets", b'{"subject": "ok", "extra": {"deep": ["\\u0000"]}}', "'extra.deep[0]'",
     "a NUL byte"),
    ("/api/tickets", b"[" * 50000, "nested too deeply", ""),
    ("/api/tickets", b'{"subject": "not json', "not valid JSON", ""),
    ("/api/customers", b'{"name": "\xff\xfe"}', "not valid JSON", ""),
]


@pytest.mark.parametrize(("path", "raw", "field", "why"), RAW,
                         ids=[f"{r[0]} {r[2]} {r[3]}" for r in RAW])
def test_other_invalid_json_text_is_a_clear_400(stack: Stack, users: dict[str, Web],
                                                path: str, raw: bytes, field: str,
                                                why: str) -> None:
    w = users["alice"]
    before = _counts(stack)
    r = w.http.post(w.base + path, data=raw, headers={"X-CSRFToken": w.csrf,
                                                      "Content-Type": "application/json"})
    _assert_refused(r, field, why)
    assert _counts(stack) == before


def test_control_characters_in_a_form_are_a_clear_400(stack: Stack,
                                                      users: dict[str, Web]) -> None:
    before = _counts(stack)
    r = users["alice"].form("/tickets/new", {"subject": "esc\x1b[31m"})
    _assert_refused(r, "'subject'", "U+001B")
    # tab, line feed and carriage return are text
    r = users["alice"].form("/tickets/new", {"subject": "tab\there", "priority": "normal",
                                             "description": "line 1\r\nline 2"})
    assert r.status_code == 302, re.findall(r"alert.>[^<]*", r.text)
    assert _counts(stack)["tickets"] != before["tickets"]


def test_socketio_call_info_with_a_nul_byte(stack: Stack, users: dict[str, Web]) -> None:
    live = Live(stack.url, users["alice"].cookie, heartbeat=False).connect()
    try:
        live.wait("hello")
        for bad, why in ((NUL, "a NUL byte"), ("x\ud800", "unpaired surrogate")):
            answer = live.sio.call("call_info", {"call_id": bad}, timeout=10)
            assert answer["ok"] is False, answer
            assert answer["error"].startswith("invalid input") and why in answer["error"]
        # the connection is fine afterwards
        assert live.sio.call("call_info", {"call_id": "1795000000.1"}, timeout=10) == {
            "ok": False, "error": "forbidden"}
    finally:
        live.close()
