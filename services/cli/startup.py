"""Start-up checks for `branch up` and `branch serve`: a bad path, a taken port or a database
URL that cannot work becomes one line naming the variable or path (a ConfigError), never a
traceback. `branch` prints that line on stderr and exits with status 2."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from services.common.db import is_unavailable
from services.common.settings import ConfigError, Settings


def check_data_dir(path: Path, variable: str = "BRANCH_DATA_DIR") -> None:
    """The data directory exists (made if missing) and is a directory we can write in."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".branch-write-check"
        probe.write_text("")
        probe.unlink()
    except FileExistsError:
        raise ConfigError(f"{variable}: {path} is a file, not a directory") from None
    except OSError as exc:
        raise ConfigError(f"{variable}: {path}: {exc.strerror or exc}") from None


def check_port(settings: Settings, variable: str, port: int) -> None:
    """Nothing else listens on host:port (the check binds it for a moment, as grpc would)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"{variable}: {settings.host}:{port} is already in use") from None
            raise ConfigError(
                f"BRANCH_HOST: cannot listen on {settings.host}:{port}: "
                f"{exc.strerror or exc}") from None


def check_ports(settings: Settings, services: list[str], *, metrics: bool) -> None:
    """Every service's gRPC port, and the metrics port when this command serves metrics;
    no two of them the same."""
    taken: dict[int, str] = {}
    for name in services:
        port = settings.port(name)
        if port in taken:
            raise ConfigError(f"BRANCH_{name.upper()}_PORT: {port} is also "
                              f"BRANCH_{taken[port].upper()}_PORT")
        taken[port] = name
    for name in services:
        check_port(settings, f"BRANCH_{name.upper()}_PORT", settings.port(name))
    if metrics:
        check_port(settings, "BRANCH_METRICS_PORT", settings.metrics_port)


def describe_start_failure(service: str, settings: Settings, exc: BaseException) -> str | None:
    """One line for an exception that stopped a service's start, or None for our own bug
    (which keeps its traceback for the log)."""
    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, RuntimeError) and "bind" in str(exc).lower():
        return (f"BRANCH_{service.upper()}_PORT: cannot listen on "
                f"{settings.host}:{settings.port(service)}")
    if _from_database(exc):
        reason = " ".join(str(_root(exc)).split())[:200] or type(_root(exc)).__name__
        what = "not reachable" if is_unavailable(exc) else "refused"
        return f"BRANCH_DATABASE_URL: the {service} database {what}: {reason}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    if type(exc).__module__.startswith("nats."):
        return f"BRANCH_NATS_URL: NATS refused the BRANCH stream: {exc}"
    return None


def _root(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def _from_database(exc: BaseException) -> bool:
    current: BaseException | None = exc
    while current is not None:
        module = type(current).__module__
        if module.startswith(("sqlalchemy", "asyncpg", "sqlite3", "aiosqlite")):
            return True
        current = current.__cause__ or current.__context__
    return False
