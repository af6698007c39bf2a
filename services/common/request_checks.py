"""Checks every request gets before it reaches a service, so that a caller's mistake is
INVALID_ARGUMENT naming the field, never INTERNAL: no NUL character in any string
(PostgreSQL refuses them), no id longer than any id can be (ids are echoed in NOT_FOUND
messages; a huge one overflowed the trailers), every Timestamp a real instant."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.common.errors import Violations

MAX_ID = 100


def check_request(request: Message) -> None:
    v = Violations()
    collect(v, request, "")
    v.raise_if_any()


def collect(v: Violations, msg: Message, prefix: str) -> None:
    """Add a violation for every unusable value in msg (fields named under prefix)."""
    if msg.DESCRIPTOR.full_name == "google.protobuf.Timestamp":
        try:
            msg.ToDatetime()  # type: ignore[attr-defined]
        except (ValueError, OverflowError):
            v.add(prefix, "not a valid timestamp")
        return
    for field, value in msg.ListFields():
        name = f"{prefix}.{field.name}" if prefix else field.name
        items = list(enumerate(value)) if field.is_repeated else [(None, value)]
        for i, item in items:
            path = name if i is None else f"{name}[{i}]"
            if field.type == FieldDescriptor.TYPE_STRING and "\x00" in item:
                v.add(path, "must not contain NUL characters")
            elif (field.type == FieldDescriptor.TYPE_STRING and len(item) > MAX_ID
                  and (field.name == "id" or field.name.endswith("_id"))):
                v.add(path, "at most {max_id} characters", max_id=MAX_ID)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                collect(v, item, path)
