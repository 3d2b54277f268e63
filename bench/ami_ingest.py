"""AMI ingest throughput: ccd's full path against panoramisk 1.4 and cacofonisk.

Method
------
1. Input. Every capture in ``/work/shared/asterisk-captures/*.ami`` (real Asterisk 22
   AMI streams) is read with :func:`ccd.ami.capture.read_capture`; only its ``Event:``
   frames are kept (banner and action responses dropped, action-list events kept), in
   file-name order. That set is replayed ``--repeat`` times. Each repetition gets its
   own ids, so every model sees distinct calls, not duplicates: every
   ``<10-digit epoch>.<n>`` token (Timestamp, Uniqueid, Linkedid, DestUniqueid,
   Local*/Transfer* ids, recording file names ...) is moved ``rep * SHIFT`` seconds
   later (SHIFT exceeds the captures' whole time span, so ids cannot collide and time
   keeps running forward), channel-name suffixes (``PJSIP/1001-0000002a``) get
   ``rep * 0x10000`` added and bridge UUIDs get the repetition number in their last
   group. The rewriting is done once, before any timing, and the resulting ONE byte
   stream is cut into 64 KiB chunks (``--chunk``), as a socket would deliver it.
2. Contenders, each fed the same chunks (wall time with ``time.perf_counter``):
   * ccd: ``Ingest(LiveModel()).feed(chunk)`` = bytes -> frames -> typed events ->
     live model -> domain events; the consumer counts ``call_ended``.
   * panoramisk: ``AMIProtocol.data_received`` of a protocol wired to a ``Manager``
     the way ``Manager.connection_made`` does it (stub transport, no socket), with one
     ``register_event('*', cb)`` callback that counts events.
   * cacofonisk: the same panoramisk parser feeding cacofonisk's call-tracking
     ``EventHandler`` wired exactly like ``AmiRunner.attach`` (one ``register_event``
     per name of ``EventHandler.event_handlers()``, callback ``AmiRunner.on_event``)
     with a reporter that counts hang-ups. An exception from cacofonisk's handler would
     make asyncio drop the connection; here it is counted and the run goes on.
   The panoramisk paths run inside an asyncio loop (panoramisk schedules coroutines
   and timers on it); ccd needs none. Logging goes to a ``NullHandler``: records at
   WARNING and above are still built, nothing is written.
3. Rate = Event frames in the stream / seconds (the same event count for all three).
   Each round gives every contender a fresh state; rounds alternate the contenders and
   the best round counts (the median is printed too).
4. Checks: one un-timed replay of a single repetition gives the number of calls per
   capture; the timed ccd run must end exactly ``calls x repetitions`` calls, with
   ``ingest.stats.malformed == 0``, and every contender must see every Event frame.
5. Memory: a separate un-timed ccd pass under ``tracemalloc`` gives the peak of memory
   allocated while ingesting (the input chunks, allocated before, are not counted).

The last line printed is ``key=value`` pairs (``ccd_eps=... ratio_panoramisk=...``).
Targets: ccd >= 3x cacofonisk and >= 2x panoramisk.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import re
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cacofonisk import AmiRunner, BaseReporter, EventHandler
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from ccd.ami.capture import read_capture
from ccd.ami.ingest import Ingest
from ccd.model.domain import CallEnded
from ccd.model.live import LiveModel

CAPTURES = Path("/work/shared/asterisk-captures")
DEFAULT_REPEAT = 20
QUICK_REPEAT = 3
DEFAULT_ROUNDS = 5
QUICK_ROUNDS = 2
DEFAULT_CHUNK = 64 * 1024
TARGET_CACOFONISK = 3.0
TARGET_PANORAMISK = 2.0

FRAME_END = b"\r\n\r\n"
EPOCH_RE = re.compile(rb"(?<![\d.])(\d{10})(?=\.\d)")
CHAN_SUFFIX_RE = re.compile(rb"(?<=-)([0-9a-f]{8})(?![0-9a-f])")
UUID_RE = re.compile(rb"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-)[0-9a-f]{4}([0-9a-f]{8})")
CHAN_STEP = 0x10000  # added to a channel-name suffix per repetition


# ------------------------------------------------------------------------- input


@dataclass(slots=True)
class Capture:
    name: str
    events: bytes  # the capture's Event frames, each with its CRLF CRLF
    count: int


@dataclass(slots=True)
class Workload:
    captures: list[Capture]
    repeat: int
    shift: int  # seconds added per repetition
    chunks: list[bytes]
    events: int  # Event frames in the whole stream
    nbytes: int


def load_captures(directory: Path) -> list[Capture]:
    """Every capture's Event frames (banner, responses and their bodies dropped)."""
    out: list[Capture] = []
    for path in sorted(directory.glob("*.ami")):
        frames = [f for f in read_capture(path).split(FRAME_END) if f.startswith(b"Event: ")]
        out.append(Capture(path.stem, b"".join(f + FRAME_END for f in frames), len(frames)))
    if not out:
        sys.exit(f"no captures in {directory}")
    return out


