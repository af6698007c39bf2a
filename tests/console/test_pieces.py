"""Pure pieces of the console: CSRF comparison, session expiry on the injected clock,
language choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.console import csrf, i18n, sessions

T0 = datetime(2026, 3, 1, 16, 5, tzinfo=UTC)  # 00:05 in Asia/Shanghai
IDLE, MAX = timedelta(minutes=30), timedelta(hours=12)


def _session(created: datetime, seen: datetime) -> sessions.Session:
    return sessions.Session(id="s", staff_id="x", employee_no="E1", display_name="n",
                            roles=["broker"], access_token="a", access_expires=0,
                            refresh_token="r", csrf=csrf.new_token(),
                            created_at=created.isoformat(), last_seen=seen.isoformat())


def test_csrf_needs_the_same_non_empty_token() -> None:
    token = csrf.new_token()
    assert csrf.valid(token, token)
    assert not csrf.valid(token, None)
    assert not csrf.valid(token, "")
    assert not csrf.valid(token, token + "x")
    assert not csrf.valid("", "")


def test_idle_and_absolute_expiry() -> None:
    s = _session(T0, T0)
    assert sessions.expiry(s, T0 + IDLE - timedelta(seconds=1), IDLE, MAX) is None
    assert sessions.expiry(s, T0 + IDLE, IDLE, MAX) == sessions.IDLE
    busy = _session(T0, T0 + MAX - timedelta(minutes=1))
    assert sessions.expiry(busy, T0 + MAX - timedelta(seconds=1), IDLE, MAX) is None
    assert sessions.expiry(busy, T0 + MAX, IDLE, MAX) == sessions.ABSOLUTE


def test_language_from_cookie_then_accept_language() -> None:
    assert i18n.choose(None, "en-GB,en;q=0.9,zh-CN;q=0.8") == "en"
    assert i18n.choose(None, "fr, zh-CN;q=0.5") == "zh_CN"
    assert i18n.choose("en", "zh-CN") == "en"
    assert i18n.choose(None, None) == "zh_CN"


def test_sla_clock_shows_the_services_business_time_left() -> None:
    """Friday 8 March 2024 15:00 in Shanghai: due at 16:00, and Saturday is past due by the
    wall clock's 18 h but only the 8 h of Friday by the service's business count."""
    from branch.remote.v1 import ticket_pb2
    from google.protobuf.timestamp_pb2 import Timestamp

    from services.console.pages.desk import sla_clock

    due = Timestamp()
    due.FromDatetime(datetime(2024, 3, 8, 8, tzinfo=UTC))
    saturday = datetime(2024, 3, 9, 2, tzinfo=UTC)
    i18n.activate("en")
    late = sla_clock("Resolution", ticket_pb2.SlaClock(
        due_time=due, business_days=True, remaining_seconds=-8 * 3600), saturday)
    assert (late.badge, late.relative) == ("bad", "8 hours of business time overdue")
    soon = sla_clock("Resolution", ticket_pb2.SlaClock(
        due_time=due, business_days=True, remaining_seconds=3600),
        datetime(2024, 3, 8, 7, tzinfo=UTC))
    assert (soon.badge, soon.relative) == ("ok", "60 minutes of business time left")
    wall = sla_clock("First response", ticket_pb2.SlaClock(
        due_time=due, remaining_seconds=-18 * 3600), saturday)
    assert wall.relative == "18 hours overdue"
    paused = sla_clock("Resolution", ticket_pb2.SlaClock(
        paused=True, business_days=True, remaining_seconds=6 * 3600), saturday)
    assert (paused.badge, paused.relative) == ("paused", "6 hours of business time left")
    older = sla_clock("Resolution", ticket_pb2.SlaClock(due_time=due), saturday)
    assert older.relative == "18 hours ago"  # a service without the count: the wall clock
