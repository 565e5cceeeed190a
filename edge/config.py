"""The agent's configuration file (TOML or YAML), validated before anything starts.

A bad file stops the agent with the file, the key and the reason. Sections of input pipelines
(``rfid``, ``cameras``, ...) are declared by the pipelines themselves (edge/pipelines.py).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from contract import load_public_key, validate_identifier
from edge.pipelines import load_pipelines


class ConfigError(Exception):
    def __init__(self, file: Path, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file, self.key, self.reason = file, key, reason


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(_Section):
    url: str = "mqtt://127.0.0.1:1883"
    # Other nodes of a broker cluster (NATS's MQTT listeners, docs/scaling.md): after a lost
    # connection the publisher tries the next URL in turn, ``url`` first.
    failover_urls: tuple[str, ...] = ()
    username: str | None = None
    password: str | None = None
    client_id: str | None = None  # default: "{site}.{gateway}", stable for a persistent session
    keepalive_s: int = Field(30, ge=5, le=3600)
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    in_flight: int = Field(64, ge=1, le=1000)  # unacknowledged QoS 1 publishes at once
    # How long a broker-acknowledged message may wait for the cloud's confirmation, while later
    # ones are confirmed, before it is presumed lost in the broker and sent again.
    confirm_grace_s: float = Field(30.0, ge=1.0)
    # With no confirmation at all for this long, resend everything unconfirmed (then doubling).
    confirm_silence_s: float = Field(120.0, ge=1.0)

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, url: str) -> str:
        return _check_mqtt_url(url)

    @field_validator("failover_urls")
    @classmethod
    def _mqtt_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_mqtt_url(url) for url in urls)

    @property
    def urls(self) -> tuple[str, ...]:
        """Every broker to try, in order."""
        return (self.url, *(u for u in self.failover_urls if u != self.url))

    def at(self, url: str) -> BrokerConfig:
        """These settings pointed at another node of the cluster."""
        return self.model_copy(update={"url": url})

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"


def _check_mqtt_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("must look like mqtt://host:1883 or mqtts://host:8883")
    return url


class OutboxConfig(_Section):
    max_mb: float = Field(256, gt=0)
    fsync: bool = False  # True survives power loss too, at one fsync per message


class LocalAlarmConfig(_Section):
    """The site's own broker, where alarms are published for a siren, PLC or GPIO bridge."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)


class AlertingConfig(_Section):
    """The gateway's departure decisions (edge/alerting.py, docs/alerts.md): how long an
    uncorroborated absence of a lot's tag waits before it is theft, by default and per lot."""

    absence_window_s: float = Field(300, ge=0, le=86400)
    lots: dict[str, float] = Field(default_factory=dict, max_length=10000)  # lot -> seconds

    @field_validator("lots")
    @classmethod
    def _windows(cls, value: dict[str, float]) -> dict[str, float]:
        for lot, seconds in value.items():
            if not 0 < len(lot) <= 64 or not 0 <= seconds <= 86400:
                raise ValueError(f"lot {lot[:64]!r}: absence window must be 0-86400 s")
        return value


class MetricsConfig(_Section):
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=0, le=65535)  # None: no /metrics endpoint


class AgentCore(_Section):
    site: str
    gateway: str
    key_file: Path
    # The cloud's command public key (base64, as `python -m cloud command-key` prints it): every
    # cmd/ message must be signed by it. Default: cloud.pub beside key_file.
    cloud_public_key_file: Path | None = None
    data_dir: Path = Path("var/edge")
    broker: BrokerConfig = BrokerConfig()
    outbox: OutboxConfig = OutboxConfig()
    metrics: MetricsConfig = MetricsConfig()
    # The cloud's correlation rules run here too, on what this gateway emits (edge/alerting).
    local_rules: bool = True
    local_alarm: LocalAlarmConfig | None = None
    alerting: AlertingConfig = AlertingConfig()
    health_interval_s: float = Field(30, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("site", "gateway")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return validate_identifier(value, "identifier")


def _agent_model() -> type[AgentCore]:
    sections: dict[str, Any] = {
        name: (pipeline.config_model | None, None) for name, pipeline in load_pipelines().items()
    }
    return create_model("AgentConfig", __base__=AgentCore, **sections)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(path, "-", f"cannot read: {err.strerror}") from err
    try:
        if path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError(path, "-", "config must be .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ConfigError(path, "-", f"not valid {path.suffix[1:].upper()}: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(path, "-", "top level must be a table/mapping")
    return data


def load_config(path: Path) -> AgentCore:
    """Read and validate; relative paths in the file are relative to the file."""
    data = _read(path)
    try:
        config = _agent_model().model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "-"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise ConfigError(path, key, f"{first['msg']}{more}") from None
    base = path.parent
    key_file = (base / config.key_file).resolve()
    cloud_key = (base / config.cloud_public_key_file if config.cloud_public_key_file
                 else key_file.parent / "cloud.pub").resolve()
    updates = {
        "key_file": key_file,
        "cloud_public_key_file": cloud_key,
        "data_dir": (base / config.data_dir).resolve(),
    }
    config = config.model_copy(update=updates)
    if not config.key_file.is_file():
        hint = "create it with: python -m edge keygen"
        raise ConfigError(path, "key_file", f"{config.key_file} does not exist ({hint})")
    try:
        load_public_key(cloud_key.read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        hint = "write it with: python -m cloud command-key --out cloud.pub"
        why = getattr(err, "strerror", None) or err
        raise ConfigError(path, "cloud_public_key_file", f"{cloud_key}: {why} ({hint})") from None
    return config


def cloud_command_key(config: AgentCore) -> Ed25519PublicKey:
    """The key every cmd/ message must verify against (load_config checked it is readable)."""
    path = config.cloud_public_key_file or config.key_file.parent / "cloud.pub"
    return load_public_key(path.read_text(encoding="ascii").strip())
