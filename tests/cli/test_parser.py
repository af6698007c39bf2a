"""The whole branchctl command tree builds: no command redefines a global option; calendar
show's span is checked on the command line."""
from datetime import date

import pytest

from services.cli.branchctl import build_parser
from services.cli.errors import UsageError
from services.directory import calendar_cli


def test_every_command_builds_with_the_global_options() -> None:
    parser = build_parser()
    args = parser.parse_args(["insight", "download", "R1", "--format", "xlsx",
                              "--file", "out.xlsx", "-o", "json"])
    assert args.file == "out.xlsx" and args.output == "json"


def test_calendar_show_refuses_a_bad_span_as_a_usage_error() -> None:
    parser = build_parser()
    for bad in ("0", "-3", "x", "367"):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["calendar", "show", "--days", bad])
        assert exit_.value.code == 2
    assert parser.parse_args(["calendar", "show", "--days", "366"]).days == 366
    assert calendar_cli.span(date(2026, 2, 14), 3) == date(2026, 2, 16)
    # near the end of the calendar: a usage error, not an unexpected OverflowError (exit 70)
    with pytest.raises(UsageError):
        calendar_cli.span(date(9999, 12, 25), 10)
