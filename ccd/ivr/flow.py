"""IVR flows as data: one TOML file per flow, validated when loaded.

A flow names its first node, the languages it speaks (each with a prompt set: prompt
name -> sound file), its calendars, the transfer targets it may reach, and its nodes.
Every problem found at load time is reported with the file and the node, e.g.
``flows/support.toml: node 'main': choice '3' goes to unknown node 'billing'``.

Node types: prompt, menu, collect, lookup, hours, language, set, queue, transfer,
voicemail, callback, hangup (see ``ccd/ivr/flows/support.toml`` for all of them).
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ccd.ivr.calendar import Calendar, build, zone

DTMF_KEY = re.compile(r"[0-9*#]")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CHANNEL_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
EXTENSION = re.compile(r"[0-9*#]+|[A-Za-z0-9_\-]+")
MAILBOX = re.compile(r"[0-9A-Za-z_\-]+(@[A-Za-z0-9_\-]+)?")
TEMPLATE_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: values a ``set`` node may use besides the flow's collected variables
TEMPLATE_BUILTINS = frozenset({
    "caller", "caller_e164", "did", "language", "flow", "uniqueid",
    "customer_id", "customer_name", "account_no", "vip", "tenant",
})


class FlowError(ValueError):
    """A flow file cannot be used; the message names the file (and node)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Prompts = Annotated[list[str], Field(min_length=1)]


def _as_list(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


def _dtmf_keys(v: dict[str, str]) -> dict[str, str]:
    for k in v:
        if not DTMF_KEY.fullmatch(k):
            raise ValueError(f"choice key {k!r} is not one DTMF digit (0-9, *, #)")
    return v


def _queue_name(v: str) -> str:
    if not QUEUE_NAME.fullmatch(v):
        raise ValueError(f"queue name {v!r} has characters a dialplan cannot take")
    return v


class _Node(_Model):
    """Fields common to all nodes."""

    def targets(self) -> dict[str, str]:
        """Outgoing edges: label -> node id."""
        return {}

    def prompt_names(self) -> list[str]:
        return []


class PromptNode(_Node):
    type: Literal["prompt"]
    prompt: Prompts
    next: str

    prompt_list = field_validator("prompt", mode="before")(_as_list)

    def targets(self) -> dict[str, str]:
        return {"next": self.next}

    def prompt_names(self) -> list[str]:
        return list(self.prompt)


class _Input(_Node):
    """Nodes that ask the caller for digits."""

    prompt: Prompts
    timeout: float = Field(5.0, gt=0, le=60, description="seconds to wait for input")
    retries: int = Field(2, ge=0, le=10, description="re-prompts after the first try")
    invalid_prompt: str | None = None
    timeout_prompt: str | None = None

    prompt_list = field_validator("prompt", mode="before")(_as_list)

    def prompt_names(self) -> list[str]:
        return [*self.prompt, *(p for p in (self.invalid_prompt, self.timeout_prompt) if p)]


class MenuNode(_Input):
    type: Literal["menu"]
    choices: dict[str, str] = Field(min_length=1)
    on_failure: str

    check_choices = field_validator("choices")(_dtmf_keys)

    def targets(self) -> dict[str, str]:
        return {**{f"choice '{k}'": t for k, t in self.choices.items()},
                "on_failure": self.on_failure}


class CollectNode(_Input):
    type: Literal["collect"]
    variable: str
    channel_variable: str | None = None
    min_digits: int = Field(1, ge=1, le=64)
    max_digits: int = Field(20, ge=1, le=64)
    pattern: str | None = None
    check: Literal["none", "luhn"] = "none"
    mask: bool = Field(True, description="record '*' per digit in the IVR path")
    timeout: float = Field(6.0, gt=0, le=60)
    next: str
    on_failure: str

    @field_validator("variable")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not IDENT.fullmatch(v):
            raise ValueError(f"variable {v!r} is not an identifier")
        return v

    @field_validator("channel_variable")
    @classmethod
    def _chan(cls, v: str | None) -> str | None:
        if v is not None and not CHANNEL_VAR.fullmatch(v):
            raise ValueError(f"channel_variable {v!r} is not a channel variable name")
        return v

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"pattern {v!r} is not a regular expression: {exc}") from None
        return v

    def targets(self) -> dict[str, str]:
        return {"next": self.next, "on_failure": self.on_failure}


