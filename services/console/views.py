"""Small pieces the role pages share: the branch's today, a refused form's words and fields,
a form post's usual end (`attempt`), the "done" notice after one, times typed into a form,
and names shown instead of ids."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import grpc
from google.rpc import error_details_pb2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.common.clock import local_today
from services.console import i18n, web
from services.console.backend import Stubs, _status, bad_fields, error_message
from services.console.i18n import _

# what a form refusal can be about: the caller's input or the state of the thing
FORM_CODES = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
              grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.OUT_OF_RANGE)


@dataclass
class Refusal:
    """Why a service refused a form: its words, and each bad field's description by the
    name of its input on the page (see `refusal`)."""

    message: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    reason: str = ""


def refusal(err: grpc.aio.AioRpcError, prefix: str = "",
            names: Mapping[str, str] | None = None) -> Refusal | None:
    """The refusal of a form, or None when the error is not about the form (raise it then:
    the console's refusal pages handle it). Each bad field's name loses `prefix`, then is
    renamed by `names` (the service's name -> the input's name on the page)."""
    if err.code() not in FORM_CODES:
        return None
    fields: dict[str, str] = {}
    for name_, description in bad_fields(err).items():
        short = name_.removeprefix(prefix)
        fields[(names or {}).get(short, short)] = description
    return Refusal(error_message(err, i18n.current()), fields, _reason(err))


T = TypeVar("T")
# a service call about one item (a note, an advisory, a request), given the signed-in
# person's stubs and the item's id: the one thing a page's step handlers differ in
ItemCall = Callable[[Stubs, str], Awaitable[Any]]


async def attempt(call: Awaitable[T], done: str | Callable[[T], str],
                  again: Callable[[Refusal], Awaitable[Response]], prefix: str = "",
                  names: Mapping[str, str] | None = None) -> Response:
    """A form post's usual end: the service's reply, then 303 to `done` (a path, or the path
    made from the reply); when the service refuses the form (FORM_CODES), `again(refusal)`:
    the page again with the service's words beside the fields (`prefix` and `names` as in
    `refusal`). Any other error is raised (the console's refusal pages handle it)."""
    try:
        reply = await call
    except grpc.aio.AioRpcError as err:
        why = refusal(err, prefix, names)
        if why is None:
            raise
    else:
        return RedirectResponse(done if isinstance(done, str) else done(reply),
                                status_code=303)
    return await again(why)


def done(request: Request, words: Mapping[str, str]) -> str:
    """The notice after a post (the `done` query parameter, one of `words`' keys, its words
    marked with N_), translated; "" when there is none or it is not one of them."""
    key = request.query_params.get("done", "")
    return _(words[key]) if key in words else ""


def request_id(form_value: str) -> str:
    """The form's request id (a form sent twice is one request to the service), or a new one
    when the form carried none."""
    return form_value or str(uuid.uuid4())


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
