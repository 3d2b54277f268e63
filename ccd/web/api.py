"""The panel's JSON API (``/api/...``), used by the page scripts.

Every command goes to the daemon's services through the bridge (the services send the
AMI actions); nothing here changes what the panel shows: that happens when Asterisk's
events come back over Socket.IO. Every handler checks who may do what:

* call controls: only the agent whose phone is on the call (checked in the live model);
* wrap-up and call details: an agent that was on the call; supervisors: calls of their
  tenant;
* supervisor actions (force pause/logout, listen/whisper/barge): agents of their tenant;
* ids in URLs and bodies are looked up inside the user's tenant, so another tenant's ids
  are simply "not found".
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from ccd.api import ApiError
from ccd.services.agents import agent_view
from ccd.services.calls import call_view
from ccd.web.app import ctx, current_user, json_error, login_required
from ccd.web.hub import plain
from ccd.web.store import User, ticket_query

bp = Blueprint("api", __name__)


class Refused(Exception):
    """A request this user may not make (or that makes no sense); becomes a JSON error."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


@bp.errorhandler(Refused)
def _refused(exc: Refused) -> Any:
    return json_error(str(exc), exc.status)


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def text(data: dict[str, Any], key: str, limit: int = 200) -> str:
    v = data.get(key, "")
    return v.strip()[:limit] if isinstance(v, str) else ""


def int_id(value: Any) -> int:
    try:
        n = int(str(value))
    except (TypeError, ValueError):
        raise Refused("bad id", 400) from None
    if not 0 < n < 2**62:
        raise Refused("bad id", 400)
    return n


def user() -> User:
    u = current_user()
    if u is None:  # login_required ran first; kept for type checkers
        raise Refused("login required", 401)
    return u


def agent_user() -> User:
    u = user()
    if not u.agent_interface:
        raise Refused("your user has no agent phone", 409)
    return u


def ok(data: Any = None) -> Response:
    return jsonify({"ok": True, "result": plain(data)})


# ---------------------------------------------------------------------- live model reads
# (evaluated on the daemon's loop thread through the bridge)


def on_call(model: Any, interface: str, call_id: str, ringing: bool = True) -> bool:
    """The agent talks in this call (or, with ``ringing``, its phone rings for it)."""
    a = model.agents.get(interface)
    if a is not None and (call_id in a.calls.values()
                          or (ringing and call_id in a.ringing.values())):
        return True
    call = model.calls.get(call_id)
    return call is not None and any(s.agent == interface for s in call.open_segments.values())


def live_call(model: Any, call_id: str) -> dict[str, Any] | None:
    call = model.calls.get(call_id)
    return call_view(call, time.time()) if call is not None else None


def live_agent(model: Any, interface: str) -> dict[str, Any]:
    return agent_view(model.agents.get(interface), time.time())


def require_on_call(u: User, call_id: str) -> None:
    """Call controls are for the agent talking in the call: a phone that only rings for it
    (ring-all, or before answering) may not hang up, transfer or record the caller."""
    if not ctx().bridge.read(lambda m: on_call(m, u.agent_interface, call_id, ringing=False)):
        raise Refused("this call is not yours", 403)


def call_tenant(call: dict[str, Any] | None) -> int | None:
    """Tenant of a live call: its queue's, else the agents' on it."""
    if call is None:
        return None
    directory = ctx().hub.directory
    if call.get("queue"):
        t = directory.queue_tenant(call["queue"])
        if t is not None:
            return t
    for iface in [call.get("agent", ""), *call.get("talking_to", [])]:
        a = directory.agent(iface) if iface else None
        if a is not None:
            return a[1]
    return None


def may_see_call(u: User, call_id: str, live: dict[str, Any] | None) -> bool:
    c = ctx()
    if u.agent_interface:
        if c.bridge.read(lambda m: on_call(m, u.agent_interface, call_id)):
            return True
        if c.hub.was_on_call(u.agent_interface, call_id):
            return True
        if c.store.agent_handled_call(u.agent_interface, call_id):
            return True
    if not u.supervisor:
        return False
    tenant = call_tenant(live)
    if tenant is None:  # ended, or not yet in a queue: the stored call knows (by its DID)
        tenant = c.store.call_tenant(call_id)
    return tenant == u.tenant_id


# ---------------------------------------------------------------------- me


@bp.get("/me")
@login_required()
def me() -> Response:
    u = user()
    c = ctx()
    live = c.bridge.read(lambda m: live_agent(m, u.agent_interface)) if u.agent_interface \
        else None
    return ok({
        "user": {"id": u.id, "username": u.username, "role": u.role, "language": u.language,
                 "agent_id": u.agent_id, "agent": u.agent_interface, "name": u.agent_name,
                 "tenant": u.tenant_name},
        "agent": live,
        "pause_reasons": c.bridge.call("pause_reasons", {"tenant_id": u.tenant_id}),
        "dispositions": c.store.disposition_codes(u.tenant_id),
        "agents": [a for a in c.store.agents(u.tenant_id) if a["id"] != u.agent_id],
        "queues": c.store.queues(u.tenant_id),
    })