class LanguageNode(_Input):
    type: Literal["language"]
    choices: dict[str, str] = Field(min_length=1, description="digit -> language")
    skip_if_known: bool = True
    next: str

    check_choices = field_validator("choices")(_dtmf_keys)

    def targets(self) -> dict[str, str]:
        return {"next": self.next}


class LookupNode(_Node):
    type: Literal["lookup"]
    by: Literal["caller_id", "account"]
    account_variable: str | None = None
    found: str
    not_found: str

    def targets(self) -> dict[str, str]:
        return {"found": self.found, "not_found": self.not_found}


class HoursNode(_Node):
    type: Literal["hours"]
    calendar: str
    open: str
    closed: str
    holiday: str | None = None

    def targets(self) -> dict[str, str]:
        out = {"open": self.open, "closed": self.closed}
        if self.holiday:
            out["holiday"] = self.holiday
        return out


class SetNode(_Node):
    type: Literal["set"]
    variables: dict[str, str] = Field(min_length=1)
    next: str

    @field_validator("variables")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        for k in v:
            if not CHANNEL_VAR.fullmatch(k):
                raise ValueError(f"{k!r} is not a channel variable name")
        return v

    def targets(self) -> dict[str, str]:
        return {"next": self.next}


class QueueNode(_Node):
    type: Literal["queue"]
    queue: str
    #: use the line's own default queue (the dialplan's CCD_LINE_QUEUE of the DID called) when
    #: it names a queue of the caller's tenant; ``queue`` otherwise
    line_queue: bool = False
    priority: int = Field(0, ge=0, le=1000)
    vip_priority: int | None = Field(None, ge=0, le=1000)
    prompt: list[str] = []

    prompt_list = field_validator("prompt", mode="before")(_as_list)

    check_queue = field_validator("queue")(_queue_name)

    def prompt_names(self) -> list[str]:
        return list(self.prompt)


class TransferNode(_Node):
    type: Literal["transfer"]
    target: str | None = None
    target_variable: str | None = None
    prompt: list[str] = []
    on_denied: str | None = None

    prompt_list = field_validator("prompt", mode="before")(_as_list)

    def targets(self) -> dict[str, str]:
        return {"on_denied": self.on_denied} if self.on_denied else {}

    def prompt_names(self) -> list[str]:
        return list(self.prompt)


class VoicemailNode(_Node):
    type: Literal["voicemail"]
    mailbox: str
    prompt: list[str] = []
    next: str | None = None
    #: where the caller goes when VoiceMail() fails (no such mailbox, disk full ...)
    on_failure: str | None = None

    prompt_list = field_validator("prompt", mode="before")(_as_list)

    @field_validator("mailbox")
    @classmethod
    def _mailbox(cls, v: str) -> str:
        if not MAILBOX.fullmatch(v):
            raise ValueError(f"mailbox {v!r} is not box[@context]")
        return v

    def targets(self) -> dict[str, str]:
        out = {"next": self.next} if self.next else {}
        if self.on_failure:
            out["on_failure"] = self.on_failure
        return out

    def prompt_names(self) -> list[str]:
        return list(self.prompt)


class CallbackNode(_Node):
    type: Literal["callback"]
    queue: str
    number_variable: str | None = None
    prompt: list[str] = []
    next: str
    on_failure: str | None = None

    prompt_list = field_validator("prompt", mode="before")(_as_list)
    check_queue = field_validator("queue")(_queue_name)

    def targets(self) -> dict[str, str]:
        out = {"next": self.next}
        if self.on_failure:
            out["on_failure"] = self.on_failure
        return out

    def prompt_names(self) -> list[str]:
        return list(self.prompt)


class HangupNode(_Node):
    type: Literal["hangup"]
    prompt: list[str] = []

    prompt_list = field_validator("prompt", mode="before")(_as_list)

    def prompt_names(self) -> list[str]:
        return list(self.prompt)


Node = Annotated[
    PromptNode | MenuNode | CollectNode | LanguageNode | LookupNode | HoursNode | SetNode
    | QueueNode | TransferNode | VoicemailNode | CallbackNode | HangupNode,
    Field(discriminator="type"),
]


