"""Socket.IO: session-authenticated connections, rooms, heartbeats, state on connect.

A connection without a valid panel session is refused. Each connection joins only the
rooms its user may read: ``user:<id>``, ``agent:<agent id>`` when the user has a phone,
``team:<tenant>`` (queue summaries) for agents, ``sup:<tenant>`` for supervisors and
admins (every agent, call and queue of the tenant). Nothing a client sends can change its
rooms. Messages from clients:

* ``heartbeat`` -> ``{"ok": true, "t": <server time>}`` (keeps the agent unpaused);
* ``call_info`` ``{"call_id": ...}`` -> the call if this user may see it, else an error
  (a call id with a NUL byte or other invalid text: ``invalid input: ...``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import request
from flask_socketio import SocketIO, emit, join_room
from socketio.exceptions import ConnectionRefusedError as Refused

from ccd.model import domain as d
from ccd.web.api import live_agent, live_call, may_see_call
from ccd.web.app import PanelContext, current_user
from ccd.web.hub import call_extra, plain
from ccd.web.inputs import value_problem
from ccd.web.store import User

log = logging.getLogger(__name__)


class Registry:
    """Connected sockets and their users (any thread)."""

    def __init__(self, socketio: SocketIO) -> None:
        self.socketio = socketio
        self._by_sid: dict[str, User] = {}
        self._lock = threading.Lock()

    def add(self, sid: str, user: User) -> None:
        with self._lock:
            self._by_sid[sid] = user

    def remove(self, sid: str) -> None:
        with self._lock:
            self._by_sid.pop(sid, None)

    def user(self, sid: str) -> User | None:
        with self._lock:
            return self._by_sid.get(sid)

    def sids(self) -> list[str]:
        with self._lock:
            return list(self._by_sid)

    def count(self) -> int:
        with self._lock:
            return len(self._by_sid)

    def tenants(self) -> tuple[set[int], set[int]]:
        """(tenants with a connected agent, tenants with a connected supervisor)."""
        with self._lock:
            users = list(self._by_sid.values())
        return ({u.tenant_id for u in users if not u.supervisor},
                {u.tenant_id for u in users if u.supervisor})

    def disconnect_user(self, user_id: int) -> None:
        with self._lock:
            sids = [s for s, u in self._by_sid.items() if u.id == user_id]
        for sid in sids:
            self.socketio.server.disconnect(sid, namespace="/")
            self.remove(sid)


def current_calls(model: Any, interface: str) -> list[dict[str, Any]]:
    """Calls ringing or connected at this agent's phone, for a panel that (re)connects."""
    a = model.agents.get(interface)
    if a is None:
        return []
    out = []
    now = time.time()
    for call_id in dict.fromkeys([*a.ringing.values(), *a.calls.values()]):
        call = model.calls.get(call_id)
        if call is None:
            continue
        rec = call.record
        joined = call.wait.joined if call.wait is not None else None
        out.append({"call_id": call_id, "queue": rec.queue, "caller_num": rec.caller_num,
                    "caller_name": rec.caller_name, "ringing": call_id in a.ringing.values(),
                    "wait": round(now - joined, 3) if joined else (rec.queue_wait or 0.0),
                    "extra": call_extra(call),
                    "view": live_call(model, call_id)})
    return out


def register(socketio: SocketIO, context: PanelContext) -> Registry:
    """Install the Socket.IO handlers; returns the connection registry."""
    registry = Registry(socketio)

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> None:
        user = current_user()
        if user is None:
            raise Refused("login required")
        sid = request.sid  # type: ignore[attr-defined]
        registry.add(sid, user)
        join_room(f"user:{user.id}")
        if user.agent_id is not None and user.agent_interface:
            join_room(f"agent:{user.agent_id}")
            context.heartbeat.beat(user.agent_interface)
        join_room(f"{'sup' if user.supervisor else 'team'}:{user.tenant_id}")
        emit("hello", {"user": user.username, "role": user.role, "agent": user.agent_interface,
                       "agent_id": user.agent_id, "tenant": user.tenant_name,
                       "language": user.language, "t": time.time(),
                       "heartbeat": max(0.5, min(5.0, context.heartbeat.timeout / 4))})
        try:
            _initial_state(context, user)
        except Exception as exc:  # the daemon may be busy; the next events fill the page
            log.warning("panel: initial state for %s not sent: %s", user.username, exc)

    @socketio.on("disconnect")
    def on_disconnect(*_: Any) -> None:
        registry.remove(request.sid)  # type: ignore[attr-defined]

    @socketio.on("heartbeat")
    def on_heartbeat(*_: Any) -> dict[str, Any]:
        user = registry.user(request.sid)  # type: ignore[attr-defined]
        if user is None:
            return {"ok": False}
        context.heartbeat.beat(user.agent_interface)
        return {"ok": True, "t": time.time()}

    @socketio.on("call_info")
    def on_call_info(data: Any = None) -> dict[str, Any]:
        user = registry.user(request.sid)  # type: ignore[attr-defined]
        call_id = data.get("call_id") if isinstance(data, dict) else None
        if user is None or not isinstance(call_id, str) or len(call_id) > 64:
            return {"ok": False, "error": "bad request"}
        problem = value_problem(call_id, "call_id")
        if problem:
            return {"ok": False, "error": f"invalid input: {problem}"}
        live = context.bridge.read(lambda m: live_call(m, call_id))
        if not may_see_call(user, call_id, live):
            return {"ok": False, "error": "forbidden"}
        return {"ok": True, "call": plain(live), "brief": context.hub.call_brief(call_id)}

    return registry


def _initial_state(c: PanelContext, user: User) -> None:
    """What a (re)connecting panel needs at once: own state, queues, a call in progress."""
    emit("queues", plain(c.hub.queue_rows(user.tenant_id)))
    if not user.agent_interface:
        return
    iface = user.agent_interface
    view = c.bridge.read(lambda m: live_agent(m, iface))
    call_id = view.get("call_id", "")
    emit("agent_state", plain({"agent": iface, "agent_id": user.agent_id,
                               "name": user.agent_name, **view,
                               "call": c.hub.call_brief(call_id) if call_id else None}))
    for call in c.bridge.read(lambda m: current_calls(m, iface)):
        ring = d.AgentRinging(time.time(), call["call_id"], call["queue"], iface,
                              user.agent_name, "", call["caller_num"], call["caller_name"],
                              call["wait"])
        emit("pop", c.hub.build_pop(ring, call["extra"], user.tenant_id))
        if not call["ringing"] and call["view"] is not None:
            emit("call", plain({"kind": "answered", "call_id": call["call_id"],
                                "agent": iface, "state": call["view"]["state"],
                                "recording": call["view"]["recording"]}))
