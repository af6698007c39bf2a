"""Small pieces the role pages share: the branch's today, a refused form's words and fields,
times typed into a form, and names shown instead of ids."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

import grpc
from google.rpc import error_details_pb2
from starlette.requests import Request

from services.common.clock import local_today
from services.console import i18n, web
from services.console.backend import _status, bad_fields, error_message
from services.console.i18n import _

# what a form refusal can be about: the caller's input or the state of the thing
FORM_CODES = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
              grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.OUT_OF_RANGE)


@dataclass
class Refusal:
    """Why a service refused a form: its words, and each bad field's description (the
    message prefix such as 'visit.' taken off, so a template finds it by input name)."""

    message: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    reason: str = ""


def refusal(err: grpc.aio.AioRpcError, prefix: str = "") -> Refusal | None:
    """The refusal of a form, or None when the error is not about the form (raise it then:
    the console's refusal pages handle it)."""
    if err.code() not in FORM_CODES:
        return None
    fields = {k.removeprefix(prefix): v for k, v in bad_fields(err).items()}
    return Refusal(error_message(err, i18n.current()), fields, _reason(err))


T = TypeVar("T")


async def attempt(call: Awaitable[T], prefix: str = "") -> tuple[T | None, Refusal | None]:
    """(the reply, None), or (None, the form's refusal); any other error is raised."""
    try:
        return await call, None
    except grpc.aio.AioRpcError as err:
        why = refusal(err, prefix)
        if why is None:
            raise
        return None, why


def _reason(err: grpc.aio.AioRpcError) -> str:
    status = _status(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def zone(request: Request) -> ZoneInfo:
    return ZoneInfo(web.console(request).settings.timezone)


def today(request: Request) -> date:
    """Today in the branch's zone, from the console's clock."""
    return local_today(web.console(request).clock, zone(request))


def typed_time(request: Request, value: str) -> datetime | None:
    """A datetime-local input (branch-local, no offset) as UTC; None when empty or not a time."""
    try:
        local = datetime.fromisoformat(value)
    except ValueError:
        return None
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone(request))
    return local.astimezone(UTC)


def name(display_name: str) -> str:
    """A person's name; words (never the id) while the service does not know it yet."""
    return display_name or _("(name not known yet)")