def epoch_shift(template: bytes) -> int:
    """Seconds between repetitions: more than the captures' whole span, rounded up."""
    epochs = [int(m) for m in EPOCH_RE.findall(template)]
    return (max(epochs) - min(epochs)) // 1000 * 1000 + 1000


def rewrite(template: bytes, rep: int, shift: int) -> bytes:
    """One repetition of the stream with its own ids, timestamps and channel names."""
    if rep == 0:
        return template
    if rep >= CHAN_STEP:
        raise ValueError(f"at most {CHAN_STEP - 1} repetitions")
    add = rep * shift
    data = EPOCH_RE.sub(lambda m: b"%d" % (int(m[1]) + add), template)
    step = rep * CHAN_STEP
    data = CHAN_SUFFIX_RE.sub(lambda m: b"%08x" % (int(m[1], 16) + step), data)
    tag = b"%04x" % rep
    return UUID_RE.sub(lambda m: m[1] + tag + m[2], data)


def build_workload(captures: list[Capture], repeat: int, chunk: int) -> Workload:
    template = b"".join(c.events for c in captures)
    shift = epoch_shift(template)
    stream = b"".join(rewrite(template, rep, shift) for rep in range(repeat))
    chunks = [stream[i : i + chunk] for i in range(0, len(stream), chunk)]
    events = stream.count(b"\r\n\r\nEvent: ") + stream.startswith(b"Event: ")
    assert events == sum(c.count for c in captures) * repeat, "rewriting changed the frames"
    return Workload(captures, repeat, shift, chunks, events, len(stream))


# ------------------------------------------------------------------------- ccd


@dataclass(slots=True)
class CcdResult:
    seconds: float
    calls_ended: int
    frames: int
    malformed: int
    model_errors: int


def run_ccd(chunks: Sequence[bytes]) -> CcdResult:
    ingest = Ingest(LiveModel())
    feed = ingest.feed
    ended = 0
    t0 = time.perf_counter()
    for chunk in chunks:
        for de in feed(chunk):
            if type(de) is CallEnded:
                ended += 1
    seconds = time.perf_counter() - t0
    st = ingest.stats
    return CcdResult(seconds, ended, st.frames, st.malformed, st.model_errors)


def calls_per_capture(captures: list[Capture]) -> dict[str, int]:
    """Un-timed replay of one repetition: call_ended events produced by each capture."""
    ingest = Ingest(LiveModel())
    out: dict[str, int] = {}
    for c in captures:
        out[c.name] = sum(1 for de in ingest.feed(c.events) if type(de) is CallEnded)
    return out


def ccd_peak_mb(chunks: Sequence[bytes]) -> float:
    """Peak memory allocated while ccd ingests the stream (tracemalloc, un-timed)."""
    gc.collect()
    tracemalloc.start()
    try:
        run_ccd(chunks)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


# ------------------------------------------------------------------------- panoramisk


class _StubTransport:
    """Stands in for the socket transport: panoramisk only writes and closes it."""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def wire(manager: Manager) -> AMIProtocol:
    """A protocol attached to ``manager`` as ``Manager.connection_made`` does, no socket."""
    proto = AMIProtocol()
    proto.connection_made(_StubTransport())
    manager._connected = True
    manager.protocol = proto
    proto.factory = manager
    proto.log = manager.log
    proto.config = manager.config
    proto.encoding = manager.encoding = manager.config["encoding"]
    manager.responses = proto.responses = {}
    return proto


@dataclass(slots=True)
class PanoramiskResult:
    seconds: float
    events: int


