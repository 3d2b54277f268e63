"""The few Asterisk CLI commands ``Action: Command`` can run on the simulator."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ccd.sim.modules import DESCRIPTIONS

if TYPE_CHECKING:
    from ccd.sim.ami.server import AmiServer
    from ccd.sim.queues import Queue

STATUS_TEXT = {
    0: "Unknown",
    1: "Not in use",
    2: "In use",
    3: "Busy",
    4: "Invalid",
    5: "Unavailable",
    6: "Ringing",
    7: "Ring+Inuse",
    8: "On Hold",
}

#: set by the simulator: "restart" / "stop" -> coroutine doing it
SystemHook = Callable[[], Awaitable[None]]


def _ago(now: float, then: float) -> str:
    return f"{int(now - then)} secs ago"


def queue_show(server: AmiServer, q: Queue) -> list[str]:
    now = server.engine.clock.now()
    perf, perf2 = q.sl_perf()
    maxlen = "unlimited" if not q.config.maxlen else str(q.config.maxlen)
    lines = [
        f"{q.name} has {len(q.callers)} calls (max {maxlen}) in '{q.config.strategy}' "
        f"strategy ({q.holdtime}s holdtime, {q.talktime}s talktime), W:{q.config.weight}, "
        f"C:{q.completed}, A:{q.abandoned}, SL:{perf}%, SL2:{perf2}% within "
        f"{q.config.servicelevel}s"
    ]
    members = q.ordered()
    if members:
        lines.append("   Members: ")
        for m in members:
            parts = [f"      {m.name} ({m.interface})"]
            if m.dynamic:
                parts.append("(dynamic)")
            parts.append("(ringinuse enabled)" if m.ringinuse else "(ringinuse disabled)")
            if m.paused:
                parts.append(f"(paused:{m.paused_reason})" if m.paused_reason else "(paused)")
            if m.in_call:
                parts.append("(in call)")
            parts.append(f"({STATUS_TEXT.get(m.status, 'Unknown')})")
            calls = (
                f"has taken {m.calls} calls (last was {_ago(now, m.lastcall)})"
                if m.calls
                else "has taken no calls yet"
            )
            parts.append(calls)
            parts.append(f"(login was {_ago(now, m.logintime)})")
            lines.append(" ".join(parts))
    else:
        lines.append("   No Members")
    if q.callers:
        lines.append("   Callers: ")
        for e in q.callers:
            lines.append(f"      {e.pos}. {e.channel.name} (wait: {_hms(now - e.start)}, prio: 0)")
    else:
        lines.append("   No Callers")
    lines.append("")
    return lines


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}"


async def run_command(server: AmiServer, cmd: str) -> tuple[bool, list[str]]:
    """(success, output lines) of one CLI command."""
    words = cmd.split()
    low = [w.lower() for w in words]
    eng = server.engine
    if low[:3] == ["core", "show", "version"]:
        return True, [f"Asterisk {eng.settings.version} built by ccd-sim (simulated PBX)"]
    if low[:2] == ["queue", "show"]:
        queues = eng.queues.ordered()
        if len(words) > 2:
            q = eng.queues.get(words[2])
            if q is None:
                return True, [f"No such queue: {words[2]}.", ""]
            queues = [q]
        out: list[str] = []
        for q in queues:
            out.extend(queue_show(server, q))
        return True, [*out, ""]
    if low[:3] == ["core", "show", "channels"]:
        chans = sorted(eng.channels.values(), key=lambda c: c.name)
        if "concise" in low:
            return True, [
                f"{c.name}!{c.context}!{c.exten}!{c.priority}!{c.state_desc}!"
                f"{c.appl}!{c.data}!{c.caller_num}!!!3!"
                f"{int(eng.clock.now() - c.created)}!"
                f"{c.bridge.uniqueid if c.bridge else '(None)'}!{c.uniqueid}"
                for c in chans
            ]
        lines = ["Channel              Location             State   Application(Data)"]
        for c in chans:
            loc = f"{c.exten}@{c.context}:{c.priority}"
            lines.append(f"{c.name[:20]:<20} {loc[:20]:<20} {c.state_desc:<7} {c.appl}({c.data})")
        calls = len({c.linkedid for c in chans})
        lines += [
            f"{len(chans)} active channels",
            f"{calls} active calls",
            f"{eng.processed_calls} calls processed",
        ]
        return True, lines
    if low[:3] == ["core", "show", "uptime"]:
        return True, [
            f"System uptime: {eng.uptime()} seconds",
            f"Last reload: {int(eng.clock.now() - eng.reload_time)} seconds",
        ]
    if low[:3] == ["manager", "show", "connected"]:
        lines = [
            "  Username         IP Address                                               "
            "Start       Elapsed     FileDes   HttpCnt   ReadPerms   WritePerms"
        ]
        for s in server.sessions:
            if s.user is not None:
                lines.append(
                    f"  {s.user.name:<16} {s.peer[0]:<56} {int(s.started):<11} "
                    f"{int(time.time() - s.started):<11} -1        0         -   -"
                )
        lines.append(f"{len(lines) - 1} users connected.")
        return True, lines
    if low[:2] in (["module", "load"], ["module", "unload"]) and len(words) == 3:
        name = words[2]
        if low[1] == "load":
            done = eng.modules.load(name)
            return done, [f"Loaded {name}" if done else f"Unable to load module {name}"]
        done = eng.modules.unload(name)
        return done, [f"Unloaded {name}" if done else f"Unable to unload resource {name}"]
    if low[:3] == ["module", "show", "like"] and len(words) == 4:
        found = sorted(m for m in eng.modules.loaded if words[3].lower() in m)
        lines = [f"{'Module':<30} {'Description':<40} {'Use Count':<10} {'Status':<11} "
                 "Support Level"]
        lines += [f"{m + '.so':<30} {DESCRIPTIONS.get(m, m)[:40]:<40} {0:<10} {'Running':<11} "
                  "core" for m in found]
        return True, [*lines, f"{len(found)} modules loaded"]
    if low[:3] == ["core", "show", "application"] and len(words) == 4:
        from ccd.sim.apps import app_exists

        if not app_exists(eng, words[3]):
            return False, ["Your application(s) is (are) not registered"]
        return True, [f"  -= Info about Application '{words[3]}' =- "]
    if low[:2] in (["core", "restart"], ["core", "stop"]) and len(low) > 2:
        hook = server.system_hooks.get(low[1])
        if hook is None:
            return False, ["Not supported by this simulator instance."]
        server.run_hook(hook)
        return True, [""]
    return False, [
        f"No such command '{cmd}' (type 'core show help {cmd}' for other possible commands)"
    ]
