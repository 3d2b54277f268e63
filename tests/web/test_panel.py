"""What the panel does, against the real stack: screen pops, call and agent controls that
change nothing until Asterisk's events confirm them, wrap-up, customers, tickets, the
supervisor's wallboard and actions, heartbeats, languages."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from web_support import Live, Stack, wait_until

pytestmark = pytest.mark.timeout(180)


class Recorder:
    """Wraps the panel's bridge to see which control-API calls the panel made."""

    def __init__(self, bridge: Any) -> None:
        self.inner = bridge
        self.daemon = bridge.daemon
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float = 10.0
             ) -> Any:
        self.calls.append((method, dict(params or {})))
        return self.inner.call(method, params, timeout)

    def read(self, fn: Any, timeout: float = 5.0) -> Any:
        return self.inner.read(fn, timeout)

    def subscribe(self, name: str, fn: Any) -> None:
        self.inner.subscribe(name, fn)


@pytest.fixture
def recorder(stack: Stack) -> Any:
    ctx = stack.panel.app.extensions["ccd"]
    rec = Recorder(ctx.bridge)
    ctx.bridge = rec
    yield rec
    ctx.bridge = rec.inner


@pytest.fixture(autouse=True)
def clean(stack: Stack) -> Any:
    yield
    stack.hangup_all()
    for iface in ("PJSIP/1001", "PJSIP/1002", "PJSIP/1003"):
        stack.logout_agent(iface)


def rows(stack: Stack, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.db_url) as conn:
        return conn.execute(query, params).fetchall()


def answered_call(stack: Stack, live: Live, endpoint: str = "1001",
                  caller: tuple[str, str] = ("Customer Carol", "5557770001")) -> str:
    """A call from the customer phone, rung at and answered by ``endpoint``."""
    ch = stack.call(caller=caller)
    stack.press(ch, "2")
    call_id = stack.ringing_call(f"PJSIP/{endpoint}")
    live.wait("pop", lambda p: p["call_id"] == call_id)
    assert stack.answer(endpoint)
    live.wait("call", lambda c: c["call_id"] == call_id and c["kind"] == "answered")
    return call_id


def test_screen_pop_when_the_phone_rings(stack: Stack, web) -> None:
    ids = stack.ids  # type: ignore[attr-defined]
    alice = web("alice")
    with Live(stack.url, alice.cookie).connect() as live:
        stack.login_agent("PJSIP/1001")
        ch = stack.call(caller=("Customer Carol", "5557770001"))
        stack.press(ch, "2")
        pop = live.wait("pop", timeout=30)
        # the pop arrives while the phone rings, before any answer
        assert stack.agent("PJSIP/1001")["state"] == "ringing"
        assert not [c for c in live.of("call") if c["kind"] == "answered"]
        assert pop["caller_num"] == "5557770001" and pop["caller_name"] == "Customer Carol"
        assert pop["e164"] == "+15557770001"
        assert pop["customer"]["id"] == ids["c_carol"]
        assert pop["customer"]["name"] == "Carol Customer"
        assert pop["customer"]["account_no"] == "A-1001"
        assert pop["queue"] == "support" and pop["did"] == "5551000"
        assert pop["wait"] >= 0
        assert pop["ivr_path"].startswith("identify(found)>main=2>support")
        assert pop["digits"] == ["2"]
        assert [t["subject"] for t in pop["open_tickets"]] == ["Router keeps rebooting"]
        first = pop["call_id"]
        assert stack.answer("1001")
        live.wait("call", lambda c: c["call_id"] == first and c["kind"] == "answered")
        stack.hangup("2000")
        live.wait("call", lambda c: c["call_id"] == first and c["kind"] == "call_ended")
        wait_until(lambda: rows(stack, "SELECT 1 FROM calls WHERE call_id = %s AND NOT open",
                                first), 30, "the call stored")
        # next call: the first one is among the customer's recent interactions
        stack.hangup_all()
        wait_until(lambda: stack.agent("PJSIP/1001")["state"] == "available", 30, "end of wrap-up")
        ch = stack.call(caller=("Customer Carol", "5557770001"))
        stack.press(ch, "2")
        pop2 = live.wait("pop", lambda p: p["call_id"] != first, timeout=30)
        assert first in [c["call_id"] for c in pop2["recent_calls"]]


