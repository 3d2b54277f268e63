"""Which Asterisk modules are loaded, and so which dialplan applications exist.

Read from ``modules.conf`` the way Asterisk 22's loader reads it (``main/loader.c``):

* ``autoload = yes``: every module the simulator knows is loaded, except ``noload`` ones;
  ``autoload = no``: only the ``load`` / ``require`` / ``preload`` lines;
* a module name matches with or without ``.so``, case-insensitively (``ModuleCheck`` and
  ``module load|unload`` accept both);
* a module that needs its configuration file declines to load without it (``app_amd``
  without ``amd.conf``: the real capture F7 shows ``No application 'AMD'`` on such a PBX);
* without ``modules.conf`` a real Asterisk does not start; the simulator's test
  configurations that have none load every module it knows.

Applications of the PBX core (``pbx_builtins.c``, ``pbx_variables.c``) always exist; any
other application exists only while the module that registers it is loaded. The PBX then
behaves like Asterisk for an application that does not exist: ``No application 'AMD' for
extension (ccd-campaign, s, 3)``, no Newexten, and the channel is hung up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccd.sim.pbxconf import PbxConfig

log = logging.getLogger(__name__)

#: applications built into the PBX core (no module): Asterisk 22's builtins[] table and
#: pbx_variables.c
CORE_APPS = frozenset(a.lower() for a in (
    "Answer", "BackGround", "Busy", "Congestion", "ExecIfTime", "Goto", "GotoIf",
    "GotoIfTime", "Hangup", "Incomplete", "NoOp", "Proceeding", "Progress", "RaiseException",
    "Ringing", "SayAlpha", "SayAlphaCase", "SayDigits", "SayMoney", "SayNumber", "SayOrdinal",
    "SayPhonetic", "Wait", "WaitDigit", "WaitExten", "Set", "MSet"))

#: module -> the applications it registers (from the Asterisk 22 source), for the modules
#: whose applications the simulator runs or ccd's dialplan uses
MODULE_APPS: dict[str, tuple[str, ...]] = {
    "app_amd": ("AMD",),
    "app_queue": ("Queue", "AddQueueMember", "RemoveQueueMember", "PauseQueueMember",
                  "UnpauseQueueMember", "QueueLog", "QueueUpdate"),
    "app_dial": ("Dial", "RetryDial"),
    "app_playback": ("Playback",),
    "app_mixmonitor": ("MixMonitor", "StopMixMonitor"),
    "app_chanspy": ("ChanSpy", "ExtenSpy"),
    "app_read": ("Read",),
    "app_echo": ("Echo",),
    "app_verbose": ("Verbose", "Log"),
    "app_exec": ("Exec", "TryExec", "ExecIf"),
    "app_stack": ("Gosub", "GosubIf", "Return", "StackPop"),
    "app_senddtmf": ("SendDTMF",),
    "app_userevent": ("UserEvent",),
    "app_originate": ("Originate",),
    "app_transfer": ("Transfer",),
    "app_voicemail": ("VoiceMail", "VoiceMailMain", "MailboxExists", "VMAuthenticate",
                      "VMSayName"),
    "app_audiosocket": ("AudioSocket",),
    "res_agi": ("AGI", "EAGI", "DeadAGI"),
    "res_musiconhold": ("MusicOnHold", "WaitMusicOnHold", "StartMusicOnHold",
                        "StopMusicOnHold"),
}

#: modules without applications the simulator also knows (what ``autoload`` finds)
OTHER_MODULES = (
    "pbx_config", "chan_pjsip", "res_pjsip", "res_pjsip_session", "res_pjsip_pubsub",
    "res_pjsip_notify", "res_pjsip_registrar", "res_pjsip_authenticator_digest",
    "res_pjsip_endpoint_identifier_ip", "res_pjsip_endpoint_identifier_user",
    "res_pjsip_sdp_rtp", "res_pjsip_caller_id", "res_pjsip_refer", "res_pjproject",
    "res_sorcery_config", "res_sorcery_memory", "res_sorcery_astdb", "res_rtp_asterisk",
    "res_timing_timerfd", "res_speech", "res_manager_devicestate", "res_audiosocket",
    "res_clioriginate", "res_mutestream", "bridge_simple", "bridge_native_rtp",
    "bridge_softmix", "bridge_holding", "bridge_builtin_features",
    "bridge_builtin_interval_features", "func_strings", "func_logic", "func_callerid",
    "func_channel", "func_cut", "func_env", "func_global", "func_math", "func_dialplan",
    "func_hangupcause", "func_devstate", "func_extstate", "func_groupcount",
    "func_periodic_hook", "func_timeout", "func_uri", "func_sprintf", "codec_ulaw",
    "codec_alaw", "codec_a_mu", "codec_resample", "format_wav", "format_pcm", "format_sln",
)

#: modules that decline to load when their configuration file is missing
NEEDS_CONFIG = {"app_amd": "amd.conf"}

DESCRIPTIONS = {"app_amd": "Answering Machine Detection Application",
                "app_queue": "True Call Queueing", "app_dial": "Dialing Application",
                "app_playback": "Sound File Playback Application",
                "res_agi": "Asterisk Gateway Interface (AGI)"}

_APP_MODULE = {a.lower(): m for m, apps in MODULE_APPS.items() for a in apps}
KNOWN = frozenset(MODULE_APPS) | frozenset(OTHER_MODULES)


def base_name(name: str) -> str:
    """``app_amd.so`` / ``APP_AMD`` -> ``app_amd`` (Asterisk's resource_name_match)."""
    name = name.strip()
    if name.lower().endswith(".so"):
        name = name[:-3]
    return name.lower()


def module_of(app: str) -> str | None:
    """The module registering ``app`` ('' for the PBX core, None if unknown)."""
    low = app.strip().lower()
    if low in CORE_APPS:
        return ""
    return _APP_MODULE.get(low)


@dataclass(slots=True)
class Modules:
    """The loaded modules of one (simulated) Asterisk run."""

    loaded: set[str] = field(default_factory=set)
    #: modules this Asterisk has on disk (what ``module load`` can load)
    installed: set[str] = field(default_factory=set)
    config_dir: Path | None = None

    @classmethod
    def from_config(cls, cfg: PbxConfig) -> Modules:
        """The modules Asterisk loads at boot from ``cfg``'s ``modules.conf``."""
        d = Path(cfg.directory) if cfg.directory else None
        conf = cfg.files.get("modules.conf")
        section = conf.section("modules") if conf is not None else None
        out = cls(installed=set(KNOWN), config_dir=d)
        explicit: set[str] = set()
        if section is None:
            wanted = set(KNOWN)
        else:
            for key, value in section.items:
                k = key.lower()
                if k in ("load", "require", "preload", "preload-require"):
                    explicit.add(base_name(value))
                    out.installed.add(base_name(value))
            wanted = set(explicit)
            if (section.get("autoload") or "").strip().lower() in ("yes", "true", "1", "on"):
                wanted |= KNOWN
            for value in section.getall("noload"):
                wanted.discard(base_name(value))
        for name in sorted(wanted):
            out._load(name, loud=name in explicit)
        return out

    def _declines(self, name: str) -> str:
        need = NEEDS_CONFIG.get(name)
        if need and self.config_dir is not None and not (self.config_dir / need).exists():
            return f"Configuration file {need} missing."
        return ""

    def _load(self, name: str, loud: bool = True) -> bool:
        why = self._declines(name)
        if why:  # Asterisk logs an ERROR; quieter for modules only autoload would load
            log.log(logging.ERROR if loud else logging.INFO, "%s: %s Declined to load.",
                    name, why)
            return False
        self.loaded.add(name)
        return True

    def is_loaded(self, name: str) -> bool:
        """``ModuleCheck``: is the module loaded (name with or without ``.so``)?"""
        return bool(name.strip()) and base_name(name) in self.loaded

    def load(self, name: str) -> bool:
        """``module load``: False if it is already loaded, unknown or declines."""
        base = base_name(name)
        if not base or base in self.loaded or base not in self.installed:
            return False
        return self._load(base)

    def unload(self, name: str) -> bool:
        """``module unload``: False if it was not loaded."""
        base = base_name(name)
        if base not in self.loaded:
            return False
        self.loaded.discard(base)
        return True

    def has_app(self, app: str) -> bool:
        """Does the application exist now? Core ones always; others while their module is
        loaded; applications of modules the simulator does not know are assumed present."""
        mod = module_of(app)
        if mod is None:
            return True
        return mod == "" or mod in self.loaded
