"""Screen-pop latency with 500 agents logged in to the panel.

Three processes, as in production (Asterisk, ccd, browsers):

* **sim** - ccd's PBX simulator (``ccd.sim``) with 500 agent phones as static members of one
  queue; callers arrive from the trunk as a Poisson process (20 calls/s by default), the
  agent's phone answers after 1 s, the caller talks 2-5 s and hangs up;
* **main** - an embedded PostgreSQL, the ccd daemon composed exactly as ``ccd run`` does
  (``ccd.service.run_daemon``) with the panel started in it (``ccd.web.server.start_panel``);
* **clients** - 500 python-socketio clients (real websockets), each logged in over HTTP as
  a distinct agent user, sending heartbeats like the browser does.

Latency = the client receiving ``pop`` minus the ``Timestamp`` of the ``AgentCalled`` event
the simulator wrote on the AMI socket (same host clock). Every pop is checked to reach the
agent whose phone rings, and only that agent. Target: p99 <= 50 ms on a 2-core machine.

Baseline, in the same run and with the same 500 clients connected: the Socket.IO push alone
(a pop-sized message emitted by the panel's own Socket.IO server to a random agent's room at
the same rate, with no AMI, model or database in front of it). ``ratio_p99`` = ccd's p99 /
that floor's p99: how much ccd adds on top of what this machine's transport costs right now.

Once the agents are connected the heap is settled (``ccd.heap``), as the daemon's
``heap-settle`` job does every ``[runtime] heap_settle_interval`` seconds in a running call
centre; without that, full garbage collections over the 500 connections' objects stall
every thread for tens of milliseconds several times a minute.

    python bench/screen_pop.py [--agents 500] [--rate 20] [--duration 30]

Last line: ``key=value`` pairs (``p50_ms= p99_ms= max_ms= floor_p99_ms= ratio_p99= ...``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PASSWORD = "bench-password-1"
DID = "5551000"
FIRST_EXT = 3000


def ext(i: int) -> str:
    return str(FIRST_EXT + i)


# ====================================================================== PBX configuration


def write_pbx(directory: Path, agents: int) -> None:
    """An Asterisk configuration set (read by the simulator) with ``agents`` phones."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manager.conf").write_text(
        "[general]\nenabled = yes\nport = 5038\nbindaddr = 127.0.0.1\ntimestampevents = yes\n"
        "[ccd]\nsecret = ccdsecret\ndeny = 0.0.0.0/0.0.0.0\n"
        "permit = 127.0.0.1/255.255.255.255\nread = all\nwrite = all\n")
    eps = ["[ep](!)\ntype = endpoint\ndisallow = all\nallow = ulaw\n",
           "[aor](!)\ntype = aor\nmax_contacts = 1\n",
           "[trunk](ep)\ncontext = from-trunk\naors = trunk\n"
           'callerid = "Trunk" <5550000000>\n[trunk](aor)\n']
    members = []
    for i in range(agents):
        e = ext(i)
        eps.append(f'[{e}](ep)\ncontext = agents\naors = {e}\ncallerid = "Agent {i}" <{e}>\n'
                   f"[{e}](aor)\n")
        members.append(f"member => PJSIP/{e},0,Agent {i},PJSIP/{e}\n")
    (directory / "pjsip.conf").write_text("".join(eps))
    (directory / "queues.conf").write_text(
        "[general]\npersistentmembers = no\nautofill = yes\nshared_lastcall = yes\n"
        "[bench]\nstrategy = rrmemory\ntimeout = 15\nretry = 1\nwrapuptime = 1\n"
        "joinempty = yes\nleavewhenempty = no\nringinuse = no\nservicelevel = 20\n"
        + "".join(members))
    (directory / "extensions.conf").write_text(
        "[general]\nstatic = yes\n\n[from-trunk]\n"
        f"exten => {DID},1,Answer()\n"
        " same => n,Set(CCD_IVR_PATH=bench>main=1>bench(bench/0))\n"
        " same => n,Queue(bench,tT,,,120)\n"
        " same => n,Hangup()\n\n[agents]\nexten => _X.,1,Hangup()\n")


