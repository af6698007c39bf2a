"""Suitability (适当性管理), the one rule DESIGN.md makes suite-wide: a note or advice of risk
level Rn goes to a client of tolerance Cm only if m >= n, and only while the client's risk
assessment is less than two years old. Kept once here so every service applies the same
rule; what a service does with a mismatch (refuse, record an override, withhold) is its own."""

from __future__ import annotations

from datetime import date, timedelta

ASSESSMENT_VALIDITY = timedelta(days=730)


def assessment_expired(assessed_on: date | None, today: date) -> bool:
    """No assessment counts as expired."""
    return assessed_on is None or today - assessed_on >= ASSESSMENT_VALIDITY


def suitability_problem(risk_level: int, tolerance: int, expired: bool) -> str:
    """Why something of risk_level may not go to the client; '' when it may."""
    if not tolerance:
        return "no risk assessment"
    if expired:
        return "risk assessment expired (two years or older)"
    if risk_level > tolerance:
        return f"risk R{risk_level} above the client's tolerance C{tolerance}"
    return ""
