"""branchctl's one time parser (services/cli/when.py): relative words in the branch's zone
from an injected now (cases just after local midnight), strict ISO, Chinese, clear refusals;
and the language switch (services/cli/i18n.py)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from services.cli import branchctl, i18n
from services.cli.when import parse_day, parse_moment

SHANGHAI = ZoneInfo("Asia/Shanghai")
# 00:10 on Tuesday 1 December in Beijing is still 30 November in UTC
JUST_AFTER_MIDNIGHT = datetime(2026, 12, 1, 0, 10, tzinfo=SHANGHAI)


@pytest.fixture(autouse=True)
def _branch_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRANCH_TIMEZONE", "Asia/Shanghai")


@pytest.mark.parametrize("typed,expected", [
    ("tomorrow 10am", datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)),
    ("明天上午10点", datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)),
    ("下午3点半", datetime(2026, 12, 1, 15, 30, tzinfo=SHANGHAI)),
    ("12:00", datetime(2026, 12, 1, 12, 0, tzinfo=SHANGHAI)),
    ("now", JUST_AFTER_MIDNIGHT),
    ("现在", JUST_AFTER_MIDNIGHT),
    ("2026-12-01 09:30", datetime(2026, 12, 1, 9, 30, tzinfo=SHANGHAI)),
    ("2026-12-01T01:30+00:00", datetime(2026, 12, 1, 9, 30, tzinfo=SHANGHAI)),
])
def test_moments_in_the_branch_zone(typed: str, expected: datetime) -> None:
    assert parse_moment(typed, JUST_AFTER_MIDNIGHT) == expected


def test_days_are_the_branch_days_not_utc() -> None:
    assert parse_day("yesterday", JUST_AFTER_MIDNIGHT) == date(2026, 11, 30)
    assert parse_day("today", JUST_AFTER_MIDNIGHT) == date(2026, 12, 1)
    assert parse_day("昨天", JUST_AFTER_MIDNIGHT) == date(2026, 11, 30)
    assert parse_day("3 days ago", JUST_AFTER_MIDNIGHT) == date(2026, 11, 28)


def test_another_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRANCH_TIMEZONE", "Europe/London")
    now = datetime(2026, 12, 1, 0, 5, tzinfo=ZoneInfo("Europe/London"))
    assert parse_moment("tomorrow 10am", now) == datetime(2026, 12, 2, 10, 0,
                                                           tzinfo=ZoneInfo("Europe/London"))


@pytest.mark.parametrize("typed,why", [
    ("2026-13-01", "month must be in 1..12"),  # not 13 January
    ("2026-12-01 25:00", "hour must be in 0..23"),
    ("next blue moon", "not a time"),
    ("", "empty"),
])
def test_refusals_say_why(typed: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_moment(typed, JUST_AFTER_MIDNIGHT)


def _stderr(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        branchctl.main(argv)
    return int(stop.value.code or 0), capsys.readouterr().err


def test_chinese_by_flag_or_lang(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BRANCH_TOKEN", "x")
    try:
        code, err = _stderr(["--lang", "zh_CN", "vip", "on-call", "--at", "2026-12-01 25:00"],
                            capsys)
        assert code == 2 and "参数 --at：" in err and "不是有效时间" in err, err
        monkeypatch.setenv("LANG", "zh_CN.UTF-8")
        monkeypatch.delenv("LANGUAGE", raising=False)
        monkeypatch.delenv("LC_ALL", raising=False)
        monkeypatch.delenv("LC_MESSAGES", raising=False)
        code, err = _stderr(["research", "ledger", "--from", "2026-12-02", "--to",
                             "2026-12-01"], capsys)
        assert code == 2 and "晚于" in err, err
        code, err = _stderr(["research", "ledger", "--from", "2026-12-02", "--to",
                             "2026-12-01", "--lang", "en"], capsys)
        assert code == 2 and "--from (2026-12-02) is after --to (2026-12-01)" in err, err
    finally:
        i18n.install("en")