# ====================================================================== role: sim


async def sim_main(config_dir: Path, seed: int) -> None:
    from ccd.sim.phones import PhoneProfile
    from ccd.sim.simulator import SimOptions, Simulator

    opts = SimOptions(config_dir=config_dir, ami_port=0, time_scale=1.0,
                      default_phone=PhoneProfile(answer="auto", answer_delay=1.0))
    sim = Simulator(opts)
    await sim.start()
    print(json.dumps({"ami_port": sim.ami_port}), flush=True)
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    numbers = [f"555{n:07d}" for n in range(2000)]
    tasks: set[asyncio.Task[None]] = set()
    stats = {"offered": 0}

    async def caller(n: int) -> None:
        trunk = sim.phone("trunk")
        ch = trunk.place_call(DID, caller=(f"Caller {n}", rng.choice(numbers)))
        stats["offered"] += 1
        await asyncio.sleep(1.2 + rng.uniform(2.0, 5.0))
        if not ch.hungup:
            trunk.hangup(ch)

    async def traffic(rate: float, duration: float) -> None:
        start = loop.time()
        t = start
        n = 0
        while True:
            t += rng.expovariate(rate)
            if t - start >= duration:
                break
            await asyncio.sleep(max(0.0, t - loop.time()))
            n += 1
            task = loop.create_task(caller(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(set(tasks), timeout=30)

    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if not line or line == "quit":
            break
        if line.startswith("go "):
            _, rate, duration = line.split()
            await traffic(float(rate), float(duration))
            print(json.dumps({"done": True, **stats}), flush=True)
    await sim.stop()


# ====================================================================== role: clients


async def clients_main(url: str, agents: int) -> None:
    """500 python-socketio clients on one event loop (``AsyncClient``, websocket transport
    over aiohttp): the harness must cost as little as possible, since in production the
    browsers run on other machines."""
    import requests
    import socketio

    latencies: list[float] = []
    floor: list[float] = []
    parts: list[list[float]] = []
    wrong: list[str] = []
    loop = asyncio.get_running_loop()

    def login(i: int) -> str:
        s = requests.Session()
        page = s.get(url + "/login", timeout=30)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        r = s.post(url + "/login", data={"username": f"agent{i:04d}", "password": PASSWORD,
                                         "csrf_token": token.group(1)}, timeout=60)
        r.raise_for_status()
        return "; ".join(f"{c.name}={c.value}" for c in s.cookies)

    def on_pop(me: str) -> Any:
        def handler(pop: dict[str, Any]) -> None:
            now = time.time()
            if pop.get("floor"):
                floor.append(now - float(pop["ts"]))
                return
            latencies.append(now - float(pop["ts"]))
            t = pop.get("timing")
            if t:
                parts.append([t[0] - pop["ts"], t[1] - t[0], t[2] - t[1], now - t[2]])
            if pop.get("agent") != me:
                wrong.append(f"{me} got {pop.get('agent')}")
        return handler

    gate = asyncio.Semaphore(32)

    async def connect(i: int, cookie: str) -> Any:
        c = socketio.AsyncClient(reconnection=False)
        c.on("pop", on_pop(f"PJSIP/{ext(i)}"))
        async with gate:
            await c.connect(url, headers={"Cookie": cookie}, transports=["websocket"],
                            wait_timeout=30)
        return c

    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as ex:
        cookies = list(await asyncio.gather(*(loop.run_in_executor(ex, login, i)
                                              for i in range(agents))))
    t1 = time.monotonic()
    clients = await asyncio.gather(*(connect(i, c) for i, c in enumerate(cookies)))
    t2 = time.monotonic()

    async def heartbeats() -> None:  # like the browsers: one heartbeat per client every 5 s
        while True:
            for c in clients:
                await asyncio.sleep(5.0 / len(clients))
                with contextlib.suppress(Exception):
                    await c.emit("heartbeat", {})

    beat = loop.create_task(heartbeats())
    print(json.dumps({"ready": True, "login_s": round(t1 - t0, 1),
                      "connect_s": round(t2 - t1, 1)}), flush=True)
    while True:
        cmd = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if cmd == "report":
            print(json.dumps({"latencies": latencies, "floor": floor, "parts": parts,
                              "wrong": wrong[:20],
                              "wrong_count": len(wrong), "pops": len(latencies),
                              "connected": sum(c.connected for c in clients)}), flush=True)
        elif cmd in ("quit", ""):
            break
    beat.cancel()
    await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)


# ====================================================================== role: main


def seed(url: str, agents: int) -> None:
    import psycopg

    from ccd.security import hash_password

    pw = hash_password(PASSWORD)
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO dids (number, tenant_id) VALUES (%s, 1)", (DID,))
        q = conn.execute("INSERT INTO queues (tenant_id, name, recording_policy, wrapup_seconds)"
                         " VALUES (1, 'bench', 'never', 1) RETURNING id").fetchone()[0]
        with conn.cursor() as cur:
            for i in range(agents):
                aid = cur.execute("INSERT INTO agents (tenant_id, name, interface, extension) "
                                  "VALUES (1, %s, %s, %s) RETURNING id",
                                  (f"Agent {i}", f"PJSIP/{ext(i)}", ext(i))).fetchone()[0]
                cur.execute("INSERT INTO agent_skills (tenant_id, agent_id, queue_id) "
                            "VALUES (1, %s, %s)", (aid, q))
                cur.execute("INSERT INTO users (tenant_id, username, password_hash, agent_id) "
                            "VALUES (1, %s, %s, %s)", (f"agent{i:04d}", pw, aid))
            for n in range(0, 2000, 2):  # every other caller is a known customer
                cid = cur.execute("INSERT INTO customers (tenant_id, name, account_no) "
                                  "VALUES (1, %s, %s) RETURNING id",
                                  (f"Customer {n}", f"ACC{n:05d}")).fetchone()[0]
                cur.execute("INSERT INTO customer_phones (tenant_id, customer_id, e164) "
                            "VALUES (1, %s, %s)", (cid, f"+1555{n:07d}"))
                if n % 10 == 0:
                    cur.execute("INSERT INTO tickets (tenant_id, subject, customer_id) "
                                "VALUES (1, 'Open issue', %s)", (cid,))


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100.0 * len(s) + 0.5) - 1))
    return s[k]