def test_unknown_caller_and_customer_creation(stack: Stack, web) -> None:
    alice = web("alice")
    with Live(stack.url, alice.cookie).connect() as live:
        stack.login_agent("PJSIP/1001")
        ch = stack.call(caller=("Mystery", "5559990000"))
        stack.press(ch, "2")
        pop = live.wait("pop", timeout=30)
        assert pop["customer"] is None and pop["e164"] == "+15559990000"
        assert pop["ivr_path"].startswith("identify(not_found)")
        r = alice.post("/api/customers", json={"name": "Mr Mystery", "phone": pop["e164"],
                                               "notes": "new"})
        assert r.status_code == 200 and r.json()["result"]["created"] is True
        cid = r.json()["result"]["customer"]["customer"]["id"]
        again = alice.post("/api/customers", json={"name": "Other", "phone": "5559990000"})
        assert again.json()["result"] == {**again.json()["result"], "created": False}
        assert again.json()["result"]["customer"]["customer"]["id"] == cid
        bad = alice.post("/api/customers", json={"name": "x", "phone": "not a number"})
        assert bad.status_code == 400
        stack.hangup_all()
        wait_until(lambda: stack.agent("PJSIP/1001")["state"] == "available", 30, "available")
        ch = stack.call(caller=("Mystery", "5559990000"))
        pop2 = live.wait("pop", lambda p: p["call_id"] != pop["call_id"], timeout=30)
        assert pop2["customer"]["id"] == cid and pop2["customer"]["name"] == "Mr Mystery"
        assert pop2["ivr_path"].startswith("identify(found)")


def test_commands_change_nothing_until_asterisk_confirms(stack: Stack, web, recorder) -> None:
    alice = web("alice")
    with Live(stack.url, alice.cookie).connect() as live:
        stack.login_agent("PJSIP/1001")
        call_id = answered_call(stack, live)
        # hold: ccd holds the caller inside Asterisk (Atxfer to the hold line, any phone);
        # the answer comes once Asterisk reported Hold on the agent's channel
        r = alice.post(f"/api/calls/{call_id}/hold")
        assert r.status_code == 200 and r.json()["result"]["confirmed"] is True, r.text
        assert recorder.calls[-1] == ("call", {"call_id": call_id, "agent": "PJSIP/1001",
                                               "action": "hold"})
        held = live.wait("call", lambda c: c["kind"] == "held" and c["call_id"] == call_id)
        assert held["state"] == "on_hold"
        live.wait("agent_state", lambda s: s["state"] == "on_hold")
        r = alice.post(f"/api/calls/{call_id}/unhold")
        assert r.status_code == 200, r.text
        live.wait("call", lambda c: c["kind"] == "unheld" and c["call_id"] == call_id)
        # a hold made on the phone itself looks the same
        n_held = len([c for c in live.of("call") if c["kind"] == "held"])
        stack.on_loop(lambda: stack.sim.phone("1001").hold(True))
        wait_until(lambda: len([c for c in live.of("call") if c["kind"] == "held"]) > n_held,
                   5, "the phone's hold")
        stack.on_loop(lambda: stack.sim.phone("1001").hold(False))
        live.wait("agent_state", lambda s: s["state"] == "on_call" and s["previous"] == "on_hold")
        # recording: pause (PCI) and resume, confirmed by MixMonitorMute events
        r = alice.post(f"/api/calls/{call_id}/record", json={"what": "pause"})
        assert r.status_code == 200, r.text
        live.wait("call", lambda c: c["kind"] == "recording_muted" and c["muted"] is True)
        r = alice.post(f"/api/calls/{call_id}/record", json={"what": "resume"})
        assert r.status_code == 200, r.text
        live.wait("call", lambda c: c["kind"] == "recording_muted" and c["muted"] is False)
        assert alice.post(f"/api/calls/{call_id}/record", json={"what": "x"}).status_code == 400
        # hang up: the daemon is told who asked (the record names the operator)
        assert alice.post(f"/api/calls/{call_id}/hangup").status_code == 200
        assert recorder.calls[-1] == ("call", {"call_id": call_id, "agent": "PJSIP/1001",
                                               "action": "hangup",
                                               "requested_by": "panel:alice"})
        live.wait("call", lambda c: c["kind"] == "call_ended" and c["call_id"] == call_id)
        assert not stack.bridge.read(lambda m: call_id in m.calls)


