"""CSRF: a synchronizer token. A signed-in session holds one random token; every form carries
it in the hidden field `csrf_token` and every htmx request in the header `X-CSRF-Token`
(set once on <body hx-headers>). Before sign-in the token lives in an HttpOnly SameSite=Strict
cookie instead (double submit), so the sign-in form itself is covered.

A POST, PUT, PATCH or DELETE whose token is missing or differs is refused with 403 before any
service is called (services/console/app.py).
"""

from __future__ import annotations

import hmac
import secrets

FIELD = "csrf_token"
HEADER = "x-csrf-token"
PRE_SESSION_COOKIE = "console_csrf"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def new_token() -> str:
    """32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def valid(expected: str, presented: str | None) -> bool:
    """True when both are non-empty and equal (compared in constant time)."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())
