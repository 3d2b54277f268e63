"""Core applications: NoOp, Set, Answer, Hangup, Goto, Wait, Playback, Busy, SendDTMF ..."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ccd.sim import channel as C
from ccd.sim.apps import app
from ccd.sim.dialplan import evaluate, split_args
from ccd.sim.pbx import goto
from ccd.sim.pbxconf import parse_callerid

if TYPE_CHECKING:
    from ccd.sim.channel import Channel
    from ccd.sim.engine import Engine

log = logging.getLogger("ccd.sim")


async def pause(engine: Engine, ch: Channel, seconds: float) -> bool:
    """Wait simulated time; False if the channel hung up or was sent elsewhere meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + engine.clock.real(seconds)
    while True:
        if ch.hungup or ch.pending_goto is not None:
            return False
        remaining = deadline - loop.time()
        if remaining <= 0:
            return True
        ch.wake.clear()
        try:
            await asyncio.wait_for(ch.wake.wait(), remaining)
        except TimeoutError:
            return not (ch.hungup or ch.pending_goto is not None)


async def play(engine: Engine, ch: Channel, sound: str, interrupt: str = "") -> tuple[float, str]:
    """Play one sound: (seconds played, -1.0 if it does not exist; digit that stopped it)."""
    length = engine.settings.sound_length(sound, ch.language)
    if length is None:
        return -1.0, ""
    start = engine.clock.now()
    if not interrupt:
        await pause(engine, ch, length)
        return min(length, engine.clock.now() - start), ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + engine.clock.real(length)
    while not ch.hungup and ch.pending_goto is None:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        getter = asyncio.ensure_future(ch.dtmf.get())
        woke = asyncio.ensure_future(ch.wake.wait())
        done, _ = await asyncio.wait(
            {getter, woke}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
        )
        woke.cancel()
        if getter in done:
            digit = getter.result()
            if digit in interrupt:
                return engine.clock.now() - start, digit
        else:
            getter.cancel()
            ch.wake.clear()
    return min(length, engine.clock.now() - start), ""


@app("NoOp", "Verbose", "Log", "Progress")
async def noop(engine: Engine, ch: Channel, data: str) -> int:
    return 0


@app("Set")
async def set_(engine: Engine, ch: Channel, data: str) -> int:
    name, sep, value = data.partition("=")
    if not sep:
        return 0
    name = name.strip()
    func = name.split("(", 1)[0].upper() if "(" in name else ""
    if func in ("CDR", "CDR_PROP", "CHANNEL", "CONNECTEDLINE", "TIMEOUT", "HANGUP_CAUSE"):
        return 0
    if func == "CALLERID":
        what = name[name.index("(") + 1 :].rstrip(")").lower()
        num, cname = ch.caller_num, ch.caller_name
        if what in ("num", "number"):
            num = value
        elif what == "name":
            cname = value
        elif what == "all":
            cname, num = parse_callerid(value)
        engine.set_caller(ch, num, cname)
        return 0
    engine.set_var(ch, name, value)
    return 0


@app("MSet")
async def mset(engine: Engine, ch: Channel, data: str) -> int:
    for part in split_args(data):
        await set_(engine, ch, part)
    return 0


@app("Answer")
async def answer(engine: Engine, ch: Channel, data: str) -> int:
    if ch.state != C.UP:
        engine.answer(ch)
        wait = engine.settings.local_answer_wait if ch.is_local else 0.01
        if not await pause(engine, ch, wait):
            return -1 if ch.hungup else 0
    return 0


@app("Hangup")
async def hangup(engine: Engine, ch: Channel, data: str) -> int:
    cause = int(data) if data.strip().isdigit() else C.NORMAL_CLEARING
    if not ch.hangupcause:
        ch.hangupcause = cause
    engine.request_hangup(ch, C.DIALPLAN)
    return -1


@app("Goto")
async def goto_(engine: Engine, ch: Channel, data: str) -> int:
    return 0 if goto(engine, ch, data) else -1


@app("GotoIf")
async def gotoif(engine: Engine, ch: Channel, data: str) -> int:
    cond, _, branches = data.partition("?")
    yes, _, no = branches.partition(":")
    value = evaluate(cond) if any(op in cond for op in "=<>&|!") else cond.strip()
    target = yes if value not in ("", "0") else no
    if not target:
        return 0
    return 0 if goto(engine, ch, target) else -1


