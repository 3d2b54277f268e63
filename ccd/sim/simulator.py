"""The simulated PBX as one object: engine + AMI server + fault injection + control port.

Usage in tests::

    async with Simulator(SimOptions(config_dir=..., ami_port=0, time_scale=20)) as sim:
        call = sim.call("2000", "5551000")
        ...
        await sim.restart()

Faults: :meth:`Simulator.drop_links`, :meth:`Simulator.restart` (Shutdown event, links
closed, port refused while down, then a boot: the port open with only core actions
answered, FullyBooted with Uptime 0, channels and dynamic queue members gone),
:meth:`Simulator.shutdown` / :meth:`Simulator.boot`, :meth:`Simulator.stall` and
:meth:`Simulator.slow`. The same are reachable from another process through the control
port (:mod:`ccd.sim.control`) and signals (``ccd sim``: SIGUSR1 drops links, SIGUSR2
restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ccd.sim.ami.server import AmiServer
from ccd.sim.channel import Channel
from ccd.sim.clock import SimClock
from ccd.sim.control import ControlServer
from ccd.sim.engine import AgiRunner, Engine, EngineSettings
from ccd.sim.events import SYSTEM
from ccd.sim.local import LocalOptimizer
from ccd.sim.pbxconf import PbxConfig, load_pbx_config
from ccd.sim.phones import Phone, PhoneBook, PhoneProfile
from ccd.sim.queues import QueueManager

log = logging.getLogger(__name__)


def default_config_dir() -> Path:
    """``asterisk-conf/`` of the source tree (next to the ``ccd`` package)."""
    return Path(__file__).resolve().parent.parent.parent / "asterisk-conf"


@dataclass
class SimOptions:
    """How to run the simulator. Ports: None = from manager.conf, 0 = any free port."""

    config_dir: Path = field(default_factory=default_config_dir)
    ami_host: str | None = None
    ami_port: int | None = None
    agi: str = ""  # HOST:PORT to send every agi:// request to (ccd's FastAGI server)
    control_host: str = "127.0.0.1"
    control_port: int | None = None  # None: no control port
    time_scale: float = 1.0
    start_time: float | None = None  # simulated epoch at start (None: the wall clock now)
    recording_root: Path | None = None
    phones: dict[str, PhoneProfile] = field(default_factory=dict)
    default_phone: PhoneProfile = field(default_factory=PhoneProfile)
    agi_runner: AgiRunner | None = None
    auth_fail_delay: float = 1.0  # simulated seconds Asterisk waits before "failed"
    boot_uptime: float = 0.0  # pretend Asterisk has been up this long at start
    #: simulated seconds a boot takes from the AMI port opening to FullyBooted (real
    #: Asterisk 22: ~0.1-0.2 s, during which module actions are "Invalid/unknown command")
    boot_time: float = 0.2
    contact_delay: float = 1.0  # simulated seconds until contacts re-qualify after a boot
    settings: EngineSettings = field(default_factory=EngineSettings)


class Simulator:
    """A running simulated Asterisk."""

    def __init__(
        self, options: SimOptions | None = None, *, config: PbxConfig | None = None
    ) -> None:
        self.options = options or SimOptions()
        self.config = config or load_pbx_config(self.options.config_dir)
        self.clock = SimClock(self.options.time_scale, self.options.start_time)
        self.engine = self._build_engine(self.options.boot_uptime)
        manager = self.config.manager
        general = self.config.files["manager.conf"].section("general")
        authlimit = int((general.get("authlimit", "50") if general else "50") or 50)
        authtimeout = float((general.get("authtimeout", "30") if general else "30") or 30)
        host = self.options.ami_host or manager.bindaddr or "127.0.0.1"
        port = manager.port if self.options.ami_port is None else self.options.ami_port
        self.ami = AmiServer(
            manager,
            self.engine,
            host,
            port,
            authlimit=authlimit,
            authtimeout=authtimeout,
            auth_fail_delay=self.clock.real(self.options.auth_fail_delay),
        )
        self.ami.system_hooks = {"restart": self.restart, "stop": self.shutdown}
        self.control: ControlServer | None = None
        self.down = False
        #: called with the new engine after every (re)boot
        self.boot_hooks: list[Callable[[Engine], None]] = []
        self._lifecycle = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._boot_release = asyncio.Event()

    # ------------------------------------------------------------------ building

    def _build_engine(self, uptime: float = 0.0) -> Engine:
        settings = self.options.settings
        settings.agi_override = self.options.agi or settings.agi_override
        settings.recording_root = self.options.recording_root or settings.recording_root
        engine = Engine(self.config, self.clock, settings)
        engine.boot_time = engine.reload_time = self.clock.now() - uptime
        engine.agi_runner = self.options.agi_runner
        engine.phones = PhoneBook(
            engine,
            {k: replace(v) for k, v in self.options.phones.items()},
            self.options.default_phone,
        )
        engine.queues = QueueManager(engine)
        for phone in engine.phones:
            engine.devices[f"PJSIP/{phone.name}"] = engine.device_state(f"PJSIP/{phone.name}")
        engine.queues.init_status()
        LocalOptimizer(engine)
        return engine

    # ------------------------------------------------------------------ lifecycle

    @property
    def ami_port(self) -> int:
        return self.ami.port

    @property
    def ami_host(self) -> str:
        return self.ami.host

    @property
    def control_port(self) -> int | None:
        return self.control.port if self.control is not None else None

    async def start(self) -> None:
        await self.ami.start()
        if self.options.control_port is not None:
            self.control = ControlServer(self, self.options.control_host, self.options.control_port)
            await self.control.start()
        log.info("simulator: AMI on %s:%s", self.ami.host, self.ami.port)

    async def stop(self) -> None:
        self._boot_release.set()  # a boot in progress ends now
        for task in list(self._background):
            task.cancel()
        if self.control is not None:
            await self.control.stop()
        await self.engine.shutdown()
        await self.ami.stop()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _background_task(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ faults

    def drop_links(self, abort: bool = False) -> int:
        """Close every AMI connection (Asterisk stays up and keeps listening)."""
        return self.ami.drop_all(abort)

    def stall(self, on: bool = True) -> None:
        """Stop answering (Ping included) and sending events, as a hung Asterisk does."""
        self.ami.faults.stalled = on
        self.ami.faults.stall_changed.set()

    def slow(self, delay: float) -> None:
        """Delay every frame written to AMI clients by ``delay`` real seconds."""
        self.ami.faults.delay = max(0.0, delay)

    async def shutdown(self, restart: bool = False) -> None:
        """``core stop now`` (or the first half of a restart): hang up, Shutdown, close."""
        async with self._lifecycle:
            await self._shutdown(restart)

    async def _shutdown(self, restart: bool) -> None:
        if self.down:
            return
        await self.engine.shutdown()
        self.engine.emit(
            "Shutdown",
            SYSTEM,
            [("Shutdown", "Cleanly"), ("Restart", "True" if restart else "False")],
        )
        await asyncio.sleep(0.01)
        await self.ami.stop_listening()
        self.ami.drop_all()
        self.down = True

    async def boot(self, boot_time: float | None = None) -> None:
        """Start Asterisk again: fresh state, Uptime 0, contacts re-qualify shortly after.

        As a real Asterisk does, the AMI port opens first and logins work, but actions of
        modules not loaded yet (app_queue, app_mixmonitor, res_pjsip_notify) answer
        ``Invalid/unknown command`` and a login gets no FullyBooted; ``boot_time``
        simulated seconds later (default :attr:`SimOptions.boot_time`, or
        :meth:`release_boot`) every module is loaded and ``FullyBooted`` goes to every
        session. Returns when fully booted.
        """
        async with self._lifecycle:
            await self._boot(boot_time)

    @property
    def booting(self) -> bool:
        """The AMI port is open but Asterisk is not fully booted yet."""
        return not self.down and not self.engine.fully_booted

    def release_boot(self) -> None:
        """End the current boot now (tests hold a boot open with a long ``boot_time``)."""
        self._boot_release.set()

    async def _boot(self, boot_time: float | None = None) -> None:
        if not self.down:
            return
        engine = self.engine = self._build_engine()
        engine.fully_booted = False
        self.ami.attach(engine)
        self._boot_release.clear()
        await self.ami.start()
        self.down = False
        wait = self.options.boot_time if boot_time is None else boot_time
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._boot_release.wait(), self.clock.real(wait))
        engine.fully_booted = True
        engine.emit(
            "FullyBooted",
            SYSTEM,
            [
                ("Status", "Fully Booted"),
                ("Uptime", str(engine.uptime())),
                ("LastReload", str(int(engine.clock.now() - engine.reload_time))),
            ],
        )
        for hook in list(self.boot_hooks):
            hook(engine)
        self._background_task(self._announce_contacts(engine))

    async def restart(self, downtime: float = 0.5, boot_time: float | None = None) -> None:
        """``core restart now``: Shutdown (Restart: True), down for ``downtime`` real
        seconds (connections refused), then boot (see :meth:`boot`)."""
        async with self._lifecycle:
            await self._shutdown(True)
            await asyncio.sleep(downtime)
            await self._boot(boot_time)

    async def _announce_contacts(self, engine: Engine) -> None:
        await self.clock.sleep(self.options.contact_delay)
        if engine is not self.engine:
            return
        for phone in engine.phones:
            if phone.profile.registered:
                phone.announce_contact()

    # ------------------------------------------------------------------ calls

    def phone(self, endpoint: str) -> Phone:
        phone = self.engine.phones.get(endpoint)
        if phone is None:
            raise KeyError(f"no PJSIP endpoint {endpoint!r} in pjsip.conf")
        return phone

    def call(
        self, from_endpoint: str, exten: str, *, caller: tuple[str, str] | None = None
    ) -> Channel:
        """The phone ``from_endpoint`` calls ``exten`` (its endpoint's context decides)."""
        return self.phone(from_endpoint).place_call(exten, caller=caller)
