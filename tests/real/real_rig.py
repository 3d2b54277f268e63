"""The real-PBX rig: an installed Asterisk 22 loading ``asterisk-conf/`` unmodified, real SIP
phones (Debian's baresip, one process per endpoint, driven over ctrl_tcp) and ccd itself.

Everything binds to 127.0.0.1 on ports chosen at run time. Site values (SIP bind, AMI port,
ccd's FastAGI address) go into ``site/*.conf`` files that ``asterisk-conf/`` ``#tryinclude``s,
exactly as an operator sets them on a host; nothing in ``asterisk-conf/`` is edited.

``CCD_ASTERISK`` names the Asterisk binary (``/usr/sbin/asterisk``, ``/opt/asterisk/sbin/
asterisk`` ...). Its modules and data (documentation) are found next to it, or given with
``CCD_ASTERISK_MODULES`` / ``CCD_ASTERISK_DATA``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "asterisk-conf"
VENV_BIN = Path(sys.executable).parent
CCD = str(VENV_BIN / "ccd")


def free_port(step: int = 1) -> int:
    """A free TCP+UDP port on 127.0.0.1 (and, with ``step`` 2, the next one free as well)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + step > 65000:
            continue
        ok = True
        for p in range(port, port + step + 1):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as t:
                    try:
                        t.bind(("127.0.0.1", p))
                    except OSError:
                        ok = False
        if ok:
            return port
    raise RuntimeError("no free port")


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "",
              interval: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or cond}")
        time.sleep(interval)


# ------------------------------------------------------------------------------ Asterisk

def asterisk_paths(binary: str) -> tuple[Path, Path, Path]:
    """(binary, modules dir, data dir) of an installed Asterisk."""
    exe = Path(binary)
    if exe.is_dir():
        exe = exe / "sbin" / "asterisk"
    if not exe.exists():
        raise FileNotFoundError(f"CCD_ASTERISK={binary}: no Asterisk binary there")
    prefix = exe.resolve().parent.parent
    mods = os.environ.get("CCD_ASTERISK_MODULES")
    data = os.environ.get("CCD_ASTERISK_DATA")
    mod_candidates = [prefix / "lib/asterisk/modules", prefix / "lib64/asterisk/modules",
                      Path("/usr/lib/x86_64-linux-gnu/asterisk/modules"),
                      Path("/usr/lib/asterisk/modules")]
    data_candidates = [prefix / "var/lib/asterisk", Path("/var/lib/asterisk"),
                       Path("/usr/share/asterisk")]
    mod_dir = Path(mods) if mods else next((p for p in mod_candidates if p.is_dir()), None)
    data_dir = Path(data) if data else next(
        (p for p in data_candidates if (p / "documentation").is_dir()), None)
    if mod_dir is None or data_dir is None:
        raise FileNotFoundError("cannot find Asterisk's modules/data directories: set "
                                "CCD_ASTERISK_MODULES and CCD_ASTERISK_DATA")
    return exe, mod_dir, data_dir