# ---------------------------------------------------------------------- agent state


@bp.post("/agent/<action>")
@login_required()
def agent_state(action: str) -> Response:
    u = agent_user()
    params: dict[str, Any] = {"agent": u.agent_interface}
    if action == "login":
        params["action"] = "login"
    elif action == "logout":
        params["action"] = "logout"
    elif action == "available":
        params["action"] = "unpause"
    elif action == "pause":
        reason = text(body(), "reason", 32)
        if reason not in ctx().bridge.call("pause_reasons", {"tenant_id": u.tenant_id}):
            raise Refused(f"unknown pause reason {reason!r}", 400)
        params.update(action="pause", reason=reason)
    else:
        raise Refused(f"unknown action {action!r}", 404)
    return ok(ctx().bridge.call("agent", params))


# ---------------------------------------------------------------------- calls


@bp.get("/calls/<call_id>")
@login_required()
def call_details(call_id: str) -> Response:
    u = user()
    live = ctx().bridge.read(lambda m: live_call(m, call_id))
    if not may_see_call(u, call_id, live):
        raise Refused("this call is not yours", 403)
    return ok({"live": live, "brief": ctx().hub.call_brief(call_id)})


@bp.post("/calls/<call_id>/<action>")
@login_required()
def call_action(call_id: str, action: str) -> Response:
    u = agent_user()
    c = ctx()
    data = body()
    if action == "wrapup":
        return wrapup(u, call_id, data)
    require_on_call(u, call_id)
    params: dict[str, Any] = {"call_id": call_id, "agent": u.agent_interface}
    if action == "hangup":
        params.update(action="hangup", requested_by=f"panel:{u.username}")
    elif action in ("hold", "unhold"):
        params["action"] = action
    elif action == "record":
        what = text(data, "what", 16)
        if what not in ("pause", "resume", "start", "stop"):
            raise Refused("what must be pause, resume, start or stop", 400)
        params.update(action="record", what=what)
    elif action == "transfer":
        params.update(action="transfer", target=transfer_target(u, data),
                      attended=data.get("attended") is True, tenant_id=u.tenant_id)
    else:
        raise Refused(f"unknown action {action!r}", 404)
    return ok(c.bridge.call("call", params))


def transfer_target(u: User, data: dict[str, Any]) -> str:
    """``agent:``/``queue:``/``number:`` target, agents and queues looked up in the tenant.
    Numbers are checked against the tenant's dial patterns by the call service."""
    kind = text(data, "kind", 16)
    store = ctx().store
    if kind == "agent":
        a = store.agent(u.tenant_id, int_id(data.get("target")))
        if a["interface"] == u.agent_interface:
            raise Refused("cannot transfer to yourself", 400)
        return f"agent:{a['interface']}"
    if kind == "queue":
        return f"queue:{store.queue(u.tenant_id, int_id(data.get('target')))['name']}"
    if kind == "number":
        number = text(data, "target", 32)
        if not number:
            raise Refused("a number is needed", 400)
        return f"number:{number}"
    raise Refused("kind must be agent, queue or number", 400)


def wrapup(u: User, call_id: str, data: dict[str, Any]) -> Response:
    c = ctx()
    if not (c.hub.was_on_call(u.agent_interface, call_id)
            or c.store.agent_handled_call(u.agent_interface, call_id)):
        raise Refused("this call is not yours", 403)
    cust = data.get("customer_id")
    rid = c.store.save_disposition(u.tenant_id, u, call_id, text(data, "code", 32),
                                   text(data, "notes", 4000),
                                   int_id(cust) if cust not in (None, "") else None)
    return ok({"id": rid, "call_id": call_id})


@bp.post("/dial")
@login_required()
def dial() -> Response:
    u = agent_user()
    number = text(body(), "number", 32)
    if not number:
        raise Refused("a number is needed", 400)
    return ok(ctx().bridge.call("originate", {"agent": u.agent_interface, "number": number}))


# ---------------------------------------------------------------------- customers


@bp.post("/customers")
@login_required()
def create_customer() -> Response:
    u = user()
    data = body()
    cid, created = ctx().store.create_customer(
        u.tenant_id, text(data, "name"), text(data, "phone", 40),
        account_no=text(data, "account_no", 64), notes=text(data, "notes", 4000))
    return ok({"customer": customer_bundle(u, cid, text(data, "call_id", 64)),
               "created": created})


def customer_bundle(u: User, customer_id: int, exclude_call: str = "") -> dict[str, Any]:
    store = ctx().store
    cust = store.customer(u.tenant_id, customer_id)
    if cust is None:
        raise Refused("not found", 404)
    return {"customer": cust, "recent_calls": store.recent_calls(u.tenant_id, cust, exclude_call),
            "open_tickets": store.open_tickets(u.tenant_id, customer_id)}


@bp.get("/customers/<customer_id>")
@login_required()
def customer(customer_id: str) -> Response:
    return ok(customer_bundle(user(), int_id(customer_id), request.args.get("call", "")[:64]))


# ---------------------------------------------------------------------- tickets