async def _panoramisk(chunks: Sequence[bytes]) -> PanoramiskResult:
    manager = Manager(loop=asyncio.get_running_loop())
    counter = [0]

    def on_event(mgr: Manager, event: Any) -> None:
        counter[0] += 1

    manager.register_event("*", on_event)
    data_received = wire(manager).data_received
    t0 = time.perf_counter()
    for chunk in chunks:
        data_received(chunk)
    seconds = time.perf_counter() - t0
    await asyncio.sleep(0)  # let the tasks panoramisk scheduled run (outside the timing)
    return PanoramiskResult(seconds, counter[0])


def run_panoramisk(chunks: Sequence[bytes]) -> PanoramiskResult:
    return asyncio.run(_panoramisk(chunks))


# ------------------------------------------------------------------------- cacofonisk


class CountingReporter(BaseReporter):
    """Trivial reporter: counts cacofonisk's call notifications."""

    def __init__(self) -> None:
        self.hangups = 0
        self.ups = 0

    def on_up(self, caller: Any, target: Any) -> None:
        self.ups += 1

    def on_hangup(self, caller: Any, reason: str) -> None:
        self.hangups += 1


@dataclass(slots=True)
class CacofoniskResult:
    seconds: float
    handled: int  # events cacofonisk subscribed to and received
    hangups: int
    errors: dict[str, int] = field(default_factory=dict)


async def _cacofonisk(chunks: Sequence[bytes]) -> CacofoniskResult:
    reporter = CountingReporter()
    runner = AmiRunner([], reporter, logger=logging.getLogger("cacofonisk"))
    manager = Manager(loop=runner.loop, encoding="utf8", log=runner.logger)
    handler = EventHandler(reporter=reporter, hostname="bench", logger=runner.logger)
    runner.ami_managers[manager] = handler
    handled = [0]
    errors: dict[str, int] = {}
    runner_on_event = runner.on_event

    def on_event(mgr: Manager, event: Any) -> None:
        # AmiRunner.on_event is the callback; an exception would reach asyncio and
        # close the connection, so count it and carry on
        handled[0] += 1
        try:
            runner_on_event(mgr, event)
        except Exception as exc:
            key = type(exc).__name__
            errors[key] = errors.get(key, 0) + 1

    # as AmiRunner.attach does (EventHandler.FILTER_EVENTS is True)
    if handler.FILTER_EVENTS:
        for name in handler.event_handlers():
            manager.register_event(name, on_event)
    else:
        manager.register_event("*", on_event)
    data_received = wire(manager).data_received
    t0 = time.perf_counter()
    for chunk in chunks:
        data_received(chunk)
    seconds = time.perf_counter() - t0
    await asyncio.sleep(0)
    return CacofoniskResult(seconds, handled[0], reporter.hangups, errors)


def run_cacofonisk(chunks: Sequence[bytes]) -> CacofoniskResult:
    return asyncio.run(_cacofonisk(chunks))


# ------------------------------------------------------------------------- driver


def rates(events: int, times: list[float]) -> tuple[float, float]:
    """(best, median) events per second."""
    return events / min(times), events / statistics.median(times)


def timed(fn: Callable[[], Any]) -> Any:
    gc.collect()
    return fn()


