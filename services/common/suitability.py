"""Suitability (适当性管理), the one rule DESIGN.md makes suite-wide: a note or advice of risk
level Rn goes to a client of tolerance Cm only if m >= n, and only while the client's risk
assessment is less than two years old. Kept once here so every service applies the same
rule; what a service does with a mismatch (refuse, record an override, withhold) is its own."""

from __future__ import annotations

from datetime import date

from services.common.clock import add_years
from services.common.messages import Msg

ASSESSMENT_VALIDITY_YEARS = 2


def assessment_valid_until(assessed_on: date) -> date:
    """The last day an assessment is valid: its second anniversary in the branch's calendar
    (a calendar period, Civil Code arts. 201-202: assessed 2022-03-01 is valid through
    2024-03-01; assessed 2024-02-29 through 2026-02-28)."""
    return add_years(assessed_on, ASSESSMENT_VALIDITY_YEARS)


def assessment_expired(assessed_on: date | None, today: date) -> bool:
    """No assessment counts as expired. `today` is the branch-local date
    (services.common.clock.local_today)."""
    return assessed_on is None or today > assessment_valid_until(assessed_on)


def suitability_problem(risk_level: int, tolerance: int, expired: bool) -> str:
    """Why something of risk_level may not go to the client; '' when it may."""
    if not tolerance:
        return Msg("no risk assessment")
    if expired:
        return Msg("risk assessment expired (more than two years old)")
    if risk_level > tolerance:
        return Msg("risk R{risk_level} above the client's tolerance C{tolerance}",
                   risk_level=risk_level, tolerance=tolerance)
    return ""