@bp.get("/tickets")
@login_required()
def tickets() -> Response:
    u = user()
    rows, total = ctx().store.list_tickets(u.tenant_id, u, ticket_query(request.args))
    return ok({"tickets": rows, "total": total})


@bp.post("/tickets")
@login_required()
def create_ticket() -> Response:
    u = user()
    data = body()
    due = text(data, "due", 32)
    try:
        due_at = datetime.fromisoformat(due).astimezone() if due else None
    except ValueError:
        raise Refused("bad due date", 400) from None
    cust = data.get("customer_id")
    tid = ctx().store.create_ticket(
        u.tenant_id, u, subject=text(data, "subject"),
        description=text(data, "description", 10000), priority=text(data, "priority", 16)
        or "normal", customer_id=int_id(cust) if cust not in (None, "") else None,
        call_id=text(data, "call_id", 64), assignee=text(data, "assignee", 40), due_at=due_at)
    return ok({"id": tid})


# ---------------------------------------------------------------------- supervisors


@bp.get("/wallboard")
@login_required("supervisor")
def wallboard() -> Response:
    u = user()
    c = ctx()
    agents = c.bridge.call("agents", {"tenant_id": u.tenant_id})
    for a in agents:
        a["call"] = c.hub.call_brief(a["call_id"]) if a.get("call_id") else None
    return ok({"queues": c.hub.queue_rows(u.tenant_id), "agents": agents,
               "stats": c.hub.stats_today(u.tenant_id),
               "campaigns": campaign_rows(u.tenant_id),
               "pause_reasons": c.bridge.call("pause_reasons", {"tenant_id": u.tenant_id}),
               "now": time.time()})


@bp.post("/agents/<agent_id>/<action>")
@login_required("supervisor")
def supervise(agent_id: str, action: str) -> Response:
    u = user()
    c = ctx()
    a = c.store.agent(u.tenant_id, int_id(agent_id))
    data = body()
    if action == "spy":
        if not u.agent_interface:
            raise Refused("your user has no phone to listen on", 409)
        mode = text(data, "mode", 16)
        if mode not in ("listen", "whisper", "barge"):
            raise Refused("mode must be listen, whisper or barge", 400)
        return ok(c.bridge.call("spy", {"agent": a["interface"], "supervisor": u.agent_interface,
                                        "mode": mode, "tenant_id": u.tenant_id}))
    if action == "pause":
        reason = text(data, "reason", 32)
        if reason not in c.bridge.call("pause_reasons", {"tenant_id": u.tenant_id}):
            raise Refused(f"unknown pause reason {reason!r}", 400)
        return ok(c.bridge.call("agent", {"action": "pause", "agent": a["interface"],
                                          "reason": reason}))
    if action in ("unpause", "logout"):
        return ok(c.bridge.call("agent", {"action": action, "agent": a["interface"]}))
    raise Refused(f"unknown action {action!r}", 404)


# ---------------------------------------------------------------------- campaigns


def campaign_rows(tenant_id: int) -> list[dict[str, Any]]:
    """The tenant's campaigns as the wallboard shows them (live from the dialer)."""
    try:
        rows = ctx().bridge.call("campaigns.status", {"tenant_id": tenant_id})
    except ApiError:
        return []
    out = []
    for r in rows:
        ab = r.get("abandonment") or {}
        out.append({"name": r.get("name"), "mode": r.get("mode"), "kind": r.get("kind"),
                    "state": r.get("state"), "queue": r.get("queue"),
                    "dialling": r.get("dialling"), "contacts": r.get("contacts") or {},
                    "in_flight": r.get("in_flight") or {}, "abandonment": ab})
    return out


@bp.get("/campaigns")
@login_required("supervisor")
def campaigns() -> Response:
    return ok(campaign_rows(user().tenant_id))


@bp.get("/preview")
@login_required()
def preview_campaigns() -> Response:
    """Running preview campaigns of the agent's queues (the agent console's list)."""
    u = agent_user()
    iface = u.agent_interface
    queues = ctx().bridge.read(lambda m: set(m.agents[iface].memberships)
                               if iface in m.agents else set())
    rows = [r for r in campaign_rows(u.tenant_id)
            if r["mode"] == "preview" and r["state"] == "running" and r["queue"] in queues]
    return ok([{"name": r["name"], "queue": r["queue"]} for r in rows])


@bp.post("/preview/<campaign>/<action>")
@login_required()
def preview(campaign: str, action: str) -> Response:
    """Preview dialling: ``next`` reserves a contact for the agent, ``dial`` calls it from
    the agent's phone, ``skip`` puts it back for later. The agent and the tenant are the
    logged-in user's, never taken from the request."""
    u = agent_user()
    params: dict[str, Any] = {"campaign": campaign[:64], "agent": u.agent_interface,
                              "tenant_id": u.tenant_id}
    if action in ("dial", "skip"):
        params["contact_id"] = str(int_id(body().get("contact_id")))
    elif action != "next":
        raise Refused(f"unknown action {action!r}", 404)
    return ok(ctx().bridge.call(f"campaign.preview.{action}", params))
