"""Field checks every service's input shares; each records what is wrong in a Violations."""

from __future__ import annotations

from datetime import date

from services.common.errors import Violations

# dates are bounded well inside datetime's range: services compute weeks and day bounds
# from them, and 0001-01-01 or 9999-12-31 overflowed such arithmetic
MIN_YEAR, MAX_YEAR = 1900, 2999


def check_date(v: Violations, field: str, value: str, *, required: bool = True) -> date | None:
    """A YYYY-MM-DD date; None when empty (a violation if required) or malformed."""
    if not value:
        if required:
            v.add(field, "required, as YYYY-MM-DD")
        return None
    try:
        if len(value) != 10:
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        v.add(field, "must be a date as YYYY-MM-DD")
        return None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        v.add(field, "a year from {min_year} to {max_year}", min_year=MIN_YEAR, max_year=MAX_YEAR)
        return None
    return day


def check_text(v: Violations, field: str, value: str, max_len: int, *,
               required: bool = False) -> None:
    if required and not value.strip():
        v.add(field, "required")
    elif len(value) > max_len:
        v.add(field, "at most {max_len} characters", max_len=max_len)
