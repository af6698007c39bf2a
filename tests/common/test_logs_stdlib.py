"""Third-party libraries' log records (nats-py's reconnect errors) as our JSON lines."""

from __future__ import annotations

import io
import json
import logging

from services.common.logs import stdlib_handler


def test_a_library_error_with_a_traceback_is_one_json_line() -> None:
    out = io.StringIO()
    log = logging.getLogger("nats.aio.client.test")
    log.propagate = False
    log.addHandler(stdlib_handler(out))
    try:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 4222)")
        except ConnectionRefusedError as exc:
            log.error("nats: encountered error", exc_info=exc)
    finally:
        log.handlers.clear()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines  # the traceback is not spread over the terminal
    record = json.loads(lines[0])
    assert record["event"] == "nats: encountered error"
    assert record["level"] == "error" and record["logger"] == "nats.aio.client.test"
    assert "ConnectionRefusedError" in record["exception"] and "timestamp" in record
