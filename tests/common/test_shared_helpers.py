"""The one copy of the command-line time helpers (services/cli/timefmt.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from services.cli import timefmt


def test_times_are_read_and_shown_in_the_branch_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRANCH_TIMEZONE", "Asia/Shanghai")
    # five past midnight in Shanghai is the previous UTC day
    ts = timefmt.timestamp("2026-03-02 00:05")
    assert ts.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 1, 16, 5, tzinfo=UTC)
    assert timefmt.local(ts) == "2026-03-02 00:05"  # the year always shown
    assert timefmt.local(ts, timefmt.DATE_TIME) == "2026-03-02 00:05"
    assert timefmt.timestamp("2026-03-02T00:05:00+00:00").ToDatetime(tzinfo=UTC).hour == 0
    assert timefmt.local(Timestamp(), empty="-") == "-"
    with pytest.raises(ValueError):
        timefmt.timestamp("next tuesday")



def test_a_time_given_as_a_value_is_sent_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """when.py's argparse types hand timefmt.timestamp datetimes and dates, not text."""
    from datetime import date
    from zoneinfo import ZoneInfo

    monkeypatch.setenv("BRANCH_TIMEZONE", "Asia/Shanghai")
    aware = datetime(2026, 3, 2, 0, 5, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert timefmt.timestamp(aware).ToDatetime(tzinfo=UTC) == datetime(2026, 3, 1, 16, 5,
                                                                         tzinfo=UTC)
    assert timefmt.timestamp(date(2026, 3, 2)).ToDatetime(tzinfo=UTC) == \
        datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
