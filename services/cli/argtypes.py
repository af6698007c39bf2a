"""argparse types for branchctl's numbers, so a bad value is an argparse error naming the
flag (exit 2) rather than a refusal from a service or a misleading answer."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

from services.cli.i18n import _


class Count:
    """A whole number >= `low` (default 0): `type=count`, or `type=count.at_least(1)`."""

    def __init__(self, low: int = 0) -> None:
        self.low = low
        self.__name__ = "count"

    def __call__(self, text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                _("{text!r} is not a whole number").format(text=text)) from None
        if value < self.low:
            raise argparse.ArgumentTypeError(
                _("{value} is too small: at least {low}").format(value=value, low=self.low))
        return value

    def at_least(self, low: int) -> Callable[[str], int]:
        return Count(low)


count = Count()


def risk_level(text: str) -> int:
    """argparse type: a product risk level R1..R5 (also r3 or 3) as its number 1..5."""
    value = text.strip().upper().removeprefix("R")
    if value not in {"1", "2", "3", "4", "5"}:
        raise argparse.ArgumentTypeError(
            _("{text!r} is not a risk level: R1, R2, R3, R4 or R5").format(text=text))
    return int(value)


risk_level.__name__ = "risk level"


def comma_list(choices: Iterable[str]) -> Callable[[str], str]:
    """argparse type: comma-separated names, each one of `choices` (returned unchanged)."""
    names = sorted(choices)

    def parse(text: str) -> str:
        bad = [x for x in text.split(",") if x and x not in names]
        if bad:
            raise argparse.ArgumentTypeError(_("{bad} not known; choose from {names}").format(
                bad=", ".join(map(repr, bad)), names=", ".join(names)))
        return text

    return parse
