"""The PBX's configuration, read from the same files a real Asterisk loads.

:func:`load_pbx_config` reads ``manager.conf``, ``pjsip.conf``, ``extensions.conf``,
``queues.conf``, ``features.conf`` and ``musiconhold.conf`` from one directory (ccd's
``asterisk-conf/`` or the captures' ``config/``), so the simulator and a real Asterisk cannot
drift apart. :func:`check_references` lists every context, queue, endpoint and sound class a
file refers to that no file defines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ccd.sim.conf import ConfError, ConfFile, Section, parse_file
from ccd.sim.dialplan import Dialplan, load_dialplan, split_args

TRUE_WORDS = frozenset({"yes", "true", "y", "t", "1", "on"})


def is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in TRUE_WORDS


@dataclass(slots=True)
class ManagerUser:
    name: str
    secret: str
    read: frozenset[str]
    write: frozenset[str]
    permit: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ManagerConfig:
    enabled: bool = True
    port: int = 5038
    bindaddr: str = "127.0.0.1"
    timestampevents: bool = False
    users: dict[str, ManagerUser] = field(default_factory=dict)


@dataclass(slots=True)
class Endpoint:
    """A PJSIP endpoint (agent phone, customer, trunk)."""

    name: str
    context: str
    caller_name: str = ""
    caller_num: str = ""
    language: str = "en"
    aors: list[str] = field(default_factory=list)
    auth: str = ""
    password: str = ""
    max_contacts: int = 1
    identify_match: list[str] = field(default_factory=list)


@dataclass(slots=True)
class MemberConfig:
    interface: str
    penalty: int = 0
    name: str = ""
    state_interface: str = ""
    ringinuse: bool | None = None


@dataclass(slots=True)
class QueueConfig:
    name: str
    strategy: str = "ringall"
    timeout: int = 15
    retry: int = 5
    wrapuptime: int = 0
    maxlen: int = 0
    joinempty: str = "yes"
    leavewhenempty: str = "no"
    ringinuse: bool = True
    musicclass: str = "default"
    servicelevel: int = 0
    weight: int = 0
    autofill: bool = True
    setinterfacevar: bool = False
    setqueueentryvar: bool = False
    setqueuevar: bool = False
    timeoutrestart: bool = False
    members: list[MemberConfig] = field(default_factory=list)


@dataclass(slots=True)
class FeaturesConfig:
    blindxfer: str = "#"
    atxfer: str = ""
    disconnect: str = "*"
    atxfer_abort: str = "*1"
    atxfer_complete: str = "*2"
    atxfer_threeway: str = "*3"
    transferdigittimeout: float = 3.0
    atxfernoanswertimeout: float = 15.0
    #: played to the transferer when an attended transfer starts; if it is missing the
    #: transfer does not start ("Unable to acquire target extension")
    transferannouncesound: str = "pbx-transfer"


@dataclass(slots=True)
class PbxConfig:
    """Everything the simulator needs from the Asterisk configuration directory."""

    directory: str
    manager: ManagerConfig
    endpoints: dict[str, Endpoint]
    queues: dict[str, QueueConfig]
    dialplan: Dialplan
    features: FeaturesConfig
    moh_classes: list[str]
    queue_general: dict[str, str] = field(default_factory=dict)
    files: dict[str, ConfFile] = field(default_factory=dict)
    #: voicemail.conf mailboxes as "box@context"
    mailboxes: set[str] = field(default_factory=set)


QUEUE_STRATEGIES = frozenset(
    {
        "ringall",
        "leastrecent",
        "fewestcalls",
        "random",
        "rrmemory",
        "linear",
        "wrandom",
        "rrordered",
    }
)


def _manager(conf: ConfFile) -> ManagerConfig:
    m = ManagerConfig()
    general = conf.section("general")
    if general is not None:
        m.enabled = is_true(general.get("enabled", "no"))
        m.port = int(general.get("port", "5038") or 5038)
        m.bindaddr = general.get("bindaddr", "0.0.0.0") or "0.0.0.0"
        m.timestampevents = is_true(general.get("timestampevents", "no"))
    for s in conf.real():
        if s.name == "general":
            continue
        secret = s.get("secret")
        if secret is None:
            continue
        m.users[s.name] = ManagerUser(
            s.name,
            secret,
            _classes(s, "read"),
            _classes(s, "write"),
            [p for p in s.getall("permit")],
        )
    return m


def _classes(s: Section, key: str) -> frozenset[str]:
    out: set[str] = set()
    for v in s.getall(key):
        out.update(x.strip().lower() for x in v.split(",") if x.strip())
    return frozenset(out)


_CALLERID = re.compile(r'^\s*(?:"([^"]*)"|([^<]*?))\s*<([^>]*)>\s*$')


def parse_callerid(value: str) -> tuple[str, str]:
    """``"Agent Alice" <1001>`` -> (``Agent Alice``, ``1001``)."""
    m = _CALLERID.match(value or "")
    if not m:
        v = (value or "").strip()
        return ("", v) if v.isdigit() else (v, "")
    name = m.group(1) if m.group(1) is not None else (m.group(2) or "").strip()
    return name, m.group(3).strip()


def _pjsip(conf: ConfFile) -> dict[str, Endpoint]:
    endpoints: dict[str, Endpoint] = {}
    auths: dict[str, str] = {}
    aors: dict[str, int] = {}
    identifies: list[tuple[str, list[str]]] = []
    for s in conf.real():
        kind = s.get("type")
        if kind == "endpoint":
            name, num = parse_callerid(s.get("callerid", "") or "")
            endpoints[s.name] = Endpoint(
                s.name,
                s.get("context", "default") or "default",
                name,
                num,
                s.get("language", "en") or "en",
                [a.strip() for a in (s.get("aors", "") or "").split(",") if a.strip()],
                s.get("auth", "") or "",
            )
        elif kind == "auth":
            auths[s.name] = s.get("password", "") or ""
        elif kind == "aor":
            aors[s.name] = int(s.get("max_contacts", "0") or 0)
        elif kind == "identify":
            identifies.append(
                (
                    s.get("endpoint", "") or "",
                    [m.strip() for v in s.getall("match") for m in v.split(",")],
                )
            )
    for ep in endpoints.values():
        ep.password = auths.get(ep.auth, "")
        if ep.aors:
            ep.max_contacts = aors.get(ep.aors[0], 1)
    for name, matches in identifies:
        if name in endpoints:
            endpoints[name].identify_match.extend(matches)
    return endpoints


def _parse_member(spec: str) -> MemberConfig:
    parts = [p.strip() for p in split_args(spec)]
    m = MemberConfig(parts[0])
    if len(parts) > 1 and parts[1]:
        m.penalty = int(parts[1])
    if len(parts) > 2:
        m.name = parts[2]
    if len(parts) > 3:
        m.state_interface = parts[3]
    if len(parts) > 4 and parts[4]:
        m.ringinuse = is_true(parts[4])
    m.name = m.name or m.interface
    m.state_interface = m.state_interface or m.interface
    return m


def _queues(conf: ConfFile) -> tuple[dict[str, QueueConfig], dict[str, str]]:
    queues: dict[str, QueueConfig] = {}
    general: dict[str, str] = {}
    for s in conf.real():
        if s.name == "general":
            general = dict(s.items)
            continue
        q = QueueConfig(s.name)
        for key, value in s.items:
            k = key.lower()
            if k == "member":
                q.members.append(_parse_member(value))
            elif k == "strategy":
                if value.lower() not in QUEUE_STRATEGIES:
                    raise ConfError(f"{s.file}: queue {s.name}: unknown strategy {value!r}")
                q.strategy = value.lower()
            elif k in ("timeout", "retry", "wrapuptime", "maxlen", "servicelevel", "weight"):
                setattr(q, k, int(value or 0))
            elif k in ("joinempty", "leavewhenempty"):
                setattr(q, k, value.lower())
            elif k in (
                "ringinuse",
                "setinterfacevar",
                "setqueueentryvar",
                "setqueuevar",
                "timeoutrestart",
                "autofill",
            ):
                setattr(q, k, is_true(value))
            elif k == "musicclass" or k == "musiconhold":
                q.musicclass = value
        if "autofill" not in {k.lower() for k, _ in s.items}:
            q.autofill = is_true(general.get("autofill", "yes"))
        queues[s.name] = q
    return queues, general


def _features(conf: ConfFile | None) -> FeaturesConfig:
    f = FeaturesConfig()
    if conf is None:
        return f
    g = conf.section("general")
    if g is not None:
        f.atxfer_abort = g.get("atxferabort", f.atxfer_abort) or f.atxfer_abort
        f.atxfer_complete = g.get("atxfercomplete", f.atxfer_complete) or f.atxfer_complete
        f.atxfer_threeway = g.get("atxferthreeway", f.atxfer_threeway) or f.atxfer_threeway
        f.transferdigittimeout = float(g.get("transferdigittimeout", "3") or 3)
        f.atxfernoanswertimeout = float(g.get("atxfernoanswertimeout", "15") or 15)
        f.transferannouncesound = (g.get("transferannouncesound", f.transferannouncesound)
                                   or f.transferannouncesound)
    fm = conf.section("featuremap")
    if fm is not None:
        f.blindxfer = fm.get("blindxfer", f.blindxfer) or ""
        f.atxfer = fm.get("atxfer", f.atxfer) or ""
        f.disconnect = fm.get("disconnect", f.disconnect) or ""
    return f


def load_pbx_config(directory: str | Path) -> PbxConfig:
    """Read the Asterisk configuration directory the simulator shares with Asterisk."""
    d = Path(directory)
    if not d.is_dir():
        raise ConfError(f"{d}: not a directory")
    files: dict[str, ConfFile] = {}
    for name in ("manager.conf", "pjsip.conf", "extensions.conf", "queues.conf"):
        files[name] = parse_file(d / name)
    for name in ("features.conf", "musiconhold.conf", "modules.conf", "amd.conf",
                 "voicemail.conf"):
        if (d / name).exists():
            files[name] = parse_file(d / name)
    queues, general = _queues(files["queues.conf"])
    moh = ["default"]
    if "musiconhold.conf" in files:
        moh = [s.name for s in files["musiconhold.conf"].real() if s.name != "general"] or moh
    return PbxConfig(
        directory=str(d),
        manager=_manager(files["manager.conf"]),
        endpoints=_pjsip(files["pjsip.conf"]),
        queues=queues,
        dialplan=load_dialplan(files["extensions.conf"]),
        features=_features(files.get("features.conf")),
        moh_classes=moh,
        queue_general=general,
        files=files,
        mailboxes=_mailboxes(files.get("voicemail.conf")),
    )


def _mailboxes(conf: ConfFile | None) -> set[str]:
    """``box@context`` of every mailbox in voicemail.conf (other sections are settings)."""
    if conf is None:
        return set()
    return {f"{key}@{sec.name}" for sec in conf.real()
            if sec.name not in ("general", "zonemessages") for key, _ in sec.items}


_GOTO_APPS = frozenset({"goto", "gotoif", "gosub", "gosubif", "execif"})
_LITERAL = re.compile(r"^[\w\-+*#]+$")


def check_references(cfg: PbxConfig) -> list[str]:
    """Everything a file refers to that is not defined anywhere (empty list = consistent)."""
    problems: list[str] = []
    plan = cfg.dialplan
    for ep in cfg.endpoints.values():
        if ep.context not in plan.contexts:
            problems.append(
                f"pjsip.conf: endpoint {ep.name}: context {ep.context} not in extensions.conf"
            )
    for q in cfg.queues.values():
        if q.musicclass not in cfg.moh_classes:
            problems.append(
                f"queues.conf: {q.name}: musicclass {q.musicclass} not in musiconhold.conf"
            )
        for m in q.members:
            for iface in (m.interface, m.state_interface):
                problem = _check_interface(cfg, iface)
                if problem:
                    problems.append(f"queues.conf: {q.name}: member {iface}: {problem}")
    for ctx in plan.contexts.values():
        for inc in ctx.includes:
            if inc not in plan.contexts:
                problems.append(f"extensions.conf: [{ctx.name}] includes missing context {inc}")
        for ext in ctx.extensions.values():
            for step in ext.steps.values():
                where = f"extensions.conf: [{ctx.name}] {ext.name},{step.priority}"
                problems.extend(
                    f"{where}: {p}"
                    for p in _check_step(cfg, ctx.name, ext.name, step.app, step.data)
                )
    return problems


def _check_interface(cfg: PbxConfig, iface: str) -> str:
    tech, _, res = iface.partition("/")
    if tech.upper() == "PJSIP":
        if res not in cfg.endpoints:
            return "no such PJSIP endpoint"
    elif tech.upper() == "LOCAL":
        _exten, _, ctx = res.partition("@")
        ctx = ctx.split("/", 1)[0]
        if ctx not in cfg.dialplan.contexts:
            return f"no such context {ctx}"
    else:
        return f"unknown technology {tech}"
    return ""


def _check_step(cfg: PbxConfig, context: str, exten: str, app: str, data: str) -> list[str]:
    out: list[str] = []
    a = app.lower()
    args = [x.strip() for x in split_args(data)]
    if (
        a in ("queue", "addqueuemember", "removequeuemember")
        and args
        and _LITERAL.match(args[0])
        and args[0] not in cfg.queues
    ):
        out.append(f"{app}: no such queue {args[0]}")
    if (
        a in ("pausequeuemember", "unpausequeuemember")
        and args
        and args[0]
        and _LITERAL.match(args[0])
        and args[0] not in cfg.queues
    ):
        out.append(f"{app}: no such queue {args[0]}")
    if a == "dial" and args:
        for target in args[0].split("&"):
            if "$" in target:
                continue
            problem = _check_interface(cfg, target)
            if problem:
                out.append(f"Dial: {target}: {problem}")
    if a in _GOTO_APPS:
        targets: list[str] = []
        if a in ("gotoif", "gosubif"):
            _, _, branches = data.partition("?")
            targets = [t for t in branches.split(":") if t]
        elif a in ("goto", "gosub"):
            targets = [data]
        for t in targets:
            problem = _check_goto(cfg, context, exten, t)
            if problem:
                out.append(f"{app}: {problem}")
    if a == "agi" and args and not args[0].startswith(("agi://", "hagi://")):
        out.append("AGI: only FastAGI (agi://) is used by ccd")
    return out


def _check_goto(cfg: PbxConfig, context: str, exten: str, target: str) -> str:
    target = target.split("(", 1)[0].strip()
    if "$" in target or not target:
        return ""
    parts = [p.strip() for p in target.split(",")]
    if len(parts) == 1:
        ctx, ext, prio = context, exten, parts[0]
    elif len(parts) == 2:
        ctx, ext, prio = context, parts[0], parts[1]
    else:
        ctx, ext, prio = parts[0], parts[1], parts[2]
    if ctx not in cfg.dialplan.contexts:
        return f"goto target context {ctx} does not exist"
    if ext.startswith("_") or "$" in ext:
        return ""
    if cfg.dialplan.find(ctx, ext) is None:
        return f"goto target {ext}@{ctx} does not exist"
    if cfg.dialplan.resolve_priority(ctx, ext, prio) is None:
        return f"goto target {ext},{prio}@{ctx}: no such priority or label"
    return ""
