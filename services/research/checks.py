"""Checks every research request gets before it reaches the domain code, so that a caller's
mistake is INVALID_ARGUMENT, never INTERNAL: no NUL character in any string (PostgreSQL
refuses them), no id longer than any id can be, every Timestamp a real instant, page tokens
of the shape each list issued."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from services.common.consumer import PermanentError
from services.common.errors import InvalidArgument, Violations
from services.common.events import Event
from services.common.pagination import decode_token

# revisions and ledger sequence numbers are INTEGER columns (32 bits on PostgreSQL)
MAX_SEQUENCE = 2**31 - 1
M = TypeVar("M", bound=Message)
# staff, client, note and request ids are all far shorter
MAX_ID = 100


def check_request(request: Message) -> None:
    v = Violations()
    _walk(v, request, "")
    v.raise_if_any()


def _walk(v: Violations, msg: Message, prefix: str) -> None:
    if msg.DESCRIPTOR.full_name == "google.protobuf.Timestamp":
        try:
            msg.ToDatetime()  # type: ignore[attr-defined]
        except (ValueError, OverflowError):
            v.add(prefix, "not a valid timestamp")
        return
    for field, value in msg.ListFields():
        name = f"{prefix}.{field.name}" if prefix else field.name
        repeated = field.is_repeated
        items = list(enumerate(value)) if repeated else [(None, value)]
        for i, item in items:
            path = name if i is None else f"{name}[{i}]"
            if field.type == FieldDescriptor.TYPE_STRING and "\x00" in item:
                v.add(path, "must not contain NUL characters")
            elif (field.type == FieldDescriptor.TYPE_STRING and len(item) > MAX_ID
                  and (field.name == "id" or field.name.endswith("_id"))):
                # ids are echoed in NOT_FOUND messages: a huge one overflowed the trailers
                v.add(path, f"at most {MAX_ID} characters")
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                _walk(v, item, path)


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