class CalendarSpec(_Model):
    """``[calendars.<name>]``: weekly hours, holidays and special days."""

    timezone: str | None = Field(None, description="default: the tenant's time zone")
    mon: list[str] = []
    tue: list[str] = []
    wed: list[str] = []
    thu: list[str] = []
    fri: list[str] = []
    sat: list[str] = []
    sun: list[str] = []
    holidays: list[date] = []
    special: dict[date, list[str]] = {}

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            zone(v)
        return v

    def to_calendar(self, default_timezone: str = "UTC") -> Calendar:
        hours = {d: getattr(self, d) for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
        return build(self.timezone or default_timezone, hours, self.holidays, self.special)


class FlowHeader(_Model):
    """``[flow]``."""

    name: str | None = None
    start: str
    languages: list[str] = Field(min_length=1)
    default_language: str
    channel_languages: dict[str, str] = Field(
        default_factory=dict, description="flow language -> Asterisk channel language")
    fallback_queue: str = "support"
    transfer_context: str = "ccd-transfer"
    allowed_transfers: list[str] = []
    max_steps: int = Field(100, ge=1, le=10000)

    @field_validator("allowed_transfers")
    @classmethod
    def _exts(cls, v: list[str]) -> list[str]:
        for e in v:
            if not EXTENSION.fullmatch(e):
                raise ValueError(f"transfer target {e!r} is not an extension")
        return v


class FlowFile(_Model):
    """The whole TOML document."""

    flow: FlowHeader
    prompts: dict[str, dict[str, str]]
    calendars: dict[str, CalendarSpec] = {}
    nodes: dict[str, Node] = Field(min_length=1)


class Flow:
    """A validated flow, ready for the engine."""

    def __init__(self, doc: FlowFile, name: str, source: str) -> None:
        self.doc = doc
        self.name = name
        self.source = source
        self.header = doc.flow
        self.nodes: dict[str, Any] = dict(doc.nodes)
        self.calendars = doc.calendars
        self.allowed_transfers = frozenset(doc.flow.allowed_transfers)

    @property
    def start(self) -> str:
        return self.header.start

    def sound(self, prompt: str, language: str) -> str:
        """The sound file of ``prompt`` in ``language`` (the default language if missing)."""
        table = self.doc.prompts.get(language) or self.doc.prompts[self.header.default_language]
        return table.get(prompt) or self.doc.prompts[self.header.default_language][prompt]

    def channel_language(self, language: str) -> str:
        return self.header.channel_languages.get(language, language.split("-")[0].lower())


def _problems(doc: FlowFile) -> list[str]:
    """Graph and cross-reference checks pydantic cannot do; messages name the node."""
    out: list[str] = []
    h = doc.flow
    nodes = doc.nodes
    if h.start not in nodes:
        out.append(f"[flow] start: unknown node {h.start!r}")
    if h.default_language not in h.languages:
        out.append(f"[flow] default_language {h.default_language!r} is not in languages")
    for lang in h.languages:
        if lang not in doc.prompts:
            out.append(f"[prompts] no prompt set for language {lang!r}")
    if not QUEUE_NAME.fullmatch(h.fallback_queue):
        out.append(f"[flow] fallback_queue {h.fallback_queue!r} is not a queue name")
    collected = {n.variable for n in nodes.values() if isinstance(n, CollectNode)}
    for nid, node in nodes.items():
        where = f"node {nid!r}"
        for label, target in node.targets().items():
            if target not in nodes:
                out.append(f"{where}: {label} goes to unknown node {target!r}")
        for p in node.prompt_names():
            for lang in h.languages:
                if p not in doc.prompts.get(lang, {}):
                    out.append(f"{where}: prompt {p!r} has no sound in language {lang!r}")
        if isinstance(node, LanguageNode):
            for k, lang in node.choices.items():
                if lang not in h.languages:
                    out.append(f"{where}: choice '{k}' selects unknown language {lang!r}")
        elif isinstance(node, HoursNode):
            if node.calendar not in doc.calendars:
                out.append(f"{where}: unknown calendar {node.calendar!r}")
        elif isinstance(node, LookupNode):
            if node.by == "account":
                if not node.account_variable:
                    out.append(f"{where}: by = 'account' needs account_variable")
                elif node.account_variable not in collected:
                    out.append(f"{where}: account_variable {node.account_variable!r} is not "
                               "collected by any collect node")
        elif isinstance(node, CollectNode):
            if node.min_digits > node.max_digits:
                out.append(f"{where}: min_digits is larger than max_digits")
        elif isinstance(node, TransferNode):
            if (node.target is None) == (node.target_variable is None):
                out.append(f"{where}: give exactly one of target and target_variable")
            if node.target is not None and node.target not in h.allowed_transfers:
                out.append(f"{where}: target {node.target!r} is not in [flow] "
                           "allowed_transfers")
            if node.target_variable is not None:
                if node.target_variable not in collected:
                    out.append(f"{where}: target_variable {node.target_variable!r} is not "
                               "collected by any collect node")
                if not node.on_denied:
                    out.append(f"{where}: target_variable needs on_denied (where callers "
                               "go when the number is not allowed)")
        elif isinstance(node, CallbackNode):
            if node.number_variable is not None and node.number_variable not in collected:
                out.append(f"{where}: number_variable {node.number_variable!r} is not "
                           "collected by any collect node")
        elif isinstance(node, SetNode):
            for var, value in node.variables.items():
                for name in TEMPLATE_FIELD.findall(value):
                    if name not in TEMPLATE_BUILTINS and name not in collected:
                        out.append(f"{where}: variable {var}: unknown field {{{name}}}")
    for name, cal in doc.calendars.items():
        try:
            cal.to_calendar()
        except ValueError as exc:
            out.append(f"[calendars.{name}]: {exc}")
    return out


def _loc(loc: tuple[Any, ...]) -> str:
    """Readable location of a pydantic error; node errors name the node."""
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] == "nodes":
        rest = parts[2:]
        if rest and rest[0] in {"prompt", "menu", "collect", "language", "lookup", "hours",
                                "set", "queue", "transfer", "voicemail", "callback", "hangup"}:
            rest = rest[1:]
        return f"node {parts[1]!r}" + (f": {'.'.join(rest)}" if rest else "")
    if parts and parts[0] == "flow":
        return "[flow]" + (f" {'.'.join(parts[1:])}" if len(parts) > 1 else "")
    if parts and parts[0] in ("calendars", "prompts"):
        head = f"[{parts[0]}.{parts[1]}]" if len(parts) > 1 else f"[{parts[0]}]"
        return head + (f" {'.'.join(parts[2:])}" if len(parts) > 2 else "")
    return ".".join(parts) or "(top level)"


