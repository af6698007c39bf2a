"""A form's call to a service that may be refused for what the person typed or for the state
of the thing (INVALID_ARGUMENT, FAILED_PRECONDITION, ALREADY_EXISTS, ABORTED): the page shows
the form again with the service's words and each BadRequest field's problem beside its field.
Any other refusal (not allowed, not found, service down) goes to app.py's refusal page."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc

from services.console import i18n
from services.console.backend import bad_fields, error_message

T = TypeVar("T")
FORM_CODES = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
              grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.ABORTED)


@dataclass
class Refusal:
    message: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.message or self.fields)


async def attempt(call: Awaitable[T]) -> tuple[T | None, Refusal]:
    """(the reply, an empty Refusal), or (None, what was wrong with the form)."""
    try:
        return await call, Refusal()
    except grpc.aio.AioRpcError as err:
        if err.code() not in FORM_CODES:
            raise
        return None, Refusal(error_message(err, i18n.current()), bad_fields(err))
