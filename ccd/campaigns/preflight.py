"""Can Asterisk run a campaign's dialplan? Checked before a campaign dials, again after
every AMI (re)connect - an Asterisk restart is one -, every :data:`RECHECK` seconds and
after a call the PBX dropped; a campaign whose check fails does not dial.

Why: with AMD on and ``app_amd`` not loaded, Asterisk answers the contact, reaches
``AMD()``, logs ``No application 'AMD'`` and hangs up 8 ms later (real capture F7). Every
contact dialled so is a person hung up on in silence.

How, with what ccd's AMI user may do (``write = system,call,agent,originate,reporting``;
no ``command`` class, so no ``core show application``) - checked against a real
Asterisk 22.10.1:

* ``ShowDialPlan`` with ``Context`` (class reporting) lists the priorities the running
  Asterisk has for the campaign's context, and its includes; ``Did not find context X``
  when it has none;
* each application there is mapped to the module that registers it (:data:`APP_MODULES`)
  and asked with ``ModuleCheck`` (class system): ``Response: Success`` when loaded,
  ``Response: Error`` / ``Message: Module not loaded`` when not (also after
  ``module unload app_amd.so``); ``app_amd`` and ``app_amd.so`` are both accepted;
* applications of the PBX core (NoOp, Set, GotoIf, Answer, Hangup ...) need no module;
  ``AMD`` is needed only when the campaign has AMD on (the dialplan skips it otherwise).

:func:`needed_apps` is pure; :class:`DialplanCheck` asks Asterisk and caches the verdicts
per connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ccd.ami.client import AmiError

log = logging.getLogger("ccd.campaigns")

#: seconds a verdict is trusted on one AMI connection (an operator may unload a module)
RECHECK = 60.0
#: a check that could not finish (timeout) is retried this soon
RETRY = 5.0
MAX_INCLUDES = 8

#: applications of the PBX core: pbx_builtins.c's builtins[] and pbx_variables.c
CORE_APPS = frozenset(a.lower() for a in (
    "Answer", "BackGround", "Busy", "Congestion", "ExecIfTime", "Goto", "GotoIf",
    "GotoIfTime", "Hangup", "Incomplete", "NoOp", "Proceeding", "Progress", "RaiseException",
    "Ringing", "SayAlpha", "SayAlphaCase", "SayDigits", "SayMoney", "SayNumber", "SayOrdinal",
    "SayPhonetic", "Wait", "WaitDigit", "WaitExten", "Set", "MSet"))

#: application -> the module that registers it (Asterisk 22)
APP_MODULES = {
    "amd": "app_amd", "queue": "app_queue", "addqueuemember": "app_queue",
    "removequeuemember": "app_queue", "pausequeuemember": "app_queue",
    "unpausequeuemember": "app_queue", "queuelog": "app_queue", "dial": "app_dial",
    "playback": "app_playback", "mixmonitor": "app_mixmonitor",
    "stopmixmonitor": "app_mixmonitor", "chanspy": "app_chanspy", "read": "app_read",
    "echo": "app_echo", "verbose": "app_verbose", "log": "app_verbose", "exec": "app_exec",
    "tryexec": "app_exec", "execif": "app_exec", "gosub": "app_stack", "gosubif": "app_stack",
    "return": "app_stack", "senddtmf": "app_senddtmf", "userevent": "app_userevent",
    "originate": "app_originate", "transfer": "app_transfer", "voicemail": "app_voicemail",
    "voicemailmain": "app_voicemail", "audiosocket": "app_audiosocket", "agi": "res_agi",
    "eagi": "res_agi", "musiconhold": "res_musiconhold", "startmusiconhold": "res_musiconhold",
    "stopmusiconhold": "res_musiconhold", "record": "app_record",
    "waitforsilence": "app_waitforsilence", "saycountedadj": "app_saycounted",
    "saycountednoun": "app_saycounted",
}


def module_of(app: str) -> str | None:
    """The module registering ``app``: '' for the PBX core, None when ccd does not know."""
    low = app.strip().lower()
    if low in CORE_APPS:
        return ""
    return APP_MODULES.get(low)


def needed_apps(apps: Iterable[str], amd: bool) -> list[str]:
    """The applications a campaign needs from the ones its context runs (first spelling
    kept, in order); AMD only with AMD on."""
    out: dict[str, str] = {}
    for a in apps:
        a = a.strip()
        if not a or (a.lower() == "amd" and not amd):
            continue
        out.setdefault(a.lower(), a)
    return list(out.values())


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether Asterisk can run one campaign context now."""

    ok: bool
    context: str
    amd: bool
    problem: str = ""  # what is wrong, in a sentence ('' when ok)
    missing: tuple[str, ...] = ()  # "AMD (app_amd)"
    apps: tuple[str, ...] = ()  # the applications checked
    unchecked: tuple[str, ...] = ()  # applications whose module ccd does not know
    checked_at: float = 0.0
    retry_at: float = 0.0  # check again from then on (same connection)
    generation: int = -1  # the AMI connection it was made on

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "context": self.context, "amd": self.amd,
                "problem": self.problem, "missing": list(self.missing),
                "apps": list(self.apps),
                "unchecked": list(self.unchecked), "checked_at": self.checked_at}