def parse_flow(text: str, source: str, name: str | None = None) -> Flow:
    """Validate one flow document; FlowError lists every problem with its node."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FlowError(f"{source}: not valid TOML: {exc}") from None
    try:
        doc = FlowFile.model_validate(data)
    except ValidationError as exc:
        msgs = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "union_tag_invalid":
                msg = f"unknown node type ({msg})"
            msgs.append(f"{_loc(err['loc'])}: {msg}")
        raise FlowError(f"{source}: " + "; ".join(msgs)) from None
    problems = _problems(doc)
    if problems:
        raise FlowError(f"{source}: " + "; ".join(problems))
    return Flow(doc, doc.flow.name or name or Path(source).stem, source)


def load_flow(path: str | Path) -> Flow:
    """Load and validate one ``.toml`` flow file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise FlowError(f"{p}: cannot read: {exc}") from None
    return parse_flow(text, str(p), p.stem)


def load_flows(directory: str | Path) -> dict[str, Flow]:
    """Every ``*.toml`` flow in ``directory`` by name; FlowError for the first bad file."""
    d = Path(directory)
    if not d.is_dir():
        raise FlowError(f"{d}: flows directory does not exist")
    flows: dict[str, Flow] = {}
    for p in sorted(d.glob("*.toml")):
        flow = load_flow(p)
        if flow.name in flows:
            raise FlowError(f"{p}: flow name {flow.name!r} is also used by "
                            f"{flows[flow.name].source}")
        flows[flow.name] = flow
    if not flows:
        raise FlowError(f"{d}: no *.toml flow files")
    return flows


#: the flows shipped with ccd (support in zh-CN and en)
BUILTIN_FLOWS = Path(__file__).with_name("flows")