def test_state_changes_only_when_asterisk_confirms(stack: Stack, web) -> None:
    alice = web("alice")
    with Live(stack.url, alice.cookie).connect() as live:
        stack.login_agent("PJSIP/1001")
        live.wait("agent_state", lambda s: s["state"] == "available")
        stack.on_loop(lambda: stack.sim.stall(True))  # Asterisk hangs for a moment
        try:
            r = alice.post("/api/agent/pause", json={"reason": "lunch"})
            assert r.status_code == 503 and "in time" in r.json()["error"]
            time.sleep(0.3)
            assert stack.agent("PJSIP/1001")["state"] == "available"
            assert not [s for s in live.of("agent_state") if s["state"] == "paused"]
        finally:
            stack.on_loop(lambda: stack.sim.stall(False))
        # the QueuePause Asterisk did receive is confirmed late: only now the panel shows it
        live.wait("agent_state", lambda s: s["state"] == "paused" and s["reason"] == "lunch")


def test_blind_transfer_to_an_agent_and_wrap_up(stack: Stack, web, recorder) -> None:
    ids = stack.ids  # type: ignore[attr-defined]
    alice, bob = web("alice"), web("bob")
    la, lb = Live(stack.url, alice.cookie).connect(), Live(stack.url, bob.cookie).connect()
    try:
        stack.login_agent("PJSIP/1001")
        call_id = answered_call(stack, la)
        r = alice.post(f"/api/calls/{call_id}/transfer", json={"kind": "agent",
                                                               "target": ids["a_bob"]})
        assert r.status_code == 200, r.text
        assert recorder.calls[-1] == ("call", {
            "call_id": call_id, "agent": "PJSIP/1001", "action": "transfer",
            "target": "agent:PJSIP/1002", "attended": False,
            "tenant_id": 1})  # the target is looked up in Alice's tenant
        la.wait("call", lambda c: c["kind"] == "transferred" and c["call_id"] == call_id)
        wait_until(lambda: stack.answer("1002"), 30, "bob's phone to ring")
        lb.wait("call", lambda c: c["kind"] == "agent_connected" and c["agent"] == "PJSIP/1002")
        la.wait("agent_state", lambda s: s["state"] in ("wrapup", "available"))
        # Alice wraps up her part, with the customer
        r = alice.post(f"/api/calls/{call_id}/wrapup", json={
            "code": "escalated", "notes": "passed to Bob", "customer_id": ids["c_carol"]})
        assert r.status_code == 200, r.text
        r = alice.post(f"/api/calls/{call_id}/wrapup", json={
            "code": "resolved", "notes": "fixed after all", "customer_id": ids["c_carol"]})
        assert r.status_code == 200
        assert rows(stack, "SELECT code, notes, customer_id, agent_id FROM call_dispositions "
                           "WHERE call_id = %s", call_id) == [
            ("resolved", "fixed after all", ids["c_carol"], ids["a_alice"])]
        assert alice.post(f"/api/calls/{call_id}/wrapup",
                          json={"code": "no-such-code"}).status_code == 400
        assert alice.post(f"/api/calls/{call_id}/transfer",
                          json={"kind": "agent", "target": ids["a_bob"]}).status_code == 403
        # Bob now owns the call and can end it
        assert bob.post(f"/api/calls/{call_id}/hangup").status_code == 200
        lb.wait("call", lambda c: c["kind"] == "call_ended" and c["call_id"] == call_id)
    finally:
        la.close()
        lb.close()