def kv_line(pairs: dict[str, float]) -> str:
    return " ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in pairs.items()
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--repeat",
        type=int,
        default=None,
        help=f"replays of the capture set in the stream (default {DEFAULT_REPEAT})",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"timed rounds per contender, best counts (default {DEFAULT_ROUNDS})",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: --repeat {QUICK_REPEAT} --rounds {QUICK_ROUNDS}",
    )
    ap.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="bytes per feed()")
    ap.add_argument("--captures", type=Path, default=CAPTURES)
    args = ap.parse_args(argv)
    repeat = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS)
    if repeat < 1 or rounds < 1 or args.chunk < 1:
        ap.error("--repeat, --rounds and --chunk must be positive")

    root = logging.getLogger()
    root.addHandler(logging.NullHandler())
    root.setLevel(logging.WARNING)

    t_start = time.perf_counter()
    captures = load_captures(args.captures)
    per_capture = calls_per_capture(captures)
    calls_per_rep = sum(per_capture.values())
    wl = build_workload(captures, repeat, args.chunk)
    print(
        f"input: {len(captures)} captures, {sum(c.count for c in captures)} Event frames and "
        f"{calls_per_rep} calls per repetition; x{repeat} repetitions (ids shifted "
        f"{wl.shift} s each) = {wl.events} events, {wl.nbytes / 2**20:.1f} MiB in "
        f"{len(wl.chunks)} chunks of {args.chunk // 1024} KiB; {rounds} rounds; "
        f"Python {sys.version.split()[0]}"
    )

    ccd_t: list[float] = []
    pan_t: list[float] = []
    caco_t: list[float] = []
    ccd_r: CcdResult | None = None
    pan_r: PanoramiskResult | None = None
    caco_r: CacofoniskResult | None = None
    for _ in range(rounds):
        ccd_r = timed(lambda: run_ccd(wl.chunks))
        ccd_t.append(ccd_r.seconds)
        pan_r = timed(lambda: run_panoramisk(wl.chunks))
        pan_t.append(pan_r.seconds)
        caco_r = timed(lambda: run_cacofonisk(wl.chunks))
        caco_t.append(caco_r.seconds)
    assert ccd_r is not None and pan_r is not None and caco_r is not None

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_mb = ccd_peak_mb(wl.chunks)

    ccd_best, ccd_med = rates(wl.events, ccd_t)
    pan_best, pan_med = rates(wl.events, pan_t)
    caco_best, caco_med = rates(wl.events, caco_t)
    ratio_caco = ccd_best / caco_best
    ratio_pan = ccd_best / pan_best

    expected_calls = calls_per_rep * repeat
    checks = {
        "ccd call_ended": (ccd_r.calls_ended, expected_calls),
        "ccd frames": (ccd_r.frames, wl.events),
        "ccd malformed": (ccd_r.malformed, 0),
        "ccd model_errors": (ccd_r.model_errors, 0),
        "panoramisk events": (pan_r.events, wl.events),
    }
    failed = [k for k, (got, want) in checks.items() if got != want]

    def line(name: str, best: float, med: float, times: list[float], extra: str) -> None:
        print(
            f"{name:<11} {best:>10,.0f} ev/s best  {med:>10,.0f} median  "
            f"({min(times):.3f} s best of {len(times)})  {extra}"
        )

    print(
        "per-capture calls: " + ", ".join(f"{n.split('-')[0]}={k}" for n, k in per_capture.items())
    )
    line(
        "ccd",
        ccd_best,
        ccd_med,
        ccd_t,
        f"call_ended={ccd_r.calls_ended} (expected {expected_calls}) "
        f"frames={ccd_r.frames} malformed={ccd_r.malformed} "
        f"model_errors={ccd_r.model_errors}",
    )
    line("panoramisk", pan_best, pan_med, pan_t, f"events={pan_r.events}")
    errs = ", ".join(f"{k} x{v}" for k, v in sorted(caco_r.errors.items())) or "none"
    line(
        "cacofonisk",
        caco_best,
        caco_med,
        caco_t,
        f"handled={caco_r.handled} hangups={caco_r.hangups} handler exceptions: {errs}",
    )
    verdict = "OK" if ratio_caco >= TARGET_CACOFONISK else "MISSED"
    print(f"ccd/cacofonisk = {ratio_caco:.2f}x (target >= {TARGET_CACOFONISK:g}x: {verdict})")
    verdict = "OK" if ratio_pan >= TARGET_PANORAMISK else "MISSED"
    print(f"ccd/panoramisk = {ratio_pan:.2f}x (target >= {TARGET_PANORAMISK:g}x: {verdict})")
    print(
        f"ccd peak memory while ingesting (tracemalloc): {peak_mb:.1f} MiB; process max RSS "
        f"{rss_mb:.0f} MiB (input stream and all contenders included)"
    )
    for k in failed:
        got, want = checks[k]
        print(f"CHECK FAILED: {k} = {got}, expected {want}")
    print(f"runtime {time.perf_counter() - t_start:.1f} s")
    print(
        kv_line(
            {
                "ccd_eps": round(ccd_best),
                "cacofonisk_eps": round(caco_best),
                "panoramisk_eps": round(pan_best),
                "ratio_cacofonisk": ratio_caco,
                "ratio_panoramisk": ratio_pan,
                "ccd_peak_mb": peak_mb,
            }
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
