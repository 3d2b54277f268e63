"""IVR sessions per second: ccd's FastAGI server against a classic AGI process per call.

Method
------
1. Flow: the shipped ``support`` flow (ccd/ivr/flows/support.toml) with its calendar made
   24/7, so every run takes the same path. Every caller does the same thing: English (2),
   orders (2), order number 8123456789 -> set node -> queue ``support``. That is 15 AGI
   commands per session (GET DATA x3, STREAM FILE x2, SET VARIABLE x10). Storage is the
   in-memory directory in both contenders (no database: this measures AGI, not SQL).
2. The Asterisk side is the simulator's AGI client (``ccd.sim.agi_client``) with a
   scripted caller, in this process. Every session's replies are checked (AGISTATUS
   SUCCESS, CCD_QUEUE=support, the expected CCD_IVR_PATH).
3. FastAGI, throughput: ``--sessions`` sessions, at most ``--concurrency`` (1,000) at
   once, through the real server (``ccd.agi.server.AgiServer`` + ``ccd.ivr``) over
   loopback TCP, prompts and digits answered at once. Sessions/s = sessions / wall time;
   the server and the simulated Asterisk share this one process (and core).
4. FastAGI, latency at 1,000 concurrent sessions: ``--concurrency`` callers stay in the
   IVR at once for ``--paced-seconds``, each prompt and each digit wait lasting
   ``--media`` seconds (x0.5-1.5, random): every caller starts again when its session
   ends, starts are spread over the first seconds, and only the steady state after that
   is measured. Command round trip = server side, from writing the command to having
   parsed its reply (``AgiSession.on_rtt``); commands that play sound or wait for digits
   (STREAM FILE, GET DATA ...) are excluded from the percentiles since their time is the
   caller's, not the server's. As the daemon does, the heap left by start-up is frozen
   (``ccd.heap.settle_heap``) before measuring.
5. Process per call (the pyst2 way): the same flow run by ``python -m ccd.agi.classic``
   (pyst2's ``asterisk.agi.AGI`` on stdin/stdout), one process started per session by the
   same client over pipes, ``--classic-concurrency`` at once, instant media as in 3.
6. ratio = FastAGI sessions/s (3) / process-per-call sessions/s (5), measured in the same
   run. Targets: ratio >= 20, p99 <= 10 ms (4).

The last line printed is ``key=value`` pairs (``ratio=... p99_ms=...``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ccd.agi.server import AgiServer
from ccd.agi.session import is_media_verb
from ccd.heap import settle_heap
from ccd.ivr.app import open_routes
from ccd.ivr.flow import BUILTIN_FLOWS
from ccd.ivr.lookup import MemoryDirectory
from ccd.sim.agi_client import SUCCESS, ScriptedChannel, run_classic_agi, run_fastagi

TARGET_RATIO = 20.0
TARGET_P99_MS = 10.0
INPUTS = ["2", "2", "8123456789"]
PATH = ("identify(not_found)>language=2>welcome>hours(open)>main=2>order=8123456789>"
        "tag_order>tech(support/0)")
COMMANDS = 15


def bench_flows(directory: Path) -> Path:
    """The support flow with a 24/7 calendar, written to ``directory``."""
    text = (BUILTIN_FLOWS / "support.toml").read_text(encoding="utf-8")
    always = "\n".join(f'{d} = ["00:00-24:00"]' for d in
                       ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    text, n = re.subn(r"(?ms)^\[calendars\.support\]\n.*?(?=^\[nodes\.)",
                      f'[calendars.support]\ntimezone = "UTC"\n{always}\n\n', text)
    if n != 1:
        raise SystemExit("bench: calendar section of support.toml not found")
    (directory / "support.toml").write_text(text, encoding="utf-8")
    return directory


def check(ch: ScriptedChannel, status: str) -> str | None:
    """Why a finished session is wrong (None if it is right)."""
    if status != SUCCESS:
        return f"AGISTATUS {status}"
    v = ch.variables
    if v.get("CCD_QUEUE") != "support" or v.get("CCD_IVR_PATH") != PATH:
        return f"variables {v}"
    if len(ch.commands) != COMMANDS:
        return f"{len(ch.commands)} commands"
    return None


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p * len(values)))] * 1000


class Rtt:
    """Collects command round trips while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.all: list[float] = []
        self.control: list[float] = []

    def __call__(self, verb: str, seconds: float) -> None:
        if self.on:
            self.all.append(seconds)
            if not is_media_verb(verb):
                self.control.append(seconds)


async def fastagi_throughput(url: str, rtt: Rtt, sessions: int, concurrency: int,
                             errors: list[str]) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            ch = ScriptedChannel(INPUTS, uniqueid=f"1795466000.{i}")
            why = check(ch, await run_fastagi(url, ch))
            if why:
                errors.append(why)

    rtt.on = True
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(sessions)))
    wall = time.perf_counter() - t0
    rtt.on = False
    return sessions / wall