def test_agent_state_controls_and_click_to_dial(stack: Stack, web, recorder) -> None:
    alice = web("alice")
    with Live(stack.url, alice.cookie).connect() as live:
        r = alice.post("/api/agent/login")
        assert r.status_code == 200 and r.json()["result"]["confirmed"] is True
        live.wait("agent_state", lambda s: s["state"] == "available")
        assert alice.post("/api/agent/pause", json={"reason": "lunch"}).status_code == 200
        live.wait("agent_state", lambda s: s["state"] == "paused" and s["reason"] == "lunch")
        assert alice.post("/api/agent/pause", json={"reason": "nap"}).status_code == 400
        assert alice.post("/api/agent/available").status_code == 200
        live.wait("agent_state", lambda s: s["state"] == "available" and s["previous"] == "paused")
        assert alice.post("/api/agent/dance").status_code == 404
        # a national number (the tenant's dial patterns are national-only)
        r = alice.post("/api/dial", json={"number": "555 987 6543"})
        assert r.status_code == 200, r.text
        assert recorder.calls[-1] == ("originate", {"agent": "PJSIP/1001",
                                                    "number": "555 987 6543"})
        assert r.json()["result"]["number"] == "+15559876543"  # dialled in E.164
        wait_until(lambda: stack.bridge.read(lambda m: any(
            c.name.startswith("PJSIP/1001-") for c in m.channels.values())), 30,
            "alice's phone to be called")
        stack.hangup_all()
        assert alice.post("/api/agent/logout").status_code == 200
        live.wait("agent_state", lambda s: s["state"] == "logged_out")


def test_supervisor_wallboard_force_and_listen(stack: Stack, web, recorder) -> None:
    ids = stack.ids  # type: ignore[attr-defined]
    sue, alice = web("sue"), web("alice")
    ls, la = Live(stack.url, sue.cookie).connect(), Live(stack.url, alice.cookie).connect()
    stack.panel.hub.stats_interval = 0.5
    try:
        stack.login_agent("PJSIP/1001")
        call_id = answered_call(stack, la)
        assert sue.get(f"/api/calls/{call_id}").status_code == 200
        wb = sue.get("/api/wallboard").json()["result"]
        support = next(q for q in wb["queues"] if q["queue"] == "support")
        assert support["logged_in"] >= 1 and support["offered_today"] >= 1
        row = next(a for a in wb["agents"] if a["id"] == ids["a_alice"])
        assert row["state"] == "on_call" and row["call"]["caller_name"] == "Customer Carol"
        assert {a["name"] for a in wb["agents"]} == {"Alice", "Bob", "Carl", "Sue"}
        assert sum(i["offered"] for i in wb["stats"]["intervals"]) >= 1
        assert wb["stats"]["source"] == "live"
        ls.wait("agent_state", lambda s: s["agent_id"] == ids["a_alice"] and s["state"] == "on_call"
                and s["call"]["caller_name"] == "Customer Carol")
        ls.wait("queues", lambda q: any(r["queue"] == "support" for r in q))
        ls.wait("stats", lambda s: len(s["intervals"]) >= 1, timeout=30)
        # listen in: ChanSpy originated to the supervisor's phone
        r = sue.post(f"/api/agents/{ids['a_alice']}/spy", json={"mode": "listen"})
        assert r.status_code == 200, r.text
        assert recorder.calls[-1] == ("spy", {"agent": "PJSIP/1001", "supervisor": "PJSIP/1004",
                                              "mode": "listen", "tenant_id": 1})
        wait_until(lambda: stack.bridge.read(lambda m: any(
            c.name.startswith("PJSIP/1004-") for c in m.channels.values())), 30,
            "the supervisor's phone to be called")
        assert sue.post(f"/api/agents/{ids['a_alice']}/spy",
                        json={"mode": "record"}).status_code == 400
        stack.hangup_all()
        # force pause, then force logout: shown when Asterisk confirms
        r = sue.post(f"/api/agents/{ids['a_alice']}/pause", json={"reason": "meeting"})
        assert r.status_code == 200, r.text
        ls.wait("agent_state", lambda s: s["agent_id"] == ids["a_alice"]
                and s["state"] == "paused" and s["reason"] == "meeting")
        la.wait("agent_state", lambda s: s["state"] == "paused")
        assert sue.post(f"/api/agents/{ids['a_alice']}/logout").status_code == 200
        ls.wait("agent_state", lambda s: s["agent_id"] == ids["a_alice"]
                and s["state"] == "logged_out")
        assert sue.post(f"/api/agents/{ids['a_alice']}/sing").status_code == 404
    finally:
        stack.panel.hub.stats_interval = 5.0
        ls.close()
        la.close()


