"""From domain events to Socket.IO messages, per room.

Threads:

* the daemon's loop thread calls :meth:`Hub.on_event` (a bus subscriber) for every domain
  event; it only filters, copies what the screen pop needs from the live model (the call's
  ``CCD_*`` variables, read on the loop thread where the model is consistent) and puts the
  event on a queue;
* the dispatcher thread takes events in order, keeps a small routing table (which agents
  are on which call, caller names for the wallboard) and emits;
* a pool of pop workers builds screen pops (customer lookup in PostgreSQL), so a slow
  query never holds up other events;
* the summary thread pushes queue summaries to supervisors at most once per second (when
  something changed or callers are waiting), to agents at most every 5 s when changed, and
  the supervisors' charts every 5 s when changed.

Rooms: ``agent:<agent id>`` (that agent's own events and pops), ``team:<tenant id>``
(the tenant's agents: queue summaries), ``sup:<tenant id>`` (supervisors and admins: every
agent, call and queue of the tenant). A tenant's queues are ``queues.tenant_id``; an agent is
``agents.interface`` -> ``agents.id``/``tenant_id``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ccd.api import ApiError
from ccd.ivr.phone import to_e164
from ccd.model import domain as d
from ccd.web.store import PanelStore

log = logging.getLogger(__name__)

CALL_KINDS = frozenset({"agent_ringing", "ring_no_answer", "answered", "agent_connected", "held",
                        "unheld", "transferred", "recording_started", "recording_stopped",
                        "recording_muted", "queued", "abandoned", "queue_exited", "call_ended",
                        "call_started"})
QUEUE_KINDS = frozenset({"queued", "answered", "abandoned", "queue_exited", "agent_state",
                         "call_ended"})
MAX_CALLS = 20000
#: what agents see of their queues (supervisors get every field)
TEAM_FIELDS = ("queue", "waiting", "longest_wait", "available", "busy", "paused", "logged_in",
               "sl_today")
POP_DB_TIMEOUT = 2.0


def plain(obj: Any) -> Any:
    """JSON-safe copy: datetimes become epoch seconds, decimals floats."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [plain(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.timestamp()
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return float(obj)
    return obj


def ivr_digits(path: str) -> list[str]:
    """What the caller entered, from ``CCD_IVR_PATH`` (``language=2>main=1>account=****``)."""
    out = []
    for step in path.split(">"):
        _, eq, value = step.partition("=")
        if eq and value:
            out.append(value.split("(", 1)[0])
    return out


def call_extra(call: Any) -> dict[str, Any]:
    """What the screen pop needs from the live model's call (read on the loop thread)."""
    rec = call.record
    cust = call.channels.get(call.customer)
    return {"variables": dict(rec.variables), "did": rec.did, "direction": rec.direction,
            "dialed": rec.dialed, "recording": bool(cust is not None and cust.recording)}


def campaign_ids(variables: dict[str, str]) -> tuple[int, int] | None:
    """(campaign, attempt) of a campaign call, from the variables the dialer set."""
    c, a = variables.get("CCD_CAMPAIGN", ""), variables.get("CCD_ATTEMPT", "")
    if c.isdigit() and a.isdigit() and len(c) < 19 and len(a) < 19:
        return int(c), int(a)
    return None


def dialed_number(dialed: str) -> str:
    """The number an originated call dialled: ``15557770011@trunk`` -> ``15557770011``."""
    return dialed.rsplit("/", 1)[-1].split("@", 1)[0].strip()


@dataclass(slots=True)
class CallInfo:
    """What the hub remembers about a call in progress (for routing and the wallboard)."""

    call_id: str
    caller_num: str = ""
    caller_name: str = ""
    queue: str = ""
    did: str = ""
    agents: set[str] = field(default_factory=set)  # interfaces that rang / talked
    state: str = ""

    def brief(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "caller_num": self.caller_num,
                "caller_name": self.caller_name, "queue": self.queue, "state": self.state}