async def fastagi_paced(url: str, rtt: Rtt, concurrency: int, seconds: float, media: float,
                        errors: list[str]) -> tuple[float, float]:
    """Sessions/s and CPU share in the steady state of ``concurrency`` callers."""
    ramp = max(2.0, media * 4)
    end = time.perf_counter() + ramp + seconds
    done = 0
    rng = random.Random(7)

    async def caller(i: int) -> None:
        nonlocal done
        await asyncio.sleep(rng.uniform(0, ramp))
        k = 0
        while time.perf_counter() < end:
            ch = ScriptedChannel(INPUTS, uniqueid=f"{i}.{k}",
                                 delay=media * rng.uniform(0.5, 1.5))
            why = check(ch, await run_fastagi(url, ch))
            if why:
                errors.append(why)
            if rtt.on:
                done += 1
            k += 1

    tasks = [asyncio.create_task(caller(i)) for i in range(concurrency)]
    await asyncio.sleep(ramp + media * 2)
    rtt.on = True
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.sleep(max(1.0, end - time.perf_counter() - media * 2))
    rtt.on = False
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await asyncio.gather(*tasks)
    return done / wall, cpu / wall


async def process_per_call(flows: Path, sessions: int, concurrency: int,
                           errors: list[str]) -> float:
    sem = asyncio.Semaphore(concurrency)
    argv = [sys.executable, "-m", "ccd.agi.classic", "--flows", str(flows), "ivr"]

    async def one(i: int) -> None:
        async with sem:
            ch = ScriptedChannel(INPUTS, uniqueid=f"1795467000.{i}")
            why = check(ch, await run_classic_agi(argv, ch, request="ccd-agi"))
            if why:
                errors.append(f"classic: {why}")

    await one(-1)  # warm the OS file cache; not timed
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(sessions)))
    return sessions / (time.perf_counter() - t0)


def kv_line(d: dict[str, float | int | str]) -> str:
    return " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())


async def run(args: argparse.Namespace, say: Callable[[str], None]) -> int:
    errors: list[str] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ccd-bench-agi-") as tmp:
        flows = bench_flows(Path(tmp))
        rtt = Rtt()
        async with open_routes(flows_dir=flows, directory=MemoryDirectory()) as routes:
            server = AgiServer(routes, host="127.0.0.1", port=0, on_rtt=rtt,
                               header_timeout=30)
            await server.start()
            settle_heap()  # what the daemon does once started
            url = f"agi://127.0.0.1:{server.port}/ivr"
            say(f"FastAGI throughput: {args.sessions} sessions, {args.concurrency} at once, "
                f"{COMMANDS} commands each, instant media ...")
            fast = await fastagi_throughput(url, rtt, args.sessions, args.concurrency, errors)
            sat50, sat99 = pct(rtt.all, 0.50), pct(rtt.all, 0.99)
            say(f"  {fast:,.0f} sessions/s ({fast * COMMANDS:,.0f} commands/s); round trip "
                f"under saturation p50 {sat50:.1f} ms, p99 {sat99:.1f} ms")
            rtt = Rtt()
            server.on_rtt = rtt
            say(f"FastAGI at {args.concurrency} concurrent sessions, media {args.media:g} s "
                f"(x0.5-1.5), steady state {args.paced_seconds:g} s ...")
            paced, cpu = await fastagi_paced(url, rtt, args.concurrency, args.paced_seconds,
                                            args.media, errors)
            p50, p99 = pct(rtt.control, 0.50), pct(rtt.control, 0.99)
            pmax = max(rtt.control, default=0.0) * 1000
            say(f"  {paced:,.0f} sessions/s, CPU {cpu * 100:.0f}% of one core; command round "
                f"trip (no media) p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {pmax:.1f} ms "
                f"({len(rtt.control):,} commands)")
            await server.close()
        say(f"Process per call (python -m ccd.agi.classic, pyst2): {args.classic_sessions} "
            f"sessions, {args.classic_concurrency} at once ...")
        classic = await process_per_call(flows, args.classic_sessions,
                                         args.classic_concurrency, errors)
        say(f"  {classic:,.1f} sessions/s")
    ratio = fast / classic if classic else float("inf")
    verdict = "OK" if ratio >= TARGET_RATIO else "MISSED"
    say(f"FastAGI / process per call = {ratio:.1f}x (target >= {TARGET_RATIO:g}x: {verdict})")
    verdict = "OK" if p99 <= TARGET_P99_MS else "MISSED"
    say(f"p99 command round trip at {args.concurrency} concurrent sessions = {p99:.2f} ms "
        f"(target <= {TARGET_P99_MS:g} ms: {verdict})")
    for e in errors[:10]:
        say(f"CHECK FAILED: {e}")
    if errors:
        say(f"{len(errors)} sessions went wrong")
    say(f"runtime {time.perf_counter() - t_start:.1f} s")
    print(kv_line({
        "fastagi_sps": round(fast), "paced_sps": round(paced),
        "classic_sps": classic, "ratio": ratio, "p50_ms": p50, "p99_ms": p99,
        "p99_saturated_ms": sat99, "concurrency": args.concurrency,
        "errors": len(errors),
    }))
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=1000)
    p.add_argument("--paced-seconds", type=float, default=15.0)
    p.add_argument("--media", type=float, default=0.5,
                   help="seconds per prompt / digit wait in the latency run")
    p.add_argument("--classic-sessions", type=int, default=40)
    p.add_argument("--classic-concurrency", type=int, default=4)
    args = p.parse_args(argv)
    logging.disable(logging.WARNING)  # the bench flow logs nothing useful per call
    return asyncio.run(run(args, lambda s: print(s, flush=True)))


if __name__ == "__main__":
    sys.exit(main())
