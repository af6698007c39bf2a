"""argparse types for branchctl's numbers, so a bad value is an argparse error naming the
flag (exit 2) rather than a refusal from a service or a misleading answer."""

from __future__ import annotations

import argparse
from collections.abc import Callable


class Count:
    """A whole number >= `low` (default 0): `type=count`, or `type=count.at_least(1)`."""

    def __init__(self, low: int = 0) -> None:
        self.low = low
        self.__name__ = "count"

    def __call__(self, text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < self.low:
            raise argparse.ArgumentTypeError(f"{value} is too small: at least {self.low}")
        return value

    def at_least(self, low: int) -> Callable[[str], int]:
        return Count(low)


count = Count()