def test_silent_panel_pauses_the_agent_and_its_return_unpauses(stack: Stack, web) -> None:
    alice = web("alice")
    hb = stack.panel.heartbeat
    iface = "PJSIP/1001"
    live = Live(stack.url, alice.cookie).connect()
    live.wait("hello")
    stack.login_agent(iface)
    live.close()  # browser closed: no more heartbeats (timeout 5 s in these tests)
    wait_until(lambda: stack.agent(iface)["reason"] == "connection-lost", 30,
               "the connection-lost pause")
    assert stack.agent(iface)["state"] == "paused"
    back = Live(stack.url, alice.cookie).connect()
    try:
        wait_until(lambda: not stack.agent(iface)["paused"], 30, "the unpause")
        assert stack.agent(iface)["state"] == "available"
        # a pause for another reason is never undone by heartbeats
        assert alice.post("/api/agent/pause", json={"reason": "lunch"}).status_code == 200
        wait_until(lambda: stack.agent(iface)["reason"] == "lunch", 30, "the lunch pause")
        back.close()
        # the monitor notices the silence (and leaves the lunch pause alone) ...
        wait_until(lambda: iface in hb._silent, 30, "the monitor to see the silence")
        assert stack.agent(iface)["reason"] == "lunch"
        again = Live(stack.url, alice.cookie).connect()
        # ... and the panel's return (a sweep takes it from the returned set)
        wait_until(lambda: iface not in hb._silent and iface not in hb._returned, 30,
                   "the monitor to see the return")
        assert stack.agent(iface)["reason"] == "lunch"
        again.close()
        assert hb.paused >= 1 and hb.unpaused >= 1
    finally:
        back.close()


