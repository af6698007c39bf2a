"""Settings shared by every service: environment variables with the BRANCH_ prefix."""

from __future__ import annotations

import os
import secrets
import ssl
from pathlib import Path

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_PORTS = {
    "directory": 50051,
    "onsite": 50052,
    "remote": 50053,
    "vip": 50054,
    "research": 50055,
    "insight": 50056,
}


MIN_SECRET_LENGTH = 32
ASYNC_DRIVERS = {"postgresql+asyncpg", "sqlite+aiosqlite"}


NATS_SCHEMES = {"nats", "tls", "ws", "wss"}


class ConfigError(RuntimeError):
    """A BRANCH_ variable is missing or malformed; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRANCH_", extra="ignore")

    data_dir: Path = Field(Path(".branch"), description="SQLite files, service key, NATS store")
    host: str = Field("127.0.0.1", description="address the gRPC servers bind")
    nats_url: str = Field("", description="NATS server; empty in embedded mode starts one")
    database_url: str = Field(
        "",
        description="SQLAlchemy async URL; '{service}' is replaced by the service name. "
        "Empty: sqlite+aiosqlite:///<data_dir>/<service>.db",
    )
    token_ttl_seconds: int = Field(
        600, gt=0, le=3600, description="access token lifetime (staff and services)"
    )
    refresh_token_ttl_seconds: int = Field(
        12 * 3600, gt=0, le=30 * 86400, description="a sign-in lasts this long unless refreshed"
    )
    trusted_keys: str = Field(
        "", description="extra public keys to trust: a JWKS document, or a path to one "
        "(the test harness; later an external identity provider)"
    )
    keys_refresh_seconds: float = Field(
        60.0, gt=0, description="how often services fetch the directory's public keys again"
    )
    service_key: str = Field(
        "", description="directory only: the key service credentials derive from; empty: "
        "<data_dir>/service_key (made on first use)"
    )
    service_credential: str = Field(
        "", description="this service's credential for its own tokens (`branch "
        "service-credential NAME` prints it); empty: derived from the service key"
    )
    admin_password: str = Field(
        "", description="first password of the bootstrap admin (ADMIN); empty: generated "
        "into <data_dir>/admin.password. Either way it must be changed at first sign-in"
    )
    login_max_failures: int = Field(5, ge=1, description="failed sign-ins before a lockout")
    login_lockout_seconds: int = Field(900, gt=0)
    timezone: str = Field("Asia/Shanghai", description="the branch's time zone, for display")
    log_level: str = Field("info")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus HTTP port; 0 is off")
    shutdown_grace_seconds: float = Field(10.0, gt=0)
    health_check_seconds: float = Field(
        5.0, gt=0, description="how often health asks the database; NOT_SERVING while it fails"
    )
    database_pool_size: int = Field(
        10, ge=1, le=200,
        description="PostgreSQL: connections a service keeps for transactions (as many again "
        "in overflow, and half as many for single-row reads); mind the server's max_connections "
        "times the replicas",
    )
    sqlite_busy_timeout_seconds: float = Field(
        30.0, gt=0, description="SQLite: how long a write waits for another process's lock"
    )
    outbox_poll_seconds: float = Field(1.0, gt=0)
    consumer_max_deliver: int = Field(5, ge=1, description="tries before an event is parked")
    consumer_ack_wait_seconds: float = Field(
        30.0, gt=0, description="an unacknowledged event is redelivered after this long"
    )
    calendar_refresh_seconds: float = Field(
        60.0, gt=0, description="reload the business calendar's overrides from the directory "
        "this often (and at once on branch.directory.calendar.changed)"
    )
    nats_stream_replicas: int = Field(
        1, ge=1, le=5, description="replicas of the BRANCH stream; 3 on a NATS cluster (R3)"
    )
    otlp_endpoint: str = Field(
        "", description="host:port of an OTLP/gRPC collector to export traces to; empty: off"
    )
    directory_port: int = Field(SERVICE_PORTS["directory"], ge=1, le=65535)
    onsite_port: int = Field(SERVICE_PORTS["onsite"], ge=1, le=65535)
    remote_port: int = Field(SERVICE_PORTS["remote"], ge=1, le=65535)
    vip_port: int = Field(SERVICE_PORTS["vip"], ge=1, le=65535)
    research_port: int = Field(SERVICE_PORTS["research"], ge=1, le=65535)
    insight_port: int = Field(SERVICE_PORTS["insight"], ge=1, le=65535)
    console_port: int = Field(8080, ge=1, le=65535, description="the staff console's HTTP port")
    console_session_idle_seconds: int = Field(
        1800, gt=0, description="console: a sign-in unused this long ends (idle expiry)")
    console_session_max_seconds: int = Field(
        12 * 3600, gt=0, description="console: a sign-in ends this long after it began "
        "(absolute expiry), used or not")
    directory_addr: str = Field("", description="host:port of directory; empty: host and port")
    onsite_addr: str = ""
    remote_addr: str = ""
    vip_addr: str = ""
    research_addr: str = ""
    insight_addr: str = ""
    tls_cert_file: str = Field(
        "", description="PEM certificate chain this process serves (and shows to peers that "
        "require client certificates); empty: plaintext")
    tls_key_file: str = Field("", description="PEM private key of BRANCH_TLS_CERT_FILE")
    tls_ca_file: str = Field(
        "", description="PEM CA bundle; set: peers are called over TLS and their certificates "
        "verified against it (and client certificates, with BRANCH_TLS_CLIENT_AUTH)")
    tls_client_auth: bool = Field(
        False, description="require a client certificate signed by BRANCH_TLS_CA_FILE (mTLS)")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except Exception as exc:  # ZoneInfoNotFoundError or a malformed key
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("service_key")
    @classmethod
    def _long_secret(cls, value: str) -> str:
        if value and len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters (service key), "
                             f"got {len(value)}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value:
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value.replace("{service}", "directory"))
        except ArgumentError:
            raise ValueError("not a database URL (postgresql+asyncpg://user:pw@host:5432/"
                             "branch_{service} or sqlite+aiosqlite:///path/{service}.db)") from None
        if url.drivername not in ASYNC_DRIVERS:
            raise ValueError(f"driver {url.drivername!r} not supported; use "
                             + " or ".join(sorted(ASYNC_DRIVERS)))
        if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
            folder = Path(url.database).parent
            if not folder.is_dir():  # not an outage to wait for: the file can never open
                raise ValueError(f"the folder of the SQLite file, {folder}, does not exist")
        return value

    @field_validator("nats_url")
    @classmethod
    def _nats_url(cls, value: str) -> str:
        """nats://host:port (tls://, ws://, wss:// too), several separated by commas."""
        from urllib.parse import urlsplit

        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                parsed = urlsplit(part)
                parsed.port  # noqa: B018 - raises ValueError on a bad port
            except ValueError:
                raise ValueError(f"not a NATS URL: {part!r}") from None
            if parsed.scheme not in NATS_SCHEMES or not parsed.hostname:
                raise ValueError(f"not a NATS URL: {part!r} (use nats://host:4222)")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be debug, info, warning or error")
        return value.lower()

    @field_validator("tls_cert_file", "tls_key_file", "tls_ca_file")
    @classmethod
    def _pem_file(cls, value: str) -> str:
        """A set TLS file must be readable PEM now, not at the first call."""
        if not value:
            return value
        try:
            head = Path(value).read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
        if b"-----BEGIN " not in head:
            raise ValueError(f"{value} is not a PEM file")
        return value

    @field_validator("tls_key_file")
    @classmethod
    def _pair(cls, value: str, info: ValidationInfo) -> str:
        cert = info.data.get("tls_cert_file")
        if cert and not value:
            raise ValueError("required with BRANCH_TLS_CERT_FILE")
        if value and "tls_cert_file" in info.data and not cert:
            raise ValueError("needs BRANCH_TLS_CERT_FILE too")
        if cert and value:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, value)
            except ssl.SSLError as exc:
                raise ValueError(f"is not the key of BRANCH_TLS_CERT_FILE ({exc.reason})") from None
        return value

    @field_validator("tls_ca_file")
    @classmethod
    def _ca_with_cert(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("tls_cert_file") and not value:
            raise ValueError("required with BRANCH_TLS_CERT_FILE: peers are called over TLS "
                             "and their certificates checked against it")
        if value:
            try:
                ssl.create_default_context(cafile=value)
            except ssl.SSLError as exc:
                raise ValueError(f"holds no usable CA certificate ({exc.reason})") from None
        return value

    @field_validator("tls_client_auth")
    @classmethod
    def _client_auth(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not (info.data.get("tls_cert_file") and info.data.get("tls_ca_file")):
            raise ValueError("needs BRANCH_TLS_CERT_FILE, BRANCH_TLS_KEY_FILE and "
                             "BRANCH_TLS_CA_FILE")
        return value

    def port(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    def address(self, service: str) -> str:
        return getattr(self, f"{service}_addr", "") or f"{self.host}:{self.port(service)}"

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url.replace("{service}", service)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def service_secret(self) -> str:
        """The key service credentials derive from (the directory checks them with it)."""
        if self.service_key:
            return self.service_key
        return secret_file(self.data_dir / "service_key")


def secret_file(path: Path) -> str:
    """Read a secret file, making it (48 random characters, mode 0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(36))
        try:
            os.link(tmp, path)  # the first writer wins; a racing process reads its secret
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def load_settings(**overrides: object) -> Settings:
    """Read the environment; a bad value raises ConfigError naming the BRANCH_ variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise config_error(exc, "BRANCH_") from None


def config_error(exc: ValidationError, prefix: str) -> ConfigError:
    """One line naming every bad variable (prefix + field name, upper case) and why."""
    lines = []
    for err in exc.errors():
        name = prefix + "_".join(str(p) for p in err["loc"]).upper()
        lines.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
    return ConfigError("invalid configuration: " + "; ".join(lines))