def spawn(role: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, "--role", role, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            bufsize=1)


def read_json(proc: subprocess.Popen[str], key: str, timeout: float) -> dict[str, Any]:
    """The next JSON line of ``proc`` that has ``key`` (other lines are echoed)."""
    box: dict[str, Any] = {}

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                data = json.loads(line)
                if key in data:
                    box["data"] = data
                    return
            elif line:
                print(line, file=sys.stderr)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    if "data" not in box:
        raise RuntimeError(f"{proc.args[3]} did not answer {key!r} within {timeout:.0f} s "
                           f"(exit code {proc.poll()})")
    return box["data"]


def send(proc: subprocess.Popen[str], line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def main_role(agents: int, rate: float, duration: float) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    from ccd.bridge import DaemonBridge
    from ccd.config import Config
    from ccd.heap import settle_heap
    from ccd.service import run_daemon
    from ccd.store import migrate

    top = Path(tempfile.mkdtemp(prefix="ccd-bench-pop-"))
    server = pgserver.get_server(top / "pg", cleanup_mode="delete")
    sim = clients = None
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    done = None
    extra: dict[str, Any] = {}
    try:
        url = server.get_uri()
        migrate.upgrade(url)
        seed(url, agents)
        write_pbx(top / "pbx", agents)
        sim = spawn("sim", "--config-dir", str(top / "pbx"))
        ami_port = read_json(sim, "ami_port", 60)["ami_port"]
        config = Config.model_validate({
            "data_dir": str(top / "data"),
            "ami": {"host": "127.0.0.1", "port": ami_port, "secret": "ccdsecret"},
            "agi": {"host": "127.0.0.1", "port": 0},
            "database": {"url": url, "pool_max": 4},
            "web": {"host": "127.0.0.1", "port": 0, "cookie_secure": False,
                    "secret_key": "bench-secret-key-0123456789abcdef"},
        })
        loop_thread.start()
        ready_box: dict[str, asyncio.Event] = {}

        async def daemon() -> None:
            ready_box["ready"] = asyncio.Event()
            await run_daemon(config, ready=ready_box["ready"], extra=extra)

        done = asyncio.run_coroutine_threadsafe(daemon(), loop)
        end = time.monotonic() + 60
        while not (ready_box.get("ready") and ready_box["ready"].is_set()):
            if done.done():
                done.result()
            if time.monotonic() > end:
                raise RuntimeError("the daemon did not start")
            time.sleep(0.05)
        d = extra["daemon"]
        bridge = DaemonBridge(d, loop)
        panel = extra.get("panel")  # started by run_daemon, as `ccd run` does
        if panel is None:
            raise RuntimeError("the daemon did not start its panel")

        def available() -> int:
            return bridge.read(lambda m: sum(a.state == "available" for a in m.agents.values()))

        end = time.monotonic() + 60
        while available() < agents:
            if time.monotonic() > end:
                raise RuntimeError(f"only {available()} of {agents} agents available")
            time.sleep(0.2)
        clients = spawn("clients", "--url", panel.url, "--agents", str(agents))
        info = read_json(clients, "ready", 600)
        settled = settle_heap()  # what the daemon's heap-settle job does (see above)
        print(f"{agents} agents logged in ({info['login_s']} s) and connected "
              f"({info['connect_s']} s); heap settled ({settled.frozen} objects, "
              f"{settled.seconds * 1000:.0f} ms)", file=sys.stderr)
        print(f"baseline: Socket.IO push alone, {rate:g}/s for {FLOOR_SECONDS:g} s",
              file=sys.stderr)
        floor_sent = push_floor(panel, agents, rate, FLOOR_SECONDS)
        print(f"offering {rate:g} calls/s for {duration:g} s", file=sys.stderr)
        t0 = time.monotonic()
        send(sim, f"go {rate} {duration}")
        offered = read_json(sim, "done", duration + 120)["offered"]
        time.sleep(1.0)
        send(clients, "report")
        report = read_json(clients, "latencies", 60)
        wall = time.monotonic() - t0
        lat = [x * 1000.0 for x in report["latencies"]]
        floor = [x * 1000.0 for x in report["floor"]]
        if not lat or not floor:
            raise RuntimeError("no screen pop arrived" if not lat else "no baseline push arrived")
        hub = panel.hub.stats
        p50, p99, mx = percentile(lat, 50), percentile(lat, 99), max(lat)
        print(f"calls offered        {offered} in {wall:.1f} s ({offered / duration:.1f}/s)")
        print(f"screen pops received {report['pops']} (hub sent {hub['pops']}, "
              f"errors {hub['pop_errors']}), wrong agent: {report['wrong_count']}")
        print(f"clients connected    {report['connected']} of {agents}")
        print(f"pop latency          p50 {p50:.1f} ms, p90 {percentile(lat, 90):.1f} ms, "
              f"p99 {p99:.1f} ms, max {mx:.1f} ms, mean {statistics.fmean(lat):.1f} ms")
        parts = report.get("parts") or []
        for i, name in enumerate(("ami->hub", "hub queue->worker", "db+build", "emit->client")):
            col = [p[i] * 1000 for p in parts]
            if col:
                print(f"  {name:18} p50 {percentile(col, 50):.1f} p99 {percentile(col, 99):.1f} "
                      f"max {max(col):.1f}")
        f50, f99 = percentile(floor, 50), percentile(floor, 99)
        print(f"baseline push alone  p50 {f50:.1f} ms, p99 {f99:.1f} ms, max {max(floor):.1f} ms"
              f" ({len(floor)} of {floor_sent} received)")
        print(f"ccd / baseline       p99 x{p99 / f99:.1f}")
        print(f"target p99 <= 50 ms: {'met' if p99 <= 50.0 else 'NOT met'}")
        print(f"p50_ms={p50:.1f} p99_ms={p99:.1f} max_ms={mx:.1f} floor_p50_ms={f50:.1f} "
              f"floor_p99_ms={f99:.1f} ratio_p99={p99 / f99:.2f} pops={report['pops']} "
              f"calls={offered} agents={agents} rate={rate:g} "
              f"wrong_agent={report['wrong_count']} cpus={os.cpu_count()}")
        if report["wrong_count"]:
            raise SystemExit(f"pops reached the wrong agents: {report['wrong']}")
    finally:  # browsers, then ccd (its panel too), then Asterisk
        stop_process(clients)
        d = extra.get("daemon")
        if d is not None and done is not None:
            loop.call_soon_threadsafe(d.request_stop)
            with contextlib.suppress(Exception):
                done.result(30)
        loop.call_soon_threadsafe(loop.stop)
        stop_process(sim)
        server.cleanup()
        shutil.rmtree(top, ignore_errors=True)


#: a pop's shape and size (customer, recent calls, open tickets), for the baseline pushes
FLOOR_POP: dict[str, Any] = {
    "call_id": "1795465016.1000", "queue": "bench", "wait": 0.0, "caller_num": "5550001234",
    "caller_name": "Caller 1", "did": DID, "direction": "inbound", "recording": False,
    "ivr_path": "bench>main=1>bench(bench/0)", "digits": ["1"], "vip": False, "language": "",
    "e164": "+15550001234", "customer_error": "",
    "customer": {"id": 1, "name": "Customer 1234", "account_no": "ACC01234", "vip": False,
                 "language": "en", "email": "", "notes": ""},
    "recent_calls": [{"call_id": f"1795465016.{n}", "started": 1795465016.0 + n,
                      "outcome": "answered", "agent": "PJSIP/3001", "queue": "bench",
                      "talk_seconds": 42.0, "disposition": "solved"} for n in range(5)],
    "open_tickets": [{"id": n, "subject": "Open issue", "status": "open", "due": None}
                     for n in range(2)]}
FLOOR_SECONDS = 15.0


def push_floor(panel: Any, agents: int, rate: float, seconds: float) -> int:
    """The baseline: pop-sized messages emitted straight into random agents' rooms through
    the panel's Socket.IO server (Poisson, ``rate`` a second); returns how many were sent."""
    rng = random.Random(11)
    rooms = []
    for i in range(agents):
        found = panel.hub.directory.agent(f"PJSIP/{ext(i)}")
        if found is not None:
            rooms.append((f"PJSIP/{ext(i)}", f"agent:{found[0]}"))
    if not rooms:
        raise RuntimeError("no agent rooms for the baseline")
    sent, end = 0, time.monotonic() + seconds
    while True:
        time.sleep(rng.expovariate(rate))
        if time.monotonic() >= end:
            break
        iface, room = rng.choice(rooms)
        panel.socketio.emit("pop", {**FLOOR_POP, "agent": iface, "ts": time.time(),
                                    "floor": True}, to=room)
        sent += 1
    time.sleep(1.0)  # the last ones arrive
    return sent


def stop_process(proc: subprocess.Popen[str] | None) -> None:
    if proc is None:
        return
    with contextlib.suppress(Exception):
        send(proc, "quit")
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--role", choices=("main", "sim", "clients"), default="main")
    ap.add_argument("--agents", type=int, default=500)
    ap.add_argument("--rate", type=float, default=20.0, help="calls per second")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of traffic")
    ap.add_argument("--config-dir", type=Path)
    ap.add_argument("--url")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    if a.role == "sim":
        logging.basicConfig(level=logging.WARNING)
        asyncio.run(sim_main(a.config_dir, a.seed))
    elif a.role == "clients":
        asyncio.run(clients_main(a.url, a.agents))
    else:
        main_role(a.agents, a.rate, a.duration)


if __name__ == "__main__":
    main()
