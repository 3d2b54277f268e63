"""The IVR engine: walks a :class:`~ccd.ivr.flow.Flow` for one call over an AGI session.

It sets what the screen pop and the dialplan need on the channel (``CCD_CUSTOMER_ID``,
``CCD_CUSTOMER_NAME``, ``CCD_VIP``, ``CCD_LANG``, ``CCD_QUEUE``, ``CCD_PRIORITY``,
``CCD_IVR_PATH``, ``CCD_IVR_RESULT``) and stores the path the caller took in
``ivr_sessions``. Storage trouble never drops a call: a failed lookup counts as "not
found", a failed calendar read uses the flow's own hours.

Security: caller digits only ever become a dial target through a ``transfer`` node whose
target must be in the flow's ``allowed_transfers`` (exact match); queue names, contexts
and mailboxes come from the flow file, never from the caller.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ccd.agi.protocol import AgiError, AgiHangup
from ccd.agi.session import AgiMediaError, AgiSession, DigitsResult
from ccd.ivr.calendar import Calendar
from ccd.ivr.checks import luhn_ok
from ccd.ivr.flow import (
    QUEUE_NAME,
    TEMPLATE_FIELD,
    CallbackNode,
    CollectNode,
    Flow,
    HangupNode,
    HoursNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    PromptNode,
    QueueNode,
    SetNode,
    TransferNode,
    VoicemailNode,
)
from ccd.ivr.lookup import (
    DEFAULT_TENANT,
    CallbackRequest,
    Customer,
    Directory,
    IvrRecord,
    Tenant,
)
from ccd.ivr.phone import to_e164

log = logging.getLogger("ccd.ivr")

Clock = Callable[[], datetime]
ALL_DTMF = "0123456789*#"
#: longest CCD_IVR_PATH value set on the channel (the full path is stored in the database)
MAX_PATH_TEXT = 1000


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Step:
    """One entry of the path: a node, what the caller typed, how it ended."""

    node: str
    type: str
    input: str | None = None
    result: str | None = None

    def text(self) -> str:
        s = self.node
        if self.input is not None:
            s += f"={self.input}"
        if self.result is not None:
            s += f"({self.result})"
        return s

    def to_dict(self) -> dict[str, str]:
        d = {"node": self.node, "type": self.type}
        if self.input is not None:
            d["input"] = self.input
        if self.result is not None:
            d["result"] = self.result
        return d


@dataclass(slots=True)
class CallState:
    """Everything the engine knows about the call being handled."""

    session: AgiSession
    flow: Flow
    tenant: Tenant
    did: str
    caller_e164: str | None
    language: str
    started_at: datetime
    language_chosen: bool = False
    channel_language: str | None = None
    customer: Customer | None = None
    vars: dict[str, str] = field(default_factory=dict)
    path: list[Step] = field(default_factory=list)
    outcome: str = ""
    queue: str = ""
    priority: int | None = None

    @property
    def path_text(self) -> str:
        return ">".join(s.text() for s in self.path)


class _Done(Exception):
    """The flow reached a node that ends the IVR."""


class IvrEngine:
    """The AGI handler for ``agi://host/ivr``: ``server.route("ivr", engine.handle)``."""

    def __init__(self, flows: Mapping[str, Flow], directory: Directory, *,
                 default_flow: str = "support", default_country: str = "US",
                 clock: Clock = utc_now) -> None:
        if default_flow not in flows:
            log.warning("default IVR flow %r is not loaded (have: %s): calls need a flow "
                        "in the AGI URL or an ivr_routes row", default_flow,
                        ", ".join(sorted(flows)) or "none")
        self.flows = dict(flows)
        self.directory = directory
        self.default_flow = default_flow
        self.default_country = default_country
        self.clock = clock
        self._calendars: dict[tuple[str, str, str], Calendar] = {}
        self._handlers: dict[type, Callable[[CallState, Any, str], Any]] = {
            PromptNode: self._prompt, MenuNode: self._menu, CollectNode: self._collect,
            LanguageNode: self._language, LookupNode: self._lookup, HoursNode: self._hours,
            SetNode: self._set, QueueNode: self._queue, TransferNode: self._transfer,
            VoicemailNode: self._voicemail, CallbackNode: self._callback,
            HangupNode: self._hangup,
        }

    async def handle(self, session: AgiSession) -> None:
        """Run the caller through the flow; raises AgiHangup / errors after recording."""
        did = session.dnid
        tenant, routed = await self._resolve(did)
        name = (session.route_args[0] if session.route_args else None) or routed \
            or self.default_flow
        flow = self.flows.get(name)
        if flow is None:
            raise LookupError(f"IVR flow {name!r} is not loaded")
        state = CallState(
            session=session, flow=flow, tenant=tenant, did=did,
            caller_e164=_e164(session.caller_id, tenant.default_country or self.default_country),
            language=flow.header.default_language, started_at=self.clock())
        try:
            await session.set_variable("CCD_FALLBACK_QUEUE", flow.header.fallback_queue)
            await self._walk(state)
        except AgiHangup:
            # a message is left (and a callback asked for) by hanging up at the end of it
            if state.outcome not in ("voicemail", "callback"):
                state.outcome = "caller_hangup"
            await self._finish(state)
            raise
        except Exception:
            state.outcome = "error"
            await self._finish(state)
            raise
        await self._finish(state)

    async def _resolve(self, did: str) -> tuple[Tenant, str | None]:
        try:
            return await self.directory.resolve(did)
        except Exception as exc:
            log.warning("tenant of DID %r unknown (%s); using the default tenant", did, exc)
            return DEFAULT_TENANT, None

    async def _walk(self, st: CallState) -> None:
        node_id = st.flow.start
        for _ in range(st.flow.header.max_steps):
            node = st.flow.nodes[node_id]
            try:
                node_id = await self._handlers[type(node)](st, node, node_id)
            except _Done:
                return
            except AgiHangup:
                st.path.append(Step(node_id, node.type, None, "hangup"))  # where they left
                raise
        raise RuntimeError(f"flow {st.flow.name!r} ran {st.flow.header.max_steps} steps "
                           "without reaching an end (a loop?)")

    async def _surveys(self, queue: str) -> bool:
        try:
            return await self.directory.queue_surveys(queue)
        except Exception as exc:  # no survey rather than a stuck caller
            log.warning("survey setting of queue %s unknown: %s", queue, exc)
            return False

    async def _finish(self, st: CallState) -> None:
        s = st.session
        text = st.path_text
        if len(text) > MAX_PATH_TEXT:
            text = text[: MAX_PATH_TEXT - 3] + "..."
        try:
            if st.outcome == "queue":
                await s.set_variable("CCD_QUEUE", st.queue)
                await s.set_variable("CCD_PRIORITY", st.priority or 0)
                await s.set_variable("CCD_SURVEY", "1" if await self._surveys(st.queue) else "0")
            # SET VARIABLE works on a dead channel too: a caller who hung up keeps a path
            await s.set_variable("CCD_LANG", st.language)
            await s.set_variable("CCD_IVR_RESULT", st.outcome)
            await s.set_variable("CCD_IVR_PATH", text)
        except AgiError as exc:
            log.info("[%s] could not set the IVR result variables: %s", s.uniqueid, exc)
        rec = IvrRecord(
            tenant_id=st.tenant.id, uniqueid=s.uniqueid, channel=s.channel, flow=st.flow.name,
            did=st.did, caller_num=s.caller_id, caller_e164=st.caller_e164,
            customer_id=st.customer.id if st.customer else None, language=st.language,
            path=[p.to_dict() for p in st.path], path_text=st.path_text, outcome=st.outcome,
            queue=st.queue, priority=st.priority, started_at=st.started_at,
            ended_at=max(self.clock(), st.started_at))
        try:
            await self.directory.save_session(rec)
        except Exception as exc:
            log.warning("[%s] IVR path not stored: %s", s.uniqueid, exc)

    # ------------------------------------------------------------------ media

    def _sound(self, st: CallState, prompt: str) -> str:
        return st.flow.sound(prompt, st.language)

    async def _play(self, st: CallState, prompts: list[str], escape: str = "") -> str | None:
        """Play prompts in turn; the escape digit that interrupted them, if any."""
        for p in prompts:
            try:
                r = await st.session.stream_file(self._sound(st, p), escape)
            except AgiMediaError:
                log.error("[%s] flow %s: sound %r of prompt %r does not play",
                          st.session.uniqueid, st.flow.name, self._sound(st, p), p)
                continue
            if r.digit:
                return r.digit
        return None

    async def _ask(self, st: CallState, node: Any, max_digits: int) -> DigitsResult:
        """Play the node's prompts and collect up to ``max_digits`` digits."""
        prompts: list[str] = node.prompt
        if len(prompts) > 1:
            digit = await self._play(st, prompts[:-1], ALL_DTMF if max_digits == 1 else "")
            if digit:
                return DigitsResult(digit, False)
        sound = self._sound(st, prompts[-1])
        try:
            return await st.session.get_data(sound, int(node.timeout * 1000), max_digits)
        except AgiMediaError:
            log.error("[%s] flow %s: sound %r of prompt %r does not play",
                      st.session.uniqueid, st.flow.name, sound, prompts[-1])
            return DigitsResult("", True)

    async def _reprompt(self, st: CallState, node: Any, timed_out: bool, last: bool) -> None:
        prompt = (node.timeout_prompt or node.invalid_prompt) if timed_out else node.invalid_prompt
        if prompt and not last:
            await self._play(st, [prompt])

    # ------------------------------------------------------------------ nodes

    async def _prompt(self, st: CallState, node: PromptNode, nid: str) -> str:
        st.path.append(Step(nid, node.type))
        await self._play(st, node.prompt)
        return node.next

    async def _menu(self, st: CallState, node: MenuNode, nid: str) -> str:
        for attempt in range(node.retries + 1):
            r = await self._ask(st, node, 1)
            d = r.digits[:1]
            if d in node.choices:
                st.path.append(Step(nid, node.type, d))
                return node.choices[d]
            st.path.append(Step(nid, node.type, d or None, "invalid" if d else "timeout"))
            await self._reprompt(st, node, not d, attempt == node.retries)
        return node.on_failure

    async def _collect(self, st: CallState, node: CollectNode, nid: str) -> str:
        for attempt in range(node.retries + 1):
            r = await self._ask(st, node, node.max_digits)
            digits = r.digits
            problem = _check_digits(node, digits)
            shown = ("*" * len(digits) if node.mask else digits) or None
            if problem is None:
                st.vars[node.variable] = digits
                st.path.append(Step(nid, node.type, shown))
                if node.channel_variable:
                    await st.session.set_variable(node.channel_variable, digits)
                return node.next
            st.path.append(Step(nid, node.type, shown, problem))
            await self._reprompt(st, node, problem == "timeout", attempt == node.retries)
        return node.on_failure

    async def _language(self, st: CallState, node: LanguageNode, nid: str) -> str:
        if node.skip_if_known and st.language_chosen:
            st.path.append(Step(nid, node.type, None, f"known:{st.language}"))
        else:
            for attempt in range(node.retries + 1):
                r = await self._ask(st, node, 1)
                d = r.digits[:1]
                if d in node.choices:
                    st.language = node.choices[d]
                    st.language_chosen = True
                    st.path.append(Step(nid, node.type, d))
                    break
                st.path.append(Step(nid, node.type, d or None, "invalid" if d else "timeout"))
                await self._reprompt(st, node, not d, attempt == node.retries)
        await self._apply_language(st)
        return node.next

    async def _apply_language(self, st: CallState) -> None:
        lang = st.flow.channel_language(st.language)
        if lang != st.channel_language and lang != st.session.language:
            await st.session.set_variable("CHANNEL(language)", lang)
        st.channel_language = lang

    async def _lookup(self, st: CallState, node: LookupNode, nid: str) -> str:
        customer: Customer | None = None
        result = "not_found"
        try:
            if node.by == "caller_id":
                if st.caller_e164:
                    customer = await self.directory.customer_by_phone(st.tenant.id,
                                                                      st.caller_e164)
                else:
                    result = "no_caller_id"
            else:
                account = st.vars.get(node.account_variable or "", "")
                if account:
                    customer = await self.directory.customer_by_account(st.tenant.id, account)
        except Exception as exc:
            log.warning("[%s] customer lookup by %s failed: %s", st.session.uniqueid,
                        node.by, exc)
            result = "error"
        if customer is None:
            st.path.append(Step(nid, node.type, None, result))
            return node.not_found
        st.customer = customer
        st.path.append(Step(nid, node.type, None, "found"))
        s = st.session
        await s.set_variable("CCD_CUSTOMER_ID", customer.id)
        await s.set_variable("CCD_CUSTOMER_NAME", _one_line(customer.name))
        await s.set_variable("CCD_VIP", "1" if customer.vip else "0")
        if (customer.language in st.flow.header.languages and not st.language_chosen):
            st.language = customer.language  # type: ignore[assignment]
            st.language_chosen = True
            await self._apply_language(st)
        return node.found

    async def _calendar(self, st: CallState, name: str) -> Calendar:
        spec = st.flow.calendars[name]
        key = (st.flow.name, name, st.tenant.timezone)
        base = self._calendars.get(key)
        if base is None:
            base = self._calendars[key] = spec.to_calendar(st.tenant.timezone or "UTC")
        try:
            rows = await self.directory.calendar_rows(st.tenant.id, name)
        except Exception as exc:
            log.warning("[%s] calendar %r of tenant %s not read (%s); using the flow's hours",
                        st.session.uniqueid, name, st.tenant.slug, exc)
            return base
        if rows.weekly is None and not rows.holidays and not rows.special:
            return base
        tz = st.tenant.timezone if rows.weekly is not None else base.timezone
        return base.with_overrides(timezone=tz, weekly=rows.weekly, holidays=rows.holidays,
                                   special=rows.special)

    async def _hours(self, st: CallState, node: HoursNode, nid: str) -> str:
        state = (await self._calendar(st, node.calendar)).state(self.clock())
        st.path.append(Step(nid, node.type, None, state))
        if state == "open":
            return node.open
        if state == "holiday" and node.holiday:
            return node.holiday
        return node.closed

    async def _set(self, st: CallState, node: SetNode, nid: str) -> str:
        fields = self._fields(st)
        for var, template in node.variables.items():
            value = TEMPLATE_FIELD.sub(lambda m: fields.get(m.group(1), ""), template)
            await st.session.set_variable(var, _one_line(value))
        st.path.append(Step(nid, node.type))
        return node.next

    def _fields(self, st: CallState) -> dict[str, str]:
        c = st.customer
        s = st.session
        return {
            **st.vars,
            "caller": s.caller_id, "caller_e164": st.caller_e164 or "", "did": st.did,
            "language": st.language, "flow": st.flow.name, "uniqueid": s.uniqueid,
            "tenant": st.tenant.slug,
            "customer_id": str(c.id) if c else "", "customer_name": c.name if c else "",
            "account_no": (c.account_no or "") if c else "", "vip": "1" if c and c.vip else "0",
        }

    async def _queue(self, st: CallState, node: QueueNode, nid: str) -> str:
        vip = bool(st.customer and st.customer.vip)
        prio = node.vip_priority if vip and node.vip_priority is not None else node.priority
        queue = await self._line_queue(st) if node.line_queue else None
        queue = queue or node.queue
        st.path.append(Step(nid, node.type, None, f"{queue}/{prio}"))
        await self._play(st, node.prompt)
        st.outcome, st.queue, st.priority = "queue", queue, prio
        raise _Done

    async def _line_queue(self, st: CallState) -> str | None:
        """The called line's own queue (CCD_LINE_QUEUE), if it is one of the tenant's."""
        name = (await st.session.get_variable("CCD_LINE_QUEUE") or "").strip()
        if not name:
            return None
        if not QUEUE_NAME.fullmatch(name):
            log.warning("[%s] CCD_LINE_QUEUE %r is not a queue name; ignored",
                        st.session.uniqueid, name)
            return None
        try:
            owner = await self.directory.queue_tenant(name)
        except Exception as exc:
            log.warning("[%s] owner of queue %s unknown (%s); using the flow's queue",
                        st.session.uniqueid, name, exc)
            return None
        if owner is None or (st.tenant.id and owner != st.tenant.id):
            log.warning("[%s] line queue %s is not a queue of tenant %s; using the flow's",
                        st.session.uniqueid, name, st.tenant.slug)
            return None
        return name

    async def _transfer(self, st: CallState, node: TransferNode, nid: str) -> str:
        if node.target is not None:
            target = node.target
        else:
            target = st.vars.get(node.target_variable or "", "")
        if target not in st.flow.allowed_transfers:
            # never dial what the caller typed unless the flow lists it
            st.path.append(Step(nid, node.type, target or None, "denied"))
            log.warning("[%s] flow %s: transfer to %r refused (not in allowed_transfers)",
                        st.session.uniqueid, st.flow.name, target)
            if node.on_denied is None:  # load-time checks require it for caller-given targets
                raise RuntimeError(f"transfer node {nid!r} has no on_denied")
            return node.on_denied
        st.path.append(Step(nid, node.type, target))
        await self._play(st, node.prompt)
        await st.session.set_variable("CCD_TRANSFER", target)
        await st.session.goto(st.flow.header.transfer_context, target, 1)
        st.outcome = "transfer"
        raise _Done

    async def _voicemail(self, st: CallState, node: VoicemailNode, nid: str) -> str:
        await self._play(st, node.prompt)
        st.outcome = "voicemail"
        try:
            # s: no Asterisk instructions (the flow's prompt said what to do), then the tone
            await st.session.exec("VoiceMail", f"{node.mailbox},s")
            status = await st.session.get_variable("VMSTATUS") or ""
        except AgiHangup:
            st.path.append(Step(nid, node.type, None, node.mailbox))
            raise
        if status not in ("SUCCESS", "USEREXIT"):
            # no such mailbox, no space ...: Asterisk took no message; say so, go elsewhere
            log.warning("[%s] flow %s: VoiceMail(%s) failed (VMSTATUS=%s): no message left",
                        st.session.uniqueid, st.flow.name, node.mailbox, status or "unset")
            st.path.append(Step(nid, node.type, None, f"{node.mailbox}:failed"))
            st.outcome = "voicemail_failed"  # the next node may do better (a callback)
            if node.on_failure:
                return node.on_failure
            raise _Done
        st.path.append(Step(nid, node.type, None, node.mailbox))
        if node.next:
            return node.next
        raise _Done

    async def _callback(self, st: CallState, node: CallbackNode, nid: str) -> str:
        raw = st.vars.get(node.number_variable) if node.number_variable else None
        number = _e164(raw, st.tenant.default_country or self.default_country) if raw \
            else st.caller_e164
        failed = node.on_failure or node.next
        if number is None:
            st.path.append(Step(nid, node.type, None, "no_number"))
            return failed
        req = CallbackRequest(
            tenant_id=st.tenant.id, uniqueid=st.session.uniqueid, e164=number,
            queue=node.queue, language=st.language,
            customer_id=st.customer.id if st.customer else None, requested_at=self.clock())
        try:
            fresh = await self.directory.save_callback(req)
        except Exception as exc:
            log.warning("[%s] callback request not stored: %s", st.session.uniqueid, exc)
            st.path.append(Step(nid, node.type, None, "error"))
            return failed
        st.path.append(Step(nid, node.type, None, "requested" if fresh else "already_pending"))
        await st.session.set_variable("CCD_CALLBACK", number)
        st.outcome = "callback"
        await self._play(st, node.prompt)
        return node.next

    async def _hangup(self, st: CallState, node: HangupNode, nid: str) -> str:
        st.path.append(Step(nid, node.type))
        await self._play(st, node.prompt)
        st.outcome = st.outcome or "hangup"
        await st.session.hangup()
        raise _Done


_DIGITS = re.compile(r"[0-9]+")


def _check_digits(node: CollectNode, digits: str) -> str | None:
    """Why ``digits`` are not acceptable for ``node`` (None if they are)."""
    if not digits:
        return "timeout"
    if not _DIGITS.fullmatch(digits):
        return "invalid"
    if len(digits) < node.min_digits:
        return "too_short"
    if len(digits) > node.max_digits:
        return "too_long"
    if node.pattern is not None and not re.fullmatch(node.pattern, digits):
        return "pattern"
    if node.check == "luhn" and not luhn_ok(digits):
        return "checksum"
    return None


def _e164(raw: str | None, country: str) -> str | None:
    try:
        return to_e164(raw, country)
    except KeyError:
        log.warning("no number plan for country %r; caller ID %r not normalised", country, raw)
        return None


def _one_line(s: str) -> str:
    return " ".join(s.split())
