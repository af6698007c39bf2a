"""Every service of the suite, in start order. A service whose package is not there yet is
skipped, so the suite runs with what exists."""

from __future__ import annotations

import importlib
from types import ModuleType

from services.common.server import ServiceSpec

SERVICES = ("directory", "research", "onsite", "remote", "vip", "insight")


def _module(service: str, name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"services.{service}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith(f"services.{service}"):
            return None
        raise


def spec(service: str) -> ServiceSpec | None:
    module = _module(service, "server")
    return getattr(module, "SPEC", None) if module else None


def specs() -> list[ServiceSpec]:
    return [s for s in (spec(name) for name in SERVICES) if s is not None]


def demo_module(service: str) -> ModuleType | None:
    return _module(service, "demo")


def cli_module(service: str) -> ModuleType | None:
    return _module(service, "cli")
