"""Settings shared by every service: environment variables with the BRANCH_ prefix."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_PORTS = {
    "directory": 50051,
    "onsite": 50052,
    "remote": 50053,
    "vip": 50054,
    "research": 50055,
}


class ConfigError(RuntimeError):
    """A BRANCH_ variable is missing or malformed; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRANCH_", extra="ignore")

    data_dir: Path = Field(Path(".branch"), description="SQLite files, token secret, NATS store")
    host: str = Field("127.0.0.1", description="address the gRPC servers bind")
    nats_url: str = Field("", description="NATS server; empty in embedded mode starts one")
    database_url: str = Field(
        "",
        description="SQLAlchemy async URL; '{service}' is replaced by the service name. "
        "Empty: sqlite+aiosqlite:///<data_dir>/<service>.db",
    )
    token_secret: str = Field("", description="HS256 signing key; empty: <data_dir>/token_secret")
    token_ttl_seconds: int = Field(12 * 3600, gt=0)
    timezone: str = Field("Asia/Shanghai", description="the branch's time zone, for display")
    log_level: str = Field("info")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus HTTP port; 0 is off")
    shutdown_grace_seconds: float = Field(10.0, gt=0)
    outbox_poll_seconds: float = Field(1.0, gt=0)
    consumer_max_deliver: int = Field(5, ge=1, description="tries before an event is parked")
    consumer_ack_wait_seconds: float = Field(
        30.0, gt=0, description="an unacknowledged event is redelivered after this long"
    )
    nats_stream_replicas: int = Field(
        1, ge=1, le=5, description="replicas of the BRANCH stream; 3 on a NATS cluster (R3)"
    )
    otlp_endpoint: str = Field(
        "", description="host:port of an OTLP/gRPC collector to export traces to; empty: off"
    )
    directory_port: int = SERVICE_PORTS["directory"]
    onsite_port: int = SERVICE_PORTS["onsite"]
    remote_port: int = SERVICE_PORTS["remote"]
    vip_port: int = SERVICE_PORTS["vip"]
    research_port: int = SERVICE_PORTS["research"]
    directory_addr: str = Field("", description="host:port of directory; empty: host and port")
    onsite_addr: str = ""
    remote_addr: str = ""
    vip_addr: str = ""
    research_addr: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except Exception as exc:  # ZoneInfoNotFoundError or a malformed key
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be debug, info, warning or error")
        return value.lower()

    def port(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    def address(self, service: str) -> str:
        return getattr(self, f"{service}_addr", "") or f"{self.host}:{self.port(service)}"

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url.replace("{service}", service)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def signing_key(self) -> str:
        if self.token_secret:
            return self.token_secret
        path = self.data_dir / "token_secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


def load_settings(**overrides: object) -> Settings:
    """Read the environment; a bad value raises ConfigError naming the BRANCH_ variable."""
    return load_env(Settings, **overrides)


S = TypeVar("S", bound=BaseSettings)


def load_env(cls: type[S], **overrides: object) -> S:
    """Read a settings class from the environment; a bad value raises ConfigError naming the
    variable (the class's env_prefix, e.g. BRANCH_VIP_, plus the field), one line each."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        lines = []
        for err in exc.errors():
            name = prefix + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"{name}: {err['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
