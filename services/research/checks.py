"""Research's own input checks: page tokens of the shape each list issued, and event payloads
checked as requests are (services.common.request_checks, which the interceptor applies to
every request)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from services.common.consumer import PermanentError
from services.common.errors import InvalidArgument
from services.common.events import Event
from services.common.pagination import decode_token
from services.common.request_checks import check_request

# revisions and ledger sequence numbers are INTEGER columns (32 bits on PostgreSQL)
MAX_SEQUENCE = 2**31 - 1
M = TypeVar("M", bound=Message)


def _bad_token() -> InvalidArgument:
    return InvalidArgument({"page_token": "not a token this list issued"})


def int_after(token: str) -> int | None:
    """The sequence number a page ended on (revisions, ledger)."""
    key = decode_token(token)
    if key is None:
        return None
    value = key[0]
    if type(value) is not int or not 0 <= value <= MAX_SEQUENCE:
        raise _bad_token()
    return value


def str_after(token: str) -> str | None:
    """The id a page ended on."""
    key = decode_token(token)
    if key is None:
        return None
    if not isinstance(key[0], str):
        raise _bad_token()
    return key[0]


def time_id_after(token: str) -> tuple[datetime, str] | None:
    """The (time, id) a page ended on."""
    key = decode_token(token, parts=2)
    if key is None:
        return None
    when, ident = key
    if not isinstance(when, str) or not isinstance(ident, str):
        raise _bad_token()
    try:
        at = datetime.fromisoformat(when)
    except ValueError:
        raise _bad_token() from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)), ident


def parse_event(event: Event, message_type: type[M]) -> M:
    """The event's payload, checked as a request would be. What can never be applied (not
    the expected message, a NUL character, an impossible timestamp) is parked at once
    instead of being retried; the reason names fields, never their values."""
    try:
        msg = event.parse(message_type)
    except DecodeError as exc:
        raise PermanentError(
            f"payload is not {message_type.DESCRIPTOR.name}: {exc}") from None
    try:
        check_request(msg)
    except InvalidArgument as exc:
        raise PermanentError(f"unusable {message_type.DESCRIPTOR.name}: {exc.message}") from None
    return msg
