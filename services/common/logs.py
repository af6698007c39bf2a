"""structlog JSON lines on stdout: ids and codes only, never names, phones or holdings."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import structlog

_configured = False


def configure_logging(level: str = "info", path: Path | None = None) -> None:
    """JSON lines on stdout, or appended to path (the embedded suite keeps the terminal clear)."""
    global _configured
    numeric = getattr(logging, level.upper(), logging.INFO)
    if _configured:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(numeric))
        return
    logging.basicConfig(format="%(message)s", stream=sys.stdout, level=logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(
            path.open("a", buffering=1, encoding="utf-8") if path else sys.stdout
        ),
        cache_logger_on_first_use=False,
    )
    _configured = True


def get_logger(service: str, **fields: object) -> structlog.stdlib.BoundLogger:
    # A lazy proxy: module-level loggers made at import time (before configure_logging)
    # still follow the configuration in force when they log.
    return structlog.get_logger(service=service, **fields)  # type: ignore[no-any-return]
