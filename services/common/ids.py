"""Time-ordered ids (UUIDv7 layout), so keyset pagination by id follows creation order."""

from __future__ import annotations

import os
import time
import uuid


def new_id() -> str:
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def looks_like_id(text: str) -> bool:
    """Whether `text` has an id's shape (a UUID, any version), so a refusal can say "not an
    id" rather than "no such person" for a name or number typed where an id was expected."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
