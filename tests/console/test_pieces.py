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