@app("Wait")
async def wait(engine: Engine, ch: Channel, data: str) -> int:
    try:
        seconds = float(data or 0)
    except ValueError:
        seconds = 0.0
    ok = await pause(engine, ch, seconds)
    return 0 if ok or ch.pending_goto is not None else -1


@app("Playback")
async def playback(engine: Engine, ch: Channel, data: str) -> int:
    args = split_args(data)
    options = args[1] if len(args) > 1 else ""
    if ch.state != C.UP and "noanswer" not in options:
        engine.answer(ch)
    status = "SUCCESS"
    for sound in args[0].split("&"):
        played, _ = await play(engine, ch, sound)
        if ch.hungup or ch.pending_goto is not None:
            return 0 if ch.pending_goto is not None else -1
        if played < 0:
            status = "FAILED"
    engine.set_var(ch, "PLAYBACKSTATUS", status)
    return 0


@app("Background")
async def background(engine: Engine, ch: Channel, data: str) -> int:
    args = split_args(data)
    if ch.state != C.UP:
        engine.answer(ch)
    for sound in args[0].split("&"):
        _, digit = await play(engine, ch, sound, "0123456789*#")
        if ch.hungup:
            return -1
        if digit:
            ch.exten, ch.priority = digit, 1
            return 0
    return 0


@app("Read")
async def read(engine: Engine, ch: Channel, data: str) -> int:
    args = [*split_args(data), "", "", "", "", "", ""]
    var, prompt = args[0].strip(), args[1].strip()
    maxdigits = int(args[2]) if args[2].strip().isdigit() else 0
    timeout = float(args[5]) if args[5].strip() else 5.0
    digits = ""
    if prompt:
        _, d = await play(engine, ch, prompt, "0123456789*#")
        digits += d
    status = "OK"
    while not ch.hungup and (not maxdigits or len(digits) < maxdigits):
        try:
            d = await asyncio.wait_for(ch.dtmf.get(), engine.clock.real(timeout))
        except TimeoutError:
            status = "TIMEOUT" if not digits else "OK"
            break
        if d == "#":
            break
        digits += d
    if ch.hungup:
        status = "HANGUP"
    engine.set_var(ch, var, digits)
    engine.set_var(ch, "READSTATUS", status)
    return -1 if ch.hungup else 0


@app("Busy")
async def busy(engine: Engine, ch: Channel, data: str) -> int:
    ch.hangupcause = C.USER_BUSY
    engine.set_state(ch, C.BUSY)
    if ch.partner is not None:
        ch.partner.hangup_event.set()  # wakes whoever waits for the ;1 side to answer
        ch.partner.wake.set()
    seconds = float(data) if data.strip().replace(".", "", 1).isdigit() else 3600.0
    await pause(engine, ch, seconds)
    return -1


@app("Congestion")
async def congestion(engine: Engine, ch: Channel, data: str) -> int:
    ch.hangupcause = C.CONGESTION
    if ch.partner is not None:
        ch.partner.hangup_event.set()
        ch.partner.wake.set()
    seconds = float(data) if data.strip().replace(".", "", 1).isdigit() else 3600.0
    await pause(engine, ch, seconds)
    return -1


@app("Ringing")
async def ringing(engine: Engine, ch: Channel, data: str) -> int:
    if ch.partner is not None and ch.partner.state != C.UP:
        engine.set_state(ch.partner, C.RINGING)
    return 0


@app("SendDTMF")
async def senddtmf(engine: Engine, ch: Channel, data: str) -> int:
    args = split_args(data)
    between = float(args[1]) / 1000.0 if len(args) > 1 and args[1].strip() else 0.1
    duration = int(args[2]) if len(args) > 2 and args[2].strip().isdigit() else 100
    for digit in args[0].strip():
        peer = ch.partner if ch.partner is not None else None
        if peer is not None and not peer.dead:
            engine.dtmf(peer, digit, begin=True)
            if not await pause(engine, ch, duration / 1000.0):
                return -1
            engine.dtmf(peer, digit, duration_ms=duration)
            peer.dtmf.put_nowait(digit)
        if not await pause(engine, ch, between):
            return -1
    return 0


@app("MusicOnHold", "WaitMusicOnHold")
async def musiconhold(engine: Engine, ch: Channel, data: str) -> int:
    args = split_args(data)
    klass = args[0].strip() or "default"
    seconds = float(args[1]) if len(args) > 1 and args[1].strip() else 3600.0 * 24
    if ch.state != C.UP:
        engine.answer(ch)
    engine.moh_start(ch, klass)
    await pause(engine, ch, seconds)
    engine.moh_stop(ch)
    return -1 if ch.hungup else 0


