"""structlog JSON lines on stdout: ids and codes only, never names, phones or holdings."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog
from opentelemetry import trace

_configured = False


def add_trace_ids(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """trace_id and span_id of the current OpenTelemetry span, when there is one."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    return event


def _dumps(event: Any, **kw: Any) -> str:
    """orjson for the JSON lines: several times json.dumps' speed, on every call's line."""
    return orjson.dumps(event, default=kw.get("default"),
                        option=orjson.OPT_NON_STR_KEYS).decode()


def configure_logging(level: str = "info", path: Path | None = None) -> None:
    """JSON lines on stdout, or appended to path (the embedded suite keeps the terminal clear)."""
    global _configured
    numeric = getattr(logging, level.upper(), logging.INFO)
    if _configured:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(numeric))
        return
    out = path.open("a", buffering=1, encoding="utf-8") if path else sys.stdout
    # the libraries' own records (nats-py's reconnect errors, grpc, asyncio) as JSON lines
    # to the same place, their tracebacks in one field, never on a person's terminal
    logging.basicConfig(handlers=[stdlib_handler(out)], level=logging.WARNING)
    structlog.configure(
        processors=[
            # request_id and staff_id bound by the RPC interceptor, event_id by consumers
            structlog.contextvars.merge_contextvars,
            add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    _configured = True


def stdlib_handler(stream: TextIO) -> logging.Handler:
    """A handler writing standard-library log records (third-party libraries') as the same
    JSON lines as ours: event, level, logger, timestamp, trace ids, and the traceback, if
    any, as the one string field `exception`."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            add_trace_ids,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
    ))
    return handler


def get_logger(service: str, **fields: object) -> structlog.stdlib.BoundLogger:
    # A lazy proxy: module-level loggers made at import time (before configure_logging)
    # still follow the configuration in force when they log.
    return structlog.get_logger(service=service, **fields)  # type: ignore[no-any-return]


def bind_request(**fields: str) -> dict[str, object]:
    """Bind ids (request_id, staff_id, event_id) to every log line of the current task until
    unbind(tokens). Ids only: never names, phones or holdings."""
    return dict(structlog.contextvars.bind_contextvars(**fields))


def unbind(tokens: dict[str, object]) -> None:
    structlog.contextvars.reset_contextvars(**tokens)  # type: ignore[arg-type]