class Directory:
    """Interfaces -> (agent id, tenant), queues -> tenant, tenants' countries; cached."""

    def __init__(self, store: PanelStore, ttl: float = 30.0, miss_interval: float = 5.0) -> None:
        self.store = store
        self.ttl = ttl
        self.miss_interval = miss_interval
        self._agents: dict[str, tuple[int, int, str]] = {}
        self._queues: dict[str, int] = {}
        self._countries: dict[int, str] = {}
        self._at = 0.0
        self._miss_at = 0.0
        self._lock = threading.Lock()

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._at < self.ttl:
            return
        try:
            agents, queues = self.store.directory_maps()
        except Exception as exc:
            log.warning("panel directory not refreshed: %s", exc)
            self._at = now - self.ttl + self.miss_interval  # retry soon, not on every event
            return
        with self._lock:
            self._agents, self._queues, self._at = agents, queues, now

    def _miss(self) -> None:
        now = time.monotonic()
        if now - self._miss_at >= self.miss_interval:
            self._miss_at = now
            self.refresh(force=True)

    def agent(self, interface: str) -> tuple[int, int, str] | None:
        self.refresh()
        hit = self._agents.get(interface)
        if hit is None and interface:
            self._miss()
            hit = self._agents.get(interface)
        return hit

    def queue_tenant(self, name: str) -> int | None:
        self.refresh()
        hit = self._queues.get(name)
        if hit is None and name:
            self._miss()
            hit = self._queues.get(name)
        return hit

    def queues_of(self, tenant_id: int) -> set[str]:
        self.refresh()
        return {q for q, t in self._queues.items() if t == tenant_id}

    def country(self, tenant_id: int) -> str:
        c = self._countries.get(tenant_id)
        if c is None:
            c = self._countries[tenant_id] = self.store.tenant(tenant_id)["default_country"]
        return c


Emit = Callable[..., Any]