@dataclass
class Asterisk:
    """A private Asterisk instance under ``root`` running ``asterisk-conf/``."""

    binary: str
    root: Path
    agi: str  # host:port of ccd's FastAGI server
    sip_port: int = field(default_factory=lambda: free_port(2))
    ami_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.exe, self.modules, self.data = asterisk_paths(self.binary)
        self.etc = self.root / "etc"
        self.spool = self.root / "spool"
        self.sounds = self.root / "data" / "sounds"
        self.log = self.root / "log"

    @property
    def conf(self) -> Path:
        return self.etc / "asterisk.conf"

    @property
    def monitor(self) -> Path:
        return self.spool / "monitor"

    def prepare(self) -> None:
        """Lay out etc/ (asterisk-conf/ copied unmodified + site/ values), data and spool."""
        for d in ("etc/site", "run", "log", "spool/monitor", "lib", "data/sounds"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        for f in sorted(CONF.glob("*.conf")):
            shutil.copy2(f, self.etc / f.name)
        data = self.root / "data"
        for entry in self.data.iterdir():
            if entry.name not in ("sounds", "moh") and not (data / entry.name).exists():
                (data / entry.name).symlink_to(entry)
        self.conf.write_text(
            "[directories]\n"
            f"astetcdir => {self.etc}\nastmoddir => {self.modules}\n"
            f"astvarlibdir => {self.root}/lib\nastdbdir => {self.root}/lib\n"
            f"astkeydir => {self.root}/lib\nastdatadir => {data}\n"
            f"astagidir => {data}/agi-bin\nastspooldir => {self.spool}\n"
            f"astrundir => {self.root}/run\nastlogdir => {self.log}\n"
            f"astsbindir => {self.exe.parent}\n"
            "[options]\nverbose = 3\n")
        site = self.etc / "site"
        (site / "pjsip-transport-udp.conf").write_text(f"bind = 127.0.0.1:{self.sip_port}\n")
        (site / "manager-general.conf").write_text(f"port = {self.ami_port}\n")
        (site / "globals.conf").write_text(f"CCD_AGI = {self.agi}\n")
        rtp = free_port()
        (site / "rtp.conf").write_text(f"rtpstart = {rtp}\nrtpend = {rtp + 200}\n")

    def start(self, timeout: float = 30.0) -> None:
        """Start Asterisk in the foreground (-f) and wait until it is fully booted."""
        self.starts += 1
        out = (self.log / f"stdout-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen([str(self.exe), "-C", str(self.conf), "-f"],
                                     stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(self.fully_booted, timeout, "Asterisk to be fully booted", interval=0.2)

    def fully_booted(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"Asterisk exited with {self.proc.returncode}; see {self.log}")
        try:
            return "Fully Booted" in self.cli("core show uptime") or \
                "System uptime" in self.cli("core show uptime")
        except subprocess.SubprocessError:
            return False

    def cli(self, command: str, timeout: float = 10.0) -> str:
        """One Asterisk CLI command (``asterisk -rx``); its output."""
        r = subprocess.run([str(self.exe), "-C", str(self.conf), "-rx", command],
                           capture_output=True, text=True, timeout=timeout)
        return r.stdout

    def channels(self) -> list[dict[str, str]]:
        """Asterisk's channels now (``core show channels concise``)."""
        keys = ("channel", "context", "exten", "priority", "state", "app", "data", "callerid",
                "account", "peeraccount", "amaflags", "duration", "bridge", "uniqueid")
        out = []
        for line in self.cli("core show channels concise").splitlines():
            f = line.split("!")
            if len(f) >= len(keys):
                out.append(dict(zip(keys, f, strict=False)))
        return out

    def linkedid(self, channel: str) -> str:
        """The Linkedid (ccd's call id) of a channel, from Asterisk."""
        for line in self.cli(f"core show channel {channel}").splitlines():
            if line.strip().startswith("LinkedID:"):
                return line.split(":", 1)[1].strip()
        return ""

    def call_of(self, endpoint: str, timeout: float = 15.0) -> tuple[str, str]:
        """(channel, linkedid) of the first channel of ``endpoint`` Asterisk has."""
        def find() -> tuple[str, str] | None:
            for c in self.channels():
                if c["channel"].startswith(f"PJSIP/{endpoint}-"):
                    lid = self.linkedid(c["channel"])
                    if lid:
                        return c["channel"], lid
            return None
        return wait_for(find, timeout, f"a channel of {endpoint}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(subprocess.SubprocessError):
            self.cli("core stop now", timeout=5)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def restart_now(self) -> None:
        """``core restart now``: Asterisk hangs up every call, re-execs, boots again."""
        self.cli("core restart now")

    def messages(self) -> list[str]:
        path = self.log / "messages.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []


# ------------------------------------------------------------------------------ phones

@dataclass
class PhoneEvent:
    t: float
    type: str
    data: dict[str, Any]


class Phone:
    """A baresip SIP phone for one endpoint, driven over ctrl_tcp (netstring JSON)."""

    def __init__(self, root: Path, user: str, password: str, pbx: Asterisk,
                 pstn_numbers: tuple[str, ...] = ()) -> None:
        """A phone registered as ``user``; with ``pstn_numbers``, the far end of the trunk:
        it does not register and answers for each of those numbers."""
        self.user, self.password, self.pbx = user, password, pbx
        self.dir = root / f"phone-{user}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sip_port = free_port(2)
        self.ctrl_port = free_port()
        self.pstn_numbers = pstn_numbers
        self.events: queue.Queue[PhoneEvent] = queue.Queue()
        self.history: list[PhoneEvent] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self._token = 0
        self._responses: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self.write_config()

    def write_config(self) -> None:
        rtp = free_port()
        (self.dir / "config").write_text(
            "poll_method epoll\n"
            f"sip_listen 127.0.0.1:{self.sip_port}\n"
            "call_local_timeout 120\ncall_max_calls 4\n"
            "audio_player aufile,/dev/null\naudio_alert aufile,/dev/null\n"
            f"audio_source ausine,{440 if self.user == '2000' else 660}\n"
            "ausrc_srate 48000\nausrc_channels 2\nauplay_srate 8000\nauplay_channels 1\n"
            "audio_level no\n"
            f"rtp_ports {rtp}-{rtp + 20}\nrtp_timeout 0\n"
            "net_interface 127.0.0.1\ndns_server 127.0.0.1:53\n"
            "module_path /usr/lib/baresip/modules\n"
            "module g711.so\nmodule ausine.so\nmodule aufile.so\n"
            "module_app account.so\nmodule_app menu.so\nmodule_app ctrl_tcp.so\n"
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}\n")
        lines = []
        if self.pstn_numbers:
            for n in self.pstn_numbers:
                lines.append(f"<sip:{n}@127.0.0.1:{self.sip_port};transport=udp>;"
                             "answermode=manual;regint=0;audio_codecs=PCMU,PCMA")
        else:
            lines.append(f"<sip:{self.user}@127.0.0.1:{self.pbx.sip_port};transport=udp>;"
                         f"auth_pass={self.password};answermode=manual;regint=60;"
                         "audio_codecs=PCMU,PCMA")
        (self.dir / "accounts").write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        log = (self.dir / "baresip.log").open("ab")
        self.proc = subprocess.Popen(["baresip", "-f", str(self.dir)], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.sock = wait_for(self._connect, 15, f"baresip {self.user} ctrl_tcp")
        threading.Thread(target=self._reader, name=f"phone-{self.user}", daemon=True).start()

    def _connect(self) -> socket.socket | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"baresip {self.user} exited; see {self.dir}/baresip.log")
        try:
            return socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=1)
        except OSError:
            return None

    def _reader(self) -> None:
        assert self.sock is not None
        self.sock.settimeout(None)
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0:
                    break
                n = int(buf[:colon])
                if len(buf) < colon + 1 + n + 1:
                    break
                body, buf = buf[colon + 1:colon + 1 + n], buf[colon + 2 + n:]
                try:
                    msg = json.loads(body)
                except ValueError:
                    continue
                if msg.get("response"):
                    with self._cv:
                        self._responses[str(msg.get("token"))] = msg
                        self._cv.notify_all()
                elif msg.get("event"):
                    e = PhoneEvent(time.time(), str(msg.get("type")), msg)
                    self.history.append(e)
                    self.events.put(e)

    def command(self, command: str, params: str | None = None, timeout: float = 10) -> Any:
        assert self.sock is not None, "phone not started"
        with self._cv:
            self._token += 1
            token = f"t{self._token}"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        with self._cv:
            ok = self._cv.wait_for(lambda: token in self._responses, timeout)
            assert ok, f"baresip {self.user}: no answer to {command}"
            r = self._responses.pop(token)
        assert r.get("ok"), f"baresip {self.user}: {command} {params}: {r}"
        return r.get("data")

    def wait(self, *types: str, timeout: float = 20.0) -> PhoneEvent:
        """The next event of one of ``types`` (other events are skipped)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"phone {self.user}: no {'/'.join(types)} in {timeout} s "
                                     f"(seen: {[e.type for e in self.history[-8:]]})")
            try:
                e = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if e.type in types:
                return e

    def drain(self) -> None:
        """Forget pending events (start of a scenario)."""
        with contextlib.suppress(queue.Empty):
            while True:
                self.events.get_nowait()

    def registered(self) -> bool:
        """Asterisk has this phone's contact (what counts, not the phone's own view)."""
        return f" {self.user}/sip:{self.user}" in self.pbx.cli(f"pjsip show aor {self.user}")

    def dial(self, number: str) -> None:
        self.command("dial", f"sip:{number}@127.0.0.1:{self.pbx.sip_port}")

    def answer(self) -> None:
        self.command("accept")

    def hangup(self) -> None:
        self.command("hangup")

    def hold(self) -> None:
        self.command("hold")

    def resume(self) -> None:
        self.command("resume")

    def dtmf(self, digits: str) -> None:
        for d in digits:
            self.command("sndcode", d)
            time.sleep(0.25)

    def stop(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ------------------------------------------------------------------------------ ccd

@dataclass
class Ccd:
    """ccd as an operator runs it: a config file, the CLI, ``ccd run`` as a process."""

    root: Path
    db_url: str
    pbx: Asterisk
    agi_port: int
    ami_port: int = 0  # where ccd connects to (a TcpProxy in front of Asterisk); 0 = direct
    web_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0

    def __post_init__(self) -> None:
        self.data = self.root / "ccd"
        self.data.mkdir(parents=True, exist_ok=True)
        self.config = self.data / "ccd.toml"
        self.write_config()

    def write_config(self, **extra: str) -> None:
        self.config.write_text(f"""data_dir = "{self.data}"

[ami]
host = "127.0.0.1"
port = {self.ami_port or self.pbx.ami_port}
username = "ccd"
secret = "ccdsecret"
ping_interval = 2.0
ping_timeout = 2.0
backoff_initial = 0.2
backoff_max = 1.0

[agi]
host = "127.0.0.1"
port = {self.agi_port}

[database]
url = "{self.db_url}"

[store]
flush_interval = 0.1

[recording]
dir = "{self.pbx.monitor}"

[web]
host = "127.0.0.1"
port = {self.web_port}
cookie_secure = false

[asterisk]
data_dir = "{self.pbx.root / 'data'}"

[log]
level = "INFO"
""")

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CCD_CONFIG"] = str(self.config)
        return env

    def cli(self, *args: str, ok: bool = True, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``ccd ARGS`` (exit code checked unless ``ok`` is False)."""
        r = subprocess.run([CCD, *args], capture_output=True, text=True, env=self.env,
                           input=input, timeout=timeout)
        if ok and r.returncode != 0:
            raise AssertionError(f"ccd {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
        return r

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def start(self, timeout: float = 60) -> None:
        self.runs += 1
        log = (self.data / f"ccd-run-{self.runs}.log").open("wb")
        self.proc = subprocess.Popen([CCD, "run"], stdout=log, stderr=subprocess.STDOUT,
                                     env=self.env, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_for(self._linked, timeout, "ccd run to connect to Asterisk", interval=0.2)

    def _linked(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"ccd run exited with {self.proc.returncode}: "
                                 f"{self.log_text()[-3000:]}")
        r = self.cli("status", "--json", ok=False)
        if r.returncode != 0:
            return False
        st = json.loads(r.stdout)
        return st["ami"]["state"] == "connected" and int(st["resyncs"]) >= 1

    def log_text(self) -> str:
        path = self.data / f"ccd-run-{self.runs}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)

    # database
    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with psycopg.connect(self.db_url, row_factory=psycopg.rows.dict_row) as conn:
            return conn.execute(sql, params).fetchall()

    def row(self, sql: str, *params: Any) -> dict[str, Any] | None:
        found = self.rows(sql, *params)
        return found[0] if found else None

    def ended_call(self, call_id: str, timeout: float = 30) -> dict[str, Any]:
        """The stored record of a call once ccd has closed it."""
        return wait_for(lambda: self.row("SELECT * FROM calls WHERE call_id = %s AND NOT open",
                                         call_id), timeout, f"call {call_id} stored as ended")


class TcpProxy:
    """A loopback TCP proxy between ccd and Asterisk's AMI, to cut the link on purpose."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = int(self.listener.getsockname()[1])
        self.blocked = threading.Event()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.blocked.is_set():
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                client.close()  # a reset: Asterisk is unreachable
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self, block: bool = True) -> None:
        """Drop every connection (and refuse new ones while ``block``)."""
        if block:
            self.blocked.set()
        with self._lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()

    def restore(self) -> None:
        self.blocked.clear()

    def stop(self) -> None:
        self.cut()
        self.listener.close()


class PanelUser:
    """A panel user as a browser is one: HTTP login (CSRF), then a Socket.IO websocket that
    heartbeats and records every event (screen pops, call and agent updates)."""

    EVENTS = ("hello", "pop", "call", "agent_state", "queues", "stats", "pbx")

    def __init__(self, base: str, username: str, password: str) -> None:
        import requests
        import socketio

        self.base = base
        self.http = requests.Session()
        page = self.http.get(base + "/login", timeout=10)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None, page.text[:300]
        r = self.http.post(base + "/login", data={"username": username, "password": password,
                                                 "csrf_token": token.group(1)}, timeout=10)
        assert r.status_code == 200, f"login {username}: {r.status_code}"
        meta = re.search(r'<meta name="csrf-token" content="([^"]+)"',
                         self.http.get(base + "/tickets", timeout=10).text)
        assert meta is not None
        self.csrf = meta.group(1)
        self.got: list[tuple[float, str, Any]] = []
        self._cv = threading.Condition()
        self._stopped = False
        self.sio = socketio.Client(reconnection=True)
        for name in self.EVENTS:
            self.sio.on(name, self._recorder(name))
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
        self.sio.connect(base, headers={"Cookie": cookie}, transports=["websocket"],
                         wait_timeout=10)
        threading.Thread(target=self._beats, daemon=True).start()

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(data: Any = None) -> None:
            with self._cv:
                self.got.append((time.time(), name, data))
                self._cv.notify_all()
        return record

    def _beats(self) -> None:
        # a browser keeps beating across reconnects (ccd restarted): so does this one; a
        # silent panel would rightly get its agent paused (connection-lost)
        while not self._stopped:
            if self.sio.connected:
                with contextlib.suppress(Exception):
                    self.sio.emit("heartbeat", {})
            time.sleep(2.0)

    def wait(self, name: str, pred: Callable[[Any], bool] = lambda _: True,
             timeout: float = 15.0, since: float = 0.0) -> tuple[float, Any]:
        """(time received, data) of the first ``name`` event matching ``pred``."""
        end = time.monotonic() + timeout
        with self._cv:
            while True:
                for t, n, d in self.got:
                    if n == name and t >= since and pred(d):
                        return t, d
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {name} event in {timeout} s "
                                         f"(got {[n for _, n, _ in self.got[-10:]]})")
                self._cv.wait(left)

    def post(self, path: str, payload: Any = None) -> Any:
        return self.http.post(self.base + path, json=payload or {}, timeout=20,
                              headers={"X-CSRFToken": self.csrf})

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(Exception):
            self.sio.disconnect()


@contextlib.contextmanager
def running(*things: Any) -> Iterator[None]:
    """Stop ``things`` (anything with ``stop()``) at the end, whatever happens."""
    try:
        yield
    finally:
        for t in reversed(things):
            with contextlib.suppress(Exception):
                t.stop()
