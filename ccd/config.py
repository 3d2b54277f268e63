"""ccd's configuration: one TOML file plus ``CCD_<SECTION>_<KEY>`` environment overrides.

Load order: built-in defaults, then the file (``--config`` or ``CCD_CONFIG``), then
the environment (``CCD_AMI_HOST=10.0.0.5``, ``CCD_DATABASE_URL=postgresql://...``).
Everything is validated at start; an error names the key and what is wrong.
Secrets are :class:`pydantic.SecretStr` and print as ``**********``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AmiConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str = "ccd"
    secret: SecretStr = SecretStr("ccdsecret")
    connect_timeout: float = Field(5.0, gt=0)
    ping_interval: float = Field(5.0, gt=0, description="seconds between keep-alive Pings")
    ping_timeout: float = Field(3.0, gt=0, description="no Pong within this = link dead")
    action_timeout: float = Field(10.0, gt=0)
    boot_timeout: float = Field(60.0, gt=0, description="a resync that finds Asterisk "
                                "booting waits this long for FullyBooted")
    backoff_initial: float = Field(0.5, gt=0)
    backoff_max: float = Field(30.0, gt=0)


class AgiConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(4573, ge=0, le=65535)
    header_timeout: float = Field(5.0, gt=0)
    fallback_context: str = "ccd-fallback"


class IvrConfig(_Section):
    flows_dir: Path | None = Field(None, description="empty: the built-in flows")
    default_flow: str = "support"
    default_country: str = Field("US", pattern=r"^[A-Z]{2}$")


class DatabaseConfig(_Section):
    url: str = Field("", description="empty: start an embedded PostgreSQL under data_dir")
    pool_min: int = Field(1, ge=1)
    pool_max: int = Field(10, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (or empty for the embedded server)")
        return v


class StoreConfig(_Section):
    batch_size: int = Field(200, ge=1)
    flush_interval: float = Field(0.5, gt=0)
    retry_interval: float = Field(2.0, gt=0)


class ModelSection(_Section):
    inbound_contexts: list[str] = ["from-trunk"]
    outbound_contexts: list[str] = ["ccd-outbound", "outbound-msg"]
    default_wrapup: float = Field(0.0, ge=0)
    wrapup: dict[str, float] = Field(default_factory=dict)


class DialplanConfig(_Section):
    """Where ccd sends calls in the dialplan (must match asterisk-conf/extensions.conf)."""

    agent_context: str = "agents"  # exten = agent extension
    queue_context: str = "ccd-queues"  # exten = queue name -> Queue()
    outbound_context: str = "ccd-outbound"  # exten = number to dial out (click-to-dial)
    transfer_out_context: str = "ccd-transfer-out"  # blind transfer of a caller to a number
    consult_out_context: str = "ccd-consult-out"  # attended transfer: the agent calls it
    hold_context: str = "ccd-hold"  # the panel's hold: the agent waits on hold_exten there
    hold_exten: str = Field("70", pattern=r"^[0-9*#]+$")  # dialled as DTMF: digits only
    spy_context: str = "ccd-spy"  # supervisor listen / whisper / barge
    confirm_timeout: float = Field(4.0, gt=0, description="seconds a hold/transfer waits "
                                   "for Asterisk to confirm it")


class AsteriskConfig(_Section):
    """Where Asterisk keeps what ccd installs and checks (on the PBX host, or shared)."""

    data_dir: Path = Field(Path("/var/lib/asterisk"),
                           description="Asterisk's astdatadir: sounds/ and moh/ (prompts)")
    check_prompts: bool = Field(True, description="refuse to start when a prompt is missing")

    @property
    def sounds_dir(self) -> Path:
        return self.data_dir / "sounds"


class RecordingConfig(_Section):
    dir: Path = Field(Path("var/recordings"),
                      description="where Asterisk writes recordings (shared with ccd)")
    format: Literal["wav", "wav49", "gsm"] = "wav"
    retention_hour: int = Field(3, ge=0, le=23, description="daily retention job, UTC hour")
    dir_mode: str = Field("0750", description="octal mode of the recording directories ccd "
                          "creates (2770 when Asterisk and ccd are different users sharing a "
                          "group, see README); never any access for others")

    @field_validator("dir_mode")
    @classmethod
    def _dir_mode(cls, v: str) -> str:
        v = v.strip()
        if not v or len(v) > 5 or any(c not in "01234567" for c in v.removeprefix("0o")):
            raise ValueError("must be an octal mode such as 0750 or 2770")
        mode = int(v.removeprefix("0o"), 8)
        if mode & 0o007:
            raise ValueError("recordings must not be accessible to others (last digit 0)")
        if mode & 0o700 != 0o700:
            raise ValueError("ccd needs rwx on its own directories (first digit 7)")
        return v

    @property
    def dir_mode_bits(self) -> int:
        """:attr:`dir_mode` as an integer."""
        return int(self.dir_mode.removeprefix("0o"), 8)


class WebConfig(_Section):
    enabled: bool = True
    optional: bool = Field(False, description="a taken host:port: warn and run without the "
                           "panel (default: ccd run exits 2 before starting anything)")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    secret_key: SecretStr = SecretStr("")  # empty: generated into <data_dir>/web.key
    cookie_secure: bool = Field(True, description="Secure session cookies (HTTPS); the "
                                "plain-http localhost demo turns it off")
    heartbeat_timeout: float = Field(30.0, gt=0,
                                     description="panel silent this long = paused")
    message_queue: str = Field("", description="redis://... to run several panel workers")
    lockout_attempts: int = Field(5, ge=1)
    lockout_minutes: int = Field(15, ge=1)
    pool_max: int = Field(8, ge=1, description="database connections of the panel")


class ApiConfig(_Section):
    """The daemon's local control API (a Unix socket), used by the CLI."""

    socket: Path | None = Field(None, description="default: <data_dir>/ccd.sock")
    token: SecretStr = SecretStr("")  # default: generated into <data_dir>/api.token


class MetricsConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535, description="0 = no Prometheus endpoint")


class RuntimeConfig(_Section):
    heap_settle_interval: float = Field(
        600.0, ge=0, description="seconds between heap settles (ccd.heap); 0 = at start only")


class LogConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Config(_Section):
    data_dir: Path = Path("var")
    ami: AmiConfig = AmiConfig()
    agi: AgiConfig = AgiConfig()
    ivr: IvrConfig = IvrConfig()
    database: DatabaseConfig = DatabaseConfig()
    store: StoreConfig = StoreConfig()
    model: ModelSection = ModelSection()
    dialplan: DialplanConfig = DialplanConfig()
    asterisk: AsteriskConfig = AsteriskConfig()
    recording: RecordingConfig = RecordingConfig()
    web: WebConfig = WebConfig()
    api: ApiConfig = ApiConfig()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def api_socket(self) -> Path:
        return self.api.socket or self.data_dir / "ccd.sock"

    def model_config_obj(self):
        """The live model's settings."""
        from ccd.model.live import ModelConfig

        m, dp = self.model, self.dialplan
        return ModelConfig(inbound_contexts=frozenset(m.inbound_contexts),
                           outbound_contexts=frozenset(m.outbound_contexts),
                           wrapup=dict(m.wrapup), default_wrapup=m.default_wrapup,
                           hold_line=f"Local/{dp.hold_exten}@{dp.hold_context}-")


SECTIONS = {name: field.annotation for name, field in Config.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)}


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "CCD_DATA_DIR" in env:
        out["data_dir"] = env["CCD_DATA_DIR"]
    for section, model in SECTIONS.items():
        for key in model.model_fields:
            name = f"CCD_{section}_{key}".upper()
            if name in env:
                value: Any = env[name]
                if model.model_fields[key].annotation in (list[str],):
                    value = [v.strip() for v in value.split(",") if v.strip()]
                out.setdefault(section, {})[key] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate the configuration; raises :class:`ConfigError` with the key."""
    env = os.environ if env is None else env
    path = path or env.get("CCD_CONFIG") or None
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    _merge(data, _env_overrides(env))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(x) for x in err["loc"])
            problems.append(f"{key}: {err['msg']}")
        where = f" in {path}" if path else ""
        raise ConfigError(f"invalid configuration{where}: " + "; ".join(problems)) from None


def redact_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db`` for logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
