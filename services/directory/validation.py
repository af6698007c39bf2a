"""Field checks for directory input; each returns what is wrong, or nothing."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from services.common.errors import Violations
from services.common.fields import check_date, check_text

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


def check_ticker(v: Violations, field: str, value: str) -> None:
    if not TICKER.match(value):
        v.add(field, "must be 1-16 upper-case letters, digits, '.' or '-'")


__all__ = ["check_date", "check_decimal", "check_text", "check_ticker"]