def test_tickets_flow_and_customer_timeline(stack: Stack, web) -> None:
    ids = stack.ids  # type: ignore[attr-defined]
    alice = web("alice")
    carol = ids["c_carol"]
    page = alice.get("/tickets/new", params={"customer_id": carol, "call_id": "1795000000.1"})
    assert "Carol Customer" in page.text and "1795000000.1" in page.text
    r = alice.form("/tickets/new", {"subject": "Refund please", "description": "twice charged",
                                    "priority": "urgent", "customer_id": carol,
                                    "call_id": "1795000000.1",
                                    "assignee": f"queue:{ids['q_support']}",
                                    "due": "2020-01-01T09:00"})
    assert r.status_code == 302
    tid = int(r.headers["Location"].rsplit("/", 1)[1])
    t = rows(stack, "SELECT status, priority, customer_id, call_id, assignee_queue_id FROM "
                    "tickets WHERE id = %s", tid)[0]
    assert t == ("new", "urgent", carol, "1795000000.1", ids["q_support"])
    # the status flow: new -> open -> pending -> resolved -> closed; no shortcuts
    assert alice.form(f"/tickets/{tid}/status", {"status": "closed"}).status_code == 302
    assert "cannot become closed" in alice.get(f"/tickets/{tid}").text  # shown once
    assert "cannot become closed" not in alice.get(f"/tickets/{tid}").text
    assert "Call +1 900" not in alice.get(f"/tickets/{tid}", params={  # a crafted link
        "error": "Call +1 900 555 0100 to verify"}).text
    assert rows(stack, "SELECT status FROM tickets WHERE id = %s", tid) == [("new",)]
    for status in ("open", "pending", "resolved", "closed"):
        assert alice.form(f"/tickets/{tid}/status", {"status": status}).status_code == 302
        assert rows(stack, "SELECT status FROM tickets WHERE id = %s", tid) == [(status,)]
    assert alice.form(f"/tickets/{tid}/status", {"status": "open"}).status_code == 302
    assert rows(stack, "SELECT status FROM tickets WHERE id = %s", tid) == [("closed",)]
    assert alice.form(f"/tickets/{tid}/comment", {"body": "called back, done"}).status_code == 302
    assert alice.form(f"/tickets/{tid}/assign",
                      {"assignee": f"agent:{ids['a_bob']}"}).status_code == 302
    assert alice.form(f"/tickets/{tid}/due", {"due": "2031-05-01T12:30"}).status_code == 302
    detail = alice.get(f"/tickets/{tid}").text
    assert "called back, done" in detail and "Bob" in detail and "2031-05-01 12:30" in detail
    kinds = [k for (k,) in rows(stack, "SELECT kind FROM ticket_events WHERE ticket_id = %s "
                                       "ORDER BY id", tid)]
    assert kinds == ["created", "status", "status", "status", "status", "comment", "assigned",
                     "due"]
    # list, filter, search, sort
    found = alice.get("/api/tickets", params={"q": "refund", "status": ""}).json()["result"]
    assert [x["id"] for x in found["tickets"]] == [tid]
    assert alice.get("/api/tickets", params={"q": "refund"}).json()["result"]["total"] == 0
    mine = alice.get("/api/tickets", params={"assignee": f"agent:{ids['a_bob']}",
                                             "status": "closed"}).json()["result"]
    assert [x["id"] for x in mine["tickets"]] == [tid]
    r = alice.post("/api/tickets", json={"subject": "Late one", "due": "2020-02-02T10:00",
                                         "customer_id": carol})
    late = r.json()["result"]["id"]
    overdue = alice.get("/api/tickets", params={"overdue": "1"}).json()["result"]
    assert [x["id"] for x in overdue["tickets"]] == [late]
    by_cust = alice.get("/api/tickets", params={"customer": carol, "status": "",
                                                "sort": "id", "order": "asc"}).json()["result"]
    ids_sorted = [x["id"] for x in by_cust["tickets"]]
    assert ids_sorted == sorted(ids_sorted) and {tid, late, ids["k_carol"]} <= set(ids_sorted)
    html = alice.get("/tickets", params={"status": "", "q": "Late"}).text
    assert "Late one" in html and "Refund please" not in html
    # the customer's timeline links the tickets and their activity
    timeline = alice.get(f"/customers/{carol}").text
    assert "Refund please" in timeline and "called back, done" in timeline
    assert "Late one" in timeline


def test_language_switch_and_stats_method(stack: Stack, web) -> None:
    alice = web("alice")
    assert "Agent panel" in alice.get("/agent").text
    assert alice.form("/language", {"language": "zh-CN"}).status_code == 302
    page = alice.get("/agent").text
    assert "坐席面板" in page and 'lang="zh-CN"' in page
    assert rows(stack, "SELECT language FROM users WHERE username = 'alice'") == [("zh-CN",)]
    assert alice.form("/language", {"language": "klingon"}).status_code == 302
    assert rows(stack, "SELECT language FROM users WHERE username = 'alice'") == [("zh-CN",)]
    assert alice.form("/language", {"language": "en"}).status_code == 302
    assert "Agent panel" in alice.get("/agent").text
    today = stack.bridge.call("stats.today", {"agents": True})
    assert set(today) == {"day", "interval", "queues", "agents"}
    assert today["interval"] == 900.0