class Hub:
    """Routes domain events to Socket.IO rooms; see the module docstring for the threads."""

    def __init__(self, emit: Emit, store: PanelStore, bridge: Any, *,
                 active_tenants: Callable[[], tuple[set[int], set[int]]] | None = None,
                 pop_workers: int = 4, summary_interval: float = 1.0,
                 stats_interval: float = 5.0, team_interval: float = 5.0) -> None:
        self.emit = emit
        self.store = store
        self.bridge = bridge
        self.directory = Directory(store)
        self.active_tenants = active_tenants or (lambda: (set(), set()))
        self.summary_interval = summary_interval
        self.stats_interval = stats_interval
        self.team_interval = team_interval
        self._team_at: dict[int, float] = {}
        self._team_sent: dict[int, list[dict[str, Any]]] = {}
        self.calls: OrderedDict[str, CallInfo] = OrderedDict()
        self.recent: dict[str, deque[str]] = {}  # interface -> calls it was on
        self._lock = threading.Lock()
        self._q: queue.SimpleQueue[tuple[d.DomainEvent, dict[str, Any] | None] | None] = (
            queue.SimpleQueue())
        self._pops = ThreadPoolExecutor(pop_workers, thread_name_prefix="ccd-web-pop")
        self._dirty: set[int] = set()
        self._stats_dirty: set[int] = set()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.stats = {"events": 0, "pops": 0, "pop_errors": 0, "emits": 0}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.directory.refresh(force=True)
        for name, target in (("ccd-web-hub", self._dispatch), ("ccd-web-summary", self._summary)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.bridge.subscribe("panel", self.on_event)

    def stop(self) -> None:
        self._stop.set()
        self._q.put(None)
        for t in self._threads:
            t.join(5)
        self._pops.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ loop thread

    def on_event(self, e: d.DomainEvent) -> None:
        """Bus subscriber, on the daemon's loop thread: keep it short."""
        if self._stop.is_set():
            return
        kind = e.kind
        if kind not in CALL_KINDS and kind not in ("agent_state", "pbx"):
            return
        extra = None
        if kind == "agent_ringing":
            # on the loop thread the model is consistent: copy what the pop needs now
            # (through the bridge's daemon, as DaemonBridge.read does, without a round trip)
            call = self.bridge.daemon.model.calls.get(e.call_id)
            extra = call_extra(call) if call is not None else {}
            extra["received"] = time.time()
        self._q.put((e, extra))

    # ------------------------------------------------------------------ dispatcher

    def _dispatch(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            e, extra = item
            try:
                self._route(e, extra)
            except Exception:
                log.exception("panel: routing %s failed", e.kind)

    def _send(self, event: str, data: Any, room: str | None = None) -> None:
        self.stats["emits"] += 1
        if room is None:
            self.emit(event, data)
        else:
            self.emit(event, data, to=room)

    def _info(self, call_id: str) -> CallInfo:
        info = self.calls.get(call_id)
        if info is None:
            with self._lock:
                info = self.calls[call_id] = CallInfo(call_id)
                while len(self.calls) > MAX_CALLS:
                    self.calls.popitem(last=False)
        return info

    def _remember(self, interface: str, call_id: str) -> None:
        if not interface or not call_id:
            return
        with self._lock:
            dq = self.recent.get(interface)
            if dq is None:
                dq = self.recent[interface] = deque(maxlen=20)
            if call_id not in dq:
                dq.append(call_id)

    def was_on_call(self, interface: str, call_id: str) -> bool:
        """True if the hub saw this agent on the call (rang, answered, transferred ...)."""
        with self._lock:
            info = self.calls.get(call_id)
            if info is not None and interface in info.agents:
                return True
            return call_id in self.recent.get(interface, ())

    def call_brief(self, call_id: str) -> dict[str, Any] | None:
        with self._lock:
            info = self.calls.get(call_id)
            return info.brief() if info else None

    def _call_tenant(self, info: CallInfo) -> int | None:
        t = self.directory.queue_tenant(info.queue) if info.queue else None
        if t is None:
            for iface in info.agents:
                a = self.directory.agent(iface)
                if a is not None:
                    return a[1]
        return t

    def _route(self, e: d.DomainEvent, extra: dict[str, Any] | None) -> None:
        self.stats["events"] += 1
        if isinstance(e, d.AgentStateChanged):
            self._agent_state(e)
            return
        if isinstance(e, d.PbxEvent):
            # every tenant sees it: what happened, not the platform-wide figures in detail
            self._send("pbx", {"what": e.what, "ts": e.ts})
            return
        call_id = getattr(e, "call_id", "")
        info = self._info(call_id)
        if isinstance(e, d.CallStarted | d.CallQueued):
            info.caller_num = info.caller_num or e.caller_num
            info.caller_name = info.caller_name or e.caller_name
            if isinstance(e, d.CallStarted):
                info.did, info.state = e.did, "started"
                return  # nobody needs it before it is queued or rings
            info.queue, info.state = e.queue, "queued"
        elif isinstance(e, d.AgentRinging):
            info.caller_num = e.caller_num or info.caller_num
            info.caller_name = e.caller_name or info.caller_name
            info.queue = e.queue or info.queue
            info.agents.add(e.agent)
            info.state = "ringing"
            self._remember(e.agent, call_id)
            self._pops.submit(self._pop, e, extra or {})
        elif isinstance(e, d.CallAnswered | d.AgentConnected):
            info.agents.add(e.agent)
            info.state = "talking"
            self._remember(e.agent, call_id)
        elif isinstance(e, d.CallHeld):
            info.state = "on_hold"
        elif isinstance(e, d.CallUnheld):
            info.state = "talking"
        elif isinstance(e, d.CallTransferred):
            if e.from_agent:
                info.agents.add(e.from_agent)
        elif isinstance(e, d.CallEnded):
            info.state = "ended"
            rec = e.record
            for iface in {rec.agent, *(s.agent for s in rec.segments)} - {""}:
                info.agents.add(iface)
                self._remember(iface, call_id)
        payload = self._call_payload(e, info)
        for iface in list(info.agents):
            a = self.directory.agent(iface)
            if a is not None:
                self._send("call", payload, f"agent:{a[0]}")
        tenant = self._call_tenant(info)
        if tenant is not None:
            self._send("call", payload, f"sup:{tenant}")
            if e.kind in QUEUE_KINDS:
                self._mark(tenant)
        if isinstance(e, d.CallEnded):
            with self._lock:
                self.calls.pop(call_id, None)

    def _mark(self, tenant: int) -> None:
        """Queue figures of ``tenant`` changed: push them at the next summary."""
        with self._lock:
            self._dirty.add(tenant)
            self._stats_dirty.add(tenant)

    @staticmethod
    def _call_payload(e: d.DomainEvent, info: CallInfo) -> dict[str, Any]:
        data = e.to_dict()
        data.pop("record", None)
        data.update(caller_num=info.caller_num, caller_name=info.caller_name,
                    queue=data.get("queue") or info.queue, state=info.state,
                    agents=sorted(info.agents))
        return data

    def _agent_state(self, e: d.AgentStateChanged) -> None:
        a = self.directory.agent(e.agent)
        if e.call_id:
            self._info(e.call_id).agents.add(e.agent)
            self._remember(e.agent, e.call_id)
        if a is None:
            return
        agent_id, tenant, name = a
        info = self.calls.get(e.call_id) if e.call_id else None
        payload = {"agent": e.agent, "agent_id": agent_id, "name": name or e.name,
                   "state": e.state, "previous": e.previous, "reason": e.reason,
                   "since": e.ts, "call_id": e.call_id, "queues": list(e.queues),
                   "paused": e.paused, "call": info.brief() if info else None}
        self._send("agent_state", payload, f"agent:{agent_id}")
        self._send("agent_state", payload, f"sup:{tenant}")
        self._mark(tenant)

    # ------------------------------------------------------------------ screen pop

    def build_pop(self, e: d.AgentRinging, extra: dict[str, Any], tenant: int) -> dict[str, Any]:
        """Everything the agent sees when its phone rings (the customer from PostgreSQL)."""
        variables = {k: v for k, v in (extra.get("variables") or {}).items()
                     if k.startswith("CCD_") or k in ("CUSTOMER_ID", "IVR_CHOICE")}
        path = variables.get("CCD_IVR_PATH", "")
        digits = ivr_digits(path)
        if not digits and variables.get("IVR_CHOICE"):
            digits = [variables["IVR_CHOICE"]]
        pop: dict[str, Any] = {
            "call_id": e.call_id, "ts": e.ts, "queue": e.queue, "wait": e.wait,
            "agent": e.agent, "caller_num": e.caller_num, "caller_name": e.caller_name,
            "did": extra.get("did", ""), "direction": extra.get("direction", ""),
            "recording": extra.get("recording", False),
            "ivr_path": path, "digits": digits, "vip": variables.get("CCD_VIP") == "1",
            "language": variables.get("CCD_LANG", ""), "customer": None, "e164": None,
            "recent_calls": [], "open_tickets": [], "customer_error": ""}
        try:
            country = self.directory.country(tenant)
            pop["e164"] = to_e164(e.caller_num, country)
            camp = campaign_ids(variables)
            if camp is not None:
                # a campaign call: the channel's caller ID is the campaign's own number;
                # the customer is the contact being called
                self._campaign_pop(pop, camp, extra, tenant, country)
            cid = variables.get("CCD_CUSTOMER_ID", "")
            customer, recent, tickets = self.store.pop_lookup(
                tenant, country, customer_id=int(cid) if cid.isdigit() else None,
                e164=pop["e164"], exclude_call=e.call_id, timeout=POP_DB_TIMEOUT)
            pop.update(customer=customer, recent_calls=recent, open_tickets=tickets)
        except Exception as exc:  # the pop goes out anyway, without the customer
            self.stats["pop_errors"] += 1
            log.warning("screen pop of call %s without customer data: %s", e.call_id, exc)
            pop["customer_error"] = "database unavailable"
        return plain(pop)

    def _campaign_pop(self, pop: dict[str, Any], camp: tuple[int, int], extra: dict[str, Any],
                      tenant: int, country: str) -> None:
        """Fill the pop of a campaign call with the contact (its number, name, list data);
        without the database, at least the number the call dialled."""
        pop["direction"] = "outbound"
        pop["campaign"] = None
        pop["caller_name"] = ""
        pop["caller_num"] = dialed_number(extra.get("dialed", ""))
        pop["e164"] = to_e164(pop["caller_num"], country) if pop["caller_num"] else None
        contact = self.store.campaign_contact(tenant, camp[0], camp[1], timeout=POP_DB_TIMEOUT)
        if contact is None:
            return
        pop["caller_num"] = pop["e164"] = contact["e164"]
        pop["caller_name"] = contact["name"]
        pop["campaign"] = {"id": contact["campaign_id"], "name": contact["campaign"],
                           "attempt_id": contact["attempt_id"],
                           "attempt_no": contact["attempt_no"],
                           "contact_id": contact["contact_id"],
                           "language": contact["language"], "data": contact["data"] or {}}
        with self._lock:
            info = self.calls.get(pop["call_id"])
            if info is not None:  # later call events and the wallboard show the contact
                info.caller_num, info.caller_name = contact["e164"], contact["name"]

    def _pop(self, e: d.AgentRinging, extra: dict[str, Any]) -> None:
        """Build and send one pop (pop worker thread). ``timing`` tells the browser (and
        the benchmark) when the panel got the event, started the lookup and sent it."""
        try:
            a = self.directory.agent(e.agent)
            if a is None:
                return
            t1 = time.time()
            pop = self.build_pop(e, extra, a[1])
            pop["timing"] = [extra.get("received", 0.0), t1, time.time()]
            self.stats["pops"] += 1
            self._send("pop", pop, f"agent:{a[0]}")
        except Exception:
            self.stats["pop_errors"] += 1
            log.exception("screen pop of call %s failed", e.call_id)

    # ------------------------------------------------------------------ summaries

    def queue_rows(self, tenant_id: int, rows: list[dict[str, Any]] | None = None
                   ) -> list[dict[str, Any]]:
        """Live queue summaries of one tenant (``queues`` API method, filtered)."""
        if rows is None:
            rows = self.bridge.call("queues", {}, timeout=3.0)
        mine = self.directory.queues_of(tenant_id)
        return [r for r in rows if r["queue"] in mine]

    def stats_today(self, tenant_id: int) -> dict[str, Any]:
        """Today's per-interval figures of the tenant's queues, for the charts."""
        mine = self.directory.queues_of(tenant_id)
        try:
            data = self.bridge.call("stats.today", {}, timeout=3.0)
            rows = data["queues"]
            source = "live"
        except ApiError as exc:
            if "unknown method" not in str(exc):
                raise
            day = datetime.fromtimestamp(time.time() // 86400 * 86400, UTC)
            rows = self.store.queue_stats_today(tenant_id, day)
            source = "stored"
        rows = [r for r in rows if r["queue"] in mine]
        by_start: dict[float, dict[str, Any]] = {}
        for r in rows:
            b = by_start.setdefault(float(r["start"]), {
                "start": float(r["start"]), "offered": 0, "answered": 0, "abandoned": 0,
                "answered_in_sl": 0, "abandoned_short": 0})
            for k in ("offered", "answered", "abandoned", "answered_in_sl", "abandoned_short"):
                b[k] += int(r.get(k) or 0)
        intervals = []
        for b in sorted(by_start.values(), key=lambda x: x["start"]):
            base = b["offered"] - b["abandoned_short"]
            b["service_level"] = round(100.0 * b["answered_in_sl"] / base, 1) if base > 0 else None
            intervals.append(b)
        return {"intervals": intervals, "source": source}

    def _summary(self) -> None:
        last_stats = 0.0
        while not self._stop.wait(self.summary_interval):
            try:
                if self._summarize(time.monotonic() - last_stats >= self.stats_interval):
                    last_stats = time.monotonic()
            except Exception as exc:
                log.debug("panel summaries skipped: %s", exc)

    def _summarize(self, stats_due: bool) -> bool:
        """Push queue summaries (and, when due, charts); True if charts were pushed.

        Supervisors get every change (at most once per ``summary_interval``); agents get a
        smaller summary at most every ``team_interval`` seconds, only when it changed: at
        20 calls/s and 500 agents, a per-second broadcast would be most of the panel's
        traffic and delay screen pops.
        """
        team_tenants, sup_tenants = self.active_tenants()
        if not team_tenants and not sup_tenants:
            with self._lock:
                self._dirty.clear()
            return False
        rows = self.bridge.call("queues", {}, timeout=3.0)
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        now = time.monotonic()
        for t in sup_tenants | team_tenants:
            mine = self.queue_rows(t, rows)
            if t in sup_tenants and (t in dirty or any(r["waiting"] for r in mine)):
                self._send("queues", plain(mine), f"sup:{t}")
            if t in team_tenants and now - self._team_at.get(t, 0.0) >= self.team_interval:
                slim = [{k: r[k] for k in TEAM_FIELDS if k in r} for r in mine]
                if slim != self._team_sent.get(t):
                    self._team_sent[t], self._team_at[t] = slim, now
                    self._send("queues", plain(slim), f"team:{t}")
        with self._lock:
            if not stats_due or not sup_tenants & self._stats_dirty:
                return False
            sdirty, self._stats_dirty = self._stats_dirty, set()
        for t in sup_tenants & sdirty:
            with contextlib.suppress(ApiError):
                self._send("stats", plain(self.stats_today(t)), f"sup:{t}")
        return True
