"""Field checks for directory input; each returns what is wrong, or nothing."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from services.common.errors import Violations

TICKER = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,15}$")
PHONE = re.compile(r"^\+?[0-9][0-9 \-]{4,30}$")


def decimal_of(value: str) -> Decimal | None:
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def normal(number: Decimal) -> str:
    text = format(number.normalize(), "f")
    return text


def check_decimal(
    v: Violations, field: str, value: str, *, positive: bool = False, allow_empty: bool = False
) -> str:
    """The normalised decimal string, or '' after recording a violation."""
    if value == "" and allow_empty:
        return ""
    number = decimal_of(value)
    if number is None:
        v.add(field, "must be a decimal number, e.g. 12.34")
        return ""
    if number < 0 or (positive and number == 0):
        v.add(field, "must be greater than zero" if positive else "must not be negative")
        return ""
    return normal(number)


def check_date(v: Violations, field: str, value: str, *, required: bool = True) -> date | None:
    if not value:
        if required:
            v.add(field, "required, as YYYY-MM-DD")
        return None
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        v.add(field, "must be a date as YYYY-MM-DD")
        return None


def check_text(v: Violations, field: str, value: str, *, max_len: int, required: bool) -> None:
    if required and not value.strip():
        v.add(field, "required")
    elif len(value) > max_len:
        v.add(field, f"at most {max_len} characters")


def check_ticker(v: Violations, field: str, value: str) -> None:
    if not TICKER.match(value):
        v.add(field, "must be 1-16 upper-case letters, digits, '.' or '-'")
