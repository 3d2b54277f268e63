"""Security of the panel, against the real stack (simulator + daemon + panel, real sockets):
sessions, CSRF, roles, other agents' calls, other tenants' ids, SQL injection through
sort/filter parameters, dial patterns, hostile data in server-rendered pages."""

from __future__ import annotations

import re
import time
from typing import Any

import psycopg
import pytest
import requests
import socketio
import websocket
from web_support import PASSWORD, Live, Stack, Web, wait_until

from ccd.security import hash_password
from ccd.web.app import create_app

pytestmark = pytest.mark.timeout(180)

HOSTILE = '<img src=x onerror=alert(1)>"><script>alert(2)</script>'


def _count(stack: Stack, query: str, *params: object) -> int:
    with psycopg.connect(stack.db_url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


# ---------------------------------------------------------------------- sessions


def test_socketio_refuses_connections_without_a_session(stack: Stack) -> None:
    for cookie in ("", "ccd_session=eyJ1aWQiOjF9.forged.signature"):
        client = Live(stack.url, cookie, heartbeat=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect()
        assert not client.sio.connected
        assert client.of("hello") == []
    assert stack.panel.registry.count() == 0


def test_socketio_refuses_other_origins(stack: Stack, web) -> None:
    """A page on another site cannot open the panel's socket with the user's cookie
    (cross-site websocket hijacking): the handshake is refused unless same-origin."""
    alice = web("alice")
    ws_url = stack.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(ws_url, header=[f"Cookie: {alice.cookie}"],
                                    origin="http://evil.example", timeout=5)
    assert refused.value.status_code == 400
    ok = websocket.create_connection(ws_url, header=[f"Cookie: {alice.cookie}"],
                                     origin=stack.url, timeout=5)
    try:
        assert ok.recv().startswith("0{")  # Engine.IO open packet
    finally:
        ok.close()


def test_session_cookie_flags_and_logout_ends_every_session(stack: Stack) -> None:
    w = Web(stack.url)
    r = w.login("alice")
    assert r.status_code == 200
    set_cookie = r.history[0].headers["Set-Cookie"] if r.history else r.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert "Secure" not in set_cookie  # the tests run with cookie_secure = false (plain http)
    old = w.cookie
    live = Live(stack.url, old).connect()
    live.wait("hello")
    assert w.form("/logout", {}).status_code == 302
    wait_until(lambda: not live.sio.connected, 30, "the socket to be closed by the logout")
    # the old cookie is dead everywhere: HTTP and Socket.IO
    assert requests.get(stack.url + "/api/me", headers={"Cookie": old}).status_code == 401
    with pytest.raises(socketio.exceptions.ConnectionError):
        Live(stack.url, old, heartbeat=False).connect()


def test_secure_cookie_when_configured(stack: Stack) -> None:
    cfg = stack.config.model_copy(deep=True)
    cfg.web.cookie_secure = True
    app = create_app(cfg, stack.panel.app.extensions["ccd"], "another-secret-key-for-this-test")
    client = app.test_client()
    page = client.get("/login", base_url="https://panel.example")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert token is not None
    r = client.post("/login", base_url="https://panel.example",
                    headers={"Referer": "https://panel.example/login"},
                    data={"username": "alice", "password": PASSWORD,
                          "csrf_token": token.group(1)})
    assert r.status_code == 302
    cookie = r.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_login_lockout_after_repeated_failures(stack: Stack) -> None:
    with psycopg.connect(stack.db_url) as conn:
        conn.execute("INSERT INTO users (tenant_id, username, password_hash) VALUES "
                     "(1, 'lockme', %s)", (hash_password(PASSWORD),))
    w = Web(stack.url)
    unknown = w.login("nobody-at-all", "whatever-pass")
    assert unknown.status_code == 401 and "Wrong username or password" in unknown.text
    for _ in range(5):
        r = w.login("lockme", "wrong-password")
        assert r.status_code == 401
    r = w.login("lockme", PASSWORD)  # the right password, but locked now
    assert r.status_code == 401 and "locked" in r.text
    assert _count(stack, "SELECT count(*) FROM login_throttle WHERE username = 'lockme' "
                         "AND locked_until > now() + interval '10 minutes'") == 1
    with psycopg.connect(stack.db_url) as conn:
        conn.execute("UPDATE login_throttle SET locked_until = now() - interval '1 second' "
                     "WHERE username = 'lockme'")
    assert w.login("lockme", PASSWORD).status_code == 200
    assert _count(stack, "SELECT count(*) FROM login_throttle WHERE username = 'lockme'") == 0


# ---------------------------------------------------------------------- CSRF


def test_posts_without_csrf_token_are_refused(stack: Stack, web) -> None:
    alice = web("alice")
    before = _count(stack, "SELECT count(*) FROM tickets")
    r = alice.post("/api/agent/login", json={}, csrf=False)
    assert r.status_code == 400 and "CSRF" in r.json()["error"]
    r = alice.http.post(stack.url + "/api/agent/login", json={},
                        headers={"X-CSRFToken": "forged-token"})
    assert r.status_code == 400
    assert stack.agent("PJSIP/1001")["state"] == "logged_out"
    r = alice.form("/tickets/new", {"subject": "no token"}, csrf=False)
    assert r.status_code == 400
    r = alice.post("/api/tickets", json={"subject": "no token"}, csrf=False)
    assert r.status_code == 400
    assert _count(stack, "SELECT count(*) FROM tickets") == before
    r = alice.form("/language", {"language": "zh-CN"}, csrf=False)
    assert r.status_code == 400
    assert _count(stack, "SELECT count(*) FROM users WHERE username = 'alice' "
                         "AND language = 'en'") == 1
    r = alice.form("/logout", {}, csrf=False)
    assert r.status_code == 400
    assert alice.get("/api/me").status_code == 200  # still logged in
    r = requests.post(stack.url + "/login", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 400


# ---------------------------------------------------------------------- roles and tenants


def test_roles_are_enforced_on_the_server(stack: Stack, web) -> None:
    alice = web("alice")
    assert alice.get("/wallboard").status_code == 403
    assert alice.get("/api/wallboard").status_code == 403
    bob_id = stack.ids["a_bob"]  # type: ignore[attr-defined]
    for action in ("pause", "logout", "spy"):
        r = alice.post(f"/api/agents/{bob_id}/{action}", json={"reason": "lunch",
                                                               "mode": "listen"})
        assert r.status_code == 403
    sue = web("sue")
    assert sue.get("/wallboard").status_code == 200
    admin = web("admin")
    assert admin.get("/api/wallboard").status_code == 200
    assert "no phone" in admin.get("/agent").text
    assert admin.post("/api/agent/login", json={}).status_code == 409
    assert requests.get(stack.url + "/api/me").status_code == 401
    assert requests.get(stack.url + "/agent", allow_redirects=False).status_code == 302


def test_other_tenants_ids_are_not_found(stack: Stack, web) -> None:
    ids = stack.ids  # type: ignore[attr-defined]
    dave = web("dave")
    carol, carol_ticket = ids["c_carol"], ids["k_carol"]
    assert dave.get(f"/api/customers/{carol}").status_code == 404
    assert dave.get(f"/customers/{carol}").status_code == 404
    assert dave.get(f"/tickets/{carol_ticket}").status_code == 404
    events = _count(stack, "SELECT count(*) FROM ticket_events")
    for action, data in (("comment", {"body": "x"}), ("status", {"status": "pending"}),
                         ("assign", {"assignee": f"agent:{ids['a_dave']}"}),
                         ("due", {"due": "2030-01-01T10:00"})):
        assert dave.form(f"/tickets/{carol_ticket}/{action}", data).status_code == 404
    assert _count(stack, "SELECT count(*) FROM ticket_events") == events
    assert _count(stack, "SELECT count(*) FROM tickets WHERE id = %s AND status = 'open'",
                  carol_ticket) == 1
    r = dave.post("/api/tickets", json={"subject": "steal", "customer_id": carol})
    assert r.status_code == 404
    r = dave.post("/api/tickets", json={"subject": "steal", "assignee": f"agent:{ids['a_alice']}"})
    assert r.status_code == 404
    listed = dave.get("/api/tickets", params={"status": ""}).json()["result"]["tickets"]
    assert [t["id"] for t in listed] == [ids["k_globex"]]
    page = dave.get("/tickets", params={"status": "", "q": "Router"}).text
    assert "Router keeps rebooting" not in page
    assert dave.get("/api/customers/" + str(ids["c_globex"])).status_code == 200
    gina = web("gina")
    assert gina.post(f"/api/agents/{ids['a_alice']}/pause",
                     json={"reason": "lunch"}).status_code == 404
    assert gina.post(f"/api/agents/{ids['a_alice']}/logout").status_code == 404
    wb = gina.get("/api/wallboard").json()["result"]
    assert {a["name"] for a in wb["agents"]} == {"Dave"}
    assert {q["queue"] for q in wb["queues"]} <= {"sales"}
    assert stack.agent("PJSIP/1001")["paused"] is False


def test_an_agent_cannot_read_or_act_on_another_agents_call(stack: Stack, web) -> None:
    ids = stack.ids  # type: ignore[attr-defined]
    alice, bob, sue, dave, gina = (web(u) for u in ("alice", "bob", "sue", "dave", "gina"))
    socks = {name: Live(stack.url, w.cookie).connect()
             for name, w in (("alice", alice), ("bob", bob), ("sue", sue), ("gina", gina))}
    try:
        stack.login_agent("PJSIP/1002")
        stack.call(caller=("Customer Carol", "5557770001"))
        call_id = stack.ringing_call("PJSIP/1002")
        socks["bob"].wait("pop", lambda p: p["call_id"] == call_id)
        assert stack.answer("1002")
        wait_until(lambda: stack.agent("PJSIP/1002")["state"] == "on_call", 30, "bob on call")
        for action, body in (("hangup", {}), ("hold", {}), ("unhold", {}),
                             ("record", {"what": "pause"}),
                             ("transfer", {"kind": "agent", "target": ids["a_alice"]}),
                             ("wrapup", {"code": "resolved"})):
            r = alice.post(f"/api/calls/{call_id}/{action}", json=body)
            assert r.status_code == 403, (action, r.text)
        assert alice.get(f"/api/calls/{call_id}").status_code == 403
        assert dave.get(f"/api/calls/{call_id}").status_code == 403
        assert gina.get(f"/api/calls/{call_id}").status_code == 403
        assert bob.get(f"/api/calls/{call_id}").status_code == 200
        assert sue.get(f"/api/calls/{call_id}").status_code == 200
        assert socks["alice"].sio.call("call_info", {"call_id": call_id}) == {
            "ok": False, "error": "forbidden"}
        assert socks["gina"].sio.call("call_info", {"call_id": call_id})["ok"] is False
        assert socks["bob"].sio.call("call_info", {"call_id": call_id})["ok"] is True
        # the call is untouched and only the right people heard about it
        time.sleep(0.5)
        assert stack.agent("PJSIP/1002")["state"] == "on_call"
        socks["sue"].wait("agent_state", lambda s: s["agent"] == "PJSIP/1002"
                          and s["state"] == "on_call")
        for name in ("alice", "gina"):
            got = socks[name].got
            assert not [d for n, d in got if n in ("pop", "call") and d["call_id"] == call_id]
            assert not [d for n, d in got if n == "agent_state" and d["agent"] == "PJSIP/1002"]
        assert not [d for n, d in socks["gina"].got if n == "queues"
                    and any(q["queue"] == "support" for q in d)]
        # once the call is over, the stored call is what decides
        stack.hangup_all()
        wait_until(lambda: _count(stack, "SELECT count(*) FROM calls WHERE call_id = %s "
                                         "AND NOT open", call_id), 30, "the stored call")
        assert sue.get(f"/api/calls/{call_id}").status_code == 200
        assert bob.get(f"/api/calls/{call_id}").status_code == 200
        for w in (alice, dave, gina):
            assert w.get(f"/api/calls/{call_id}").status_code == 403
    finally:
        for s in socks.values():
            s.close()
        stack.hangup_all()
        stack.logout_agent("PJSIP/1002")


def test_transfer_to_a_number_outside_the_dial_patterns_is_refused(stack: Stack, web) -> None:
    ids = stack.ids  # type: ignore[attr-defined]
    alice = web("alice")
    panel = Live(stack.url, alice.cookie).connect()  # a silent panel would get her paused
    try:
        stack.login_agent("PJSIP/1001")
        stack.call(caller=("Customer Carol", "5557770001"))
        call_id = stack.ringing_call("PJSIP/1001")
        assert stack.answer("1001")
        wait_until(lambda: stack.agent("PJSIP/1001")["state"] == "on_call", 30, "alice on call")
        # international, premium-rate, Caribbean NANP, satellite and short numbers: the
        # tenant's patterns are national-only (sql/056)
        for number in ("00123456789", "1", "9" * 20, "+442079460000", "011442079460000",
                       "19005550123", "+18765550123", "+881612345678", "118118", "911"):
            r = alice.post(f"/api/calls/{call_id}/transfer",
                           json={"kind": "number", "target": number})
            assert r.status_code == 400, r.text
            assert "not allowed" in r.json()["error"] or "not a phone number" in r.json()["error"]
        for hostile in ("123\r\nAction: Hangup", "5551234;Hangup", "555 1234@evil/ctx"):
            r = alice.post(f"/api/calls/{call_id}/transfer",
                           json={"kind": "number", "target": hostile})
            assert r.status_code == 400
        r = alice.post(f"/api/calls/{call_id}/transfer",
                       json={"kind": "agent", "target": ids["a_dave"]})  # another tenant
        assert r.status_code == 404
        r = alice.post(f"/api/calls/{call_id}/transfer",
                       json={"kind": "queue", "target": ids["q_sales"]})
        assert r.status_code == 404
        for number in ("00123456789", "+442079460000", "+19005550123"):
            r = alice.post("/api/dial", json={"number": number})
            assert r.status_code == 400 and "not allowed" in r.json()["error"], number
        time.sleep(0.5)
        assert stack.agent("PJSIP/1001")["state"] == "on_call"
        assert stack.agent("PJSIP/1001")["call_id"] == call_id
    finally:
        panel.close()
        stack.hangup_all()
        stack.logout_agent("PJSIP/1001")


# ---------------------------------------------------------------------- SQL injection


INJECTIONS = [
    {"sort": "id; DROP TABLE tickets; --"},
    {"sort": "(SELECT nextval('injected'))"},
    {"sort": "created_at DESC, (SELECT 1/0)"},
    {"order": "asc; DELETE FROM tickets"},
    {"order": "DESC, (SELECT nextval('injected'))"},
    {"status": "open' OR '1'='1"},
    {"priority": "x' OR 1=1 --"},
    {"assignee": "agent:1 OR 1=1"},
    {"assignee": "queue:1;DROP TABLE tickets"},
    {"customer": "1 OR 1=1"},
    {"page": "1; DROP TABLE tickets"},
    {"overdue": "1' OR '1'='1"},
]


def test_sort_and_filter_parameters_cannot_inject_sql(stack: Stack, web) -> None:
    ids = stack.ids  # type: ignore[attr-defined]
    alice = web("alice")
    r = alice.post("/api/tickets", json={"subject": "100% done_ok", "priority": "high"})
    assert r.status_code == 200
    total = _count(stack, "SELECT count(*) FROM tickets")
    mine = _count(stack, "SELECT count(*) FROM tickets WHERE tenant_id = 1")
    active = _count(stack, "SELECT count(*) FROM tickets WHERE tenant_id = 1 "
                           "AND status NOT IN ('resolved', 'closed')")
    # injected SQL that runs leaves a trace: this sequence has been called
    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        conn.execute("CREATE SEQUENCE IF NOT EXISTS injected")
    for params in INJECTIONS:
        r = alice.get("/api/tickets", params=params)
        assert r.status_code == 200, (params, r.text)
        assert _count(stack, "SELECT count(*) FROM injected WHERE is_called") == 0, params
        result = r.json()["result"]
        assert ids["k_globex"] not in [t["id"] for t in result["tickets"]]
        assert result["total"] <= mine
        if set(params) & {"status", "sort", "order", "priority", "page"}:
            assert result["total"] == active, params  # ignored, default filter
        assert alice.get("/tickets", params=params).status_code == 200
    for text in ("' OR '1'='1' --", "x%' OR 1=1 --", "\\'; DROP TABLE tickets; --"):
        r = alice.get("/api/tickets", params={"q": text, "status": ""})
        assert r.json()["result"]["total"] == 0, text
    found = alice.get("/api/tickets", params={"q": "%", "status": ""}).json()["result"]
    assert [t["subject"] for t in found["tickets"]] == ["100% done_ok"]
    found = alice.get("/api/tickets", params={"q": "_", "status": ""}).json()["result"]
    assert [t["subject"] for t in found["tickets"]] == ["100% done_ok"]
    found = alice.get("/api/tickets", params={"sort": "priority", "order": "desc",
                                              "status": ""}).json()["result"]
    assert found["tickets"][0]["subject"] == "100% done_ok"
    assert _count(stack, "SELECT count(*) FROM tickets") == total
    r = alice.get("/customers", params={"q": "' OR 1=1 --"})
    assert r.status_code == 200 and "Carol Customer" not in r.text


# ---------------------------------------------------------------------- hostile data


def test_hostile_names_are_escaped_in_server_rendered_pages(stack: Stack, web) -> None:
    alice = web("alice")
    r = alice.post("/api/customers", json={"name": HOSTILE, "phone": "+15553334444"})
    assert r.status_code == 200
    cust = r.json()["result"]["customer"]["customer"]
    assert cust["name"] == HOSTILE  # stored as typed: data, not markup
    r = alice.post("/api/tickets", json={"subject": HOSTILE, "description": HOSTILE,
                                         "customer_id": cust["id"]})
    tid = r.json()["result"]["id"]
    assert alice.form(f"/tickets/{tid}/comment", {"body": HOSTILE}).status_code == 302
    pages = [f"/customers/{cust['id']}", f"/tickets/{tid}", "/tickets?status=",
             "/customers?q=img", f"/tickets/new?customer_id={cust['id']}&subject="
             + requests.utils.quote(HOSTILE)]
    for path in pages:
        html = alice.get(path).text
        assert "<img src=x" not in html and "<script>alert" not in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path
    r = alice.get("/tickets", params={"q": HOSTILE})
    assert "<img src=x" not in r.text
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["X-Frame-Options"] == "DENY"


def test_pbx_notices_carry_no_platform_figures() -> None:
    """Asterisk's link and restart notices go to every tenant's panels: what happened, not
    the platform-wide channel and call counts a resync reports."""
    from ccd.model import domain as d
    from ccd.web.hub import Hub

    sent: list[tuple[str, Any, dict[str, Any]]] = []
    hub = Hub(lambda ev, data, **kw: sent.append((ev, data, kw)), None, None)  # type: ignore[arg-type]
    hub._route(d.PbxEvent(ts=1.0, what="resynced", detail="812 channels, 401 calls"), None)
    assert sent == [("pbx", {"what": "resynced", "ts": 1.0}, {})]


def test_a_ringing_phone_gives_no_call_controls(stack: Stack, web) -> None:
    """Being rung (ring-all, or before answering) shows the pop but does not let the agent
    hang up, transfer or record the caller; answering does."""
    alice = web("alice")
    with Live(stack.url, alice.cookie).connect():  # a silent panel would get her paused
        stack.login_agent("PJSIP/1001")
        try:
            stack.call(caller=("Customer Carol", "5557770001"))
            call_id = stack.ringing_call("PJSIP/1001")
            for action, data in (("hangup", {}), ("record", {"what": "stop"}),
                                 ("transfer", {"kind": "number", "target": "+15551234567"})):
                r = alice.post(f"/api/calls/{call_id}/{action}", json=data)
                assert r.status_code == 403, (action, r.text)
            assert stack.bridge.read(lambda m: call_id in m.calls)
            assert stack.answer("1001")
            wait_until(lambda: stack.agent("PJSIP/1001")["state"] == "on_call", 30, "on call")
            assert alice.post(f"/api/calls/{call_id}/hangup").status_code == 200
        finally:
            stack.hangup_all()
            stack.logout_agent("PJSIP/1001")