@app("Echo")
async def echo(engine: Engine, ch: Channel, data: str) -> int:
    if ch.state != C.UP:
        engine.answer(ch)
    await pause(engine, ch, 3600.0 * 24)
    return -1


@app("UserEvent")
async def userevent(engine: Engine, ch: Channel, data: str) -> int:
    args = split_args(data)
    fields = [*ch.snapshot(), ("UserEvent", args[0].strip())]
    for kv in args[1:]:
        k, _, v = kv.partition(":")
        if k.strip():
            fields.append((k.strip(), v.strip()))
    engine.emit("UserEvent", "user", fields)
    return 0


@app("PauseQueueMember", "UnpauseQueueMember")
async def pause_member(engine: Engine, ch: Channel, data: str) -> int:
    args = [*split_args(data), "", "", "", ""]
    queue, iface, reason = args[0].strip(), args[1].strip(), args[3].strip()
    paused = ch.appl.lower() == "pausequeuemember"
    iface = iface or ch.device
    ok = engine.queues.set_paused(iface, paused, queue or None, reason) is None
    var = "PQMSTATUS" if paused else "UPQMSTATUS"
    engine.set_var(ch, var, ("PAUSED" if paused else "UNPAUSED") if ok else "NOTFOUND")
    return 0


@app("AddQueueMember")
async def add_member(engine: Engine, ch: Channel, data: str) -> int:
    args = [*split_args(data), "", "", "", "", "", ""]
    queue, iface = args[0].strip(), args[1].strip() or ch.device
    penalty = int(args[2]) if args[2].strip().lstrip("-").isdigit() else 0
    name, state_iface = args[4].strip(), args[5].strip()
    err = engine.queues.add_member(
        queue, iface, penalty=penalty, name=name, state_interface=state_iface
    )
    status = {None: "ADDED", "exists": "MEMBERALREADY", "noqueue": "NOSUCHQUEUE"}.get(
        err, "NOSUCHQUEUE"
    )
    engine.set_var(ch, "AQMSTATUS", status)
    return 0


@app("RemoveQueueMember")
async def remove_member(engine: Engine, ch: Channel, data: str) -> int:
    args = [*split_args(data), "", ""]
    queue, iface = args[0].strip(), args[1].strip() or ch.device
    err = engine.queues.remove_member(queue, iface)
    status = {None: "REMOVED", "notthere": "NOTINQUEUE", "noqueue": "NOSUCHQUEUE"}.get(
        err, "NOTDYNAMIC"
    )
    engine.set_var(ch, "RQMSTATUS", status)
    return 0


@app("VoiceMail")
async def voicemail(engine: Engine, ch: Channel, data: str) -> int:
    """Greeting, then a message recorded until the caller hangs up (at most 3 minutes)."""
    from ccd.sim.recording import write_wav

    args = [*split_args(data), ""]
    box, _, vm_context = args[0].strip().partition("@")
    vm_context = vm_context or "default"
    options = args[1] if len(args) > 1 else ""
    if f"{box}@{vm_context}" not in engine.config.mailboxes:
        # Asterisk: "No entry in voicemail config file for '1000'", VMSTATUS=FAILED, go on
        log.warning("%s: VoiceMail: no mailbox %s@%s in voicemail.conf", ch.name, box,
                    vm_context)
        engine.set_var(ch, "VMSTATUS", "FAILED")
        return 0
    if ch.state != C.UP:
        engine.answer(ch)
    if "s" not in options:
        await play(engine, ch, "vm-intro")
    await play(engine, ch, "beep")
    if ch.hungup:
        engine.set_var(ch, "VMSTATUS", "USEREXIT")
        return -1
    start = engine.clock.now()
    await pause(engine, ch, 180.0)
    seconds = engine.clock.now() - start
    root = engine.settings.recording_root
    if root is not None and box:
        folder = root / "var/spool/asterisk/voicemail" / vm_context / box / "INBOX"
        n = len(list(folder.glob("msg*.wav"))) if folder.is_dir() else 0
        write_wav(folder / f"msg{n:04d}.wav", seconds, [(0.0, seconds)], engine.settings.umask)
    engine.emit(
        "MessageWaiting",
        "call",
        [("Mailbox", f"{box}@{vm_context}"), ("Waiting", "1"), ("New", "1"), ("Old", "0")],
    )
    engine.set_var(ch, "VMSTATUS", "SUCCESS")
    return -1 if ch.hungup else 0