@dataclass(slots=True)
class DialplanCheck:
    """Verdicts per (context, AMD), made over ccd's AMI link and kept while the link that
    made them is up (at most :data:`RECHECK` seconds)."""

    ami: Callable[[], Any]  # -> the AMI client (the daemon's, which reconnects)
    clock: Callable[[], float]
    recheck: float = RECHECK
    _verdicts: dict[tuple[str, bool], Verdict] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def invalidate(self) -> None:
        """Forget every verdict (after a dropped call, a reconnect)."""
        self._verdicts.clear()

    def cached(self, context: str, amd: bool) -> Verdict | None:
        return self._verdicts.get((context, amd))

    async def verdict(self, context: str, amd: bool) -> Verdict:
        """The (cached) verdict for a campaign context; asks Asterisk when it is stale."""
        ami = self.ami()
        gen = ami.stats.connects
        now = self.clock()
        v = self._verdicts.get((context, amd))
        if v is not None and v.generation == gen and now < v.retry_at:
            return v
        async with self._lock:
            v = self._verdicts.get((context, amd))
            if v is not None and v.generation == gen and now < v.retry_at:
                return v
            new = await self._check(ami, context, amd, gen)
            self._verdicts[(context, amd)] = new
        if v is None or (v.ok, v.problem) != (new.ok, new.problem):
            if new.ok:
                log.info("Asterisk can run campaign context %s%s (applications: %s)",
                         context, " with AMD" if amd else "", ", ".join(new.apps))
            else:
                log.error("campaigns using context %s%s cannot dial: %s", context,
                          " with AMD" if amd else "", new.problem)
        if new.unchecked and (v is None or v.unchecked != new.unchecked):
            log.warning("context %s runs applications ccd cannot check (module unknown): %s",
                        context, ", ".join(new.unchecked))
        return new

    async def _check(self, ami: Any, context: str, amd: bool, gen: int) -> Verdict:
        now = self.clock()

        def fail(problem: str, missing: tuple[str, ...] = (), retry: float = self.recheck
                 ) -> Verdict:
            return Verdict(False, context, amd, problem, missing, checked_at=now,
                           retry_at=now + retry, generation=gen)

        try:
            apps, problem = await self._apps(ami, context)
            if problem:
                return fail(problem)
            need = needed_apps(apps, amd)
            unchecked = tuple(a for a in need if module_of(a) is None)
            modules: dict[str, list[str]] = {}
            for a in need:
                mod = module_of(a)
                if mod:
                    modules.setdefault(mod, []).append(a)
            missing: list[str] = []
            for mod, users in modules.items():
                resp = await ami.action("ModuleCheck", {"Module": mod})
                if resp.ok:
                    continue
                if resp.message.lower() != "module not loaded":
                    return fail(f"cannot ask Asterisk whether {mod} is loaded (ModuleCheck: "
                                f"{resp.message or 'refused'}; ccd's AMI user needs write = "
                                "system)")
                missing += [f"{a} ({mod})" for a in users]
        except (AmiError, TimeoutError, OSError) as exc:
            return fail(f"could not check the dialplan ({type(exc).__name__}: {exc})",
                        retry=RETRY)
        if missing:
            what = ", ".join(missing)
            return fail(f"Asterisk lacks {what}: context {context} runs "
                        f"{'them' if len(missing) > 1 else 'it'} and its module is not loaded "
                        "(load it in modules.conf, or `module load` it)", tuple(missing))
        return Verdict(True, context, amd, apps=tuple(need), unchecked=unchecked,
                       checked_at=now, retry_at=now + self.recheck, generation=gen)

    async def _apps(self, ami: Any, context: str) -> tuple[list[str], str]:
        """Applications of ``context`` and of the contexts it includes (ShowDialPlan)."""
        apps: list[str] = []
        todo, seen = [context], set()
        has_s = False
        while todo and len(seen) < MAX_INCLUDES:
            ctx = todo.pop(0)
            if ctx in seen:
                continue
            seen.add(ctx)
            resp = await ami.action("ShowDialPlan", {"Context": ctx}, is_list=True,
                                    timeout=10.0)
            if not resp.ok:
                if resp.message.startswith("Did not find context"):
                    where = "" if ctx == context else f" (included by {context})"
                    return [], f"Asterisk has no dialplan context {ctx}{where}"
                return [], (f"cannot read context {ctx} from Asterisk (ShowDialPlan: "
                            f"{resp.message or 'refused'}; ccd's AMI user needs write = "
                            "reporting)")
            for ev in resp.events:
                if ev.get("IncludeContext"):
                    todo.append(ev["IncludeContext"])
                elif ev.get("Application"):
                    apps.append(ev["Application"])
                    exten = ev.get("Extension", "")
                    has_s = has_s or exten == "s" or exten.startswith("_")
        if not has_s:
            return [], f"context {context} has no extension s (the dialer calls s,1)"
        return apps, ""
