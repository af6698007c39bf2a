"""Opaque page tokens for keyset pagination (AIP-158)."""

from __future__ import annotations

import base64
import json

from services.common.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument({"page_size": "must not be negative"})
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(*key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_token(token: str, parts: int = 1) -> list[object] | None:
    """The key the previous page ended on, or None for the first page."""
    if not token:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument({"page_token": "not a token this service issued"}) from None
    if not isinstance(key, list) or len(key) != parts:
        raise InvalidArgument({"page_token": "not a token this service issued"})
    return key
