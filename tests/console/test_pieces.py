"""Pure pieces of the console: CSRF comparison, session expiry on the injected clock,
language choice, a form post's end (views.attempt) and the notice after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from starlette.responses import Response

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


def _refused(code: grpc.StatusCode, message: str, fields: dict[str, str]) -> grpc.aio.AioRpcError:
    """A service's refusal as the console receives it: the status with a BadRequest detail in
    the trailing metadata, as services/common's errors send it."""
    bad = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field=k, description=v)
        for k, v in fields.items()])
    detail = any_pb2.Any()
    detail.Pack(bad)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(
        ("grpc-status-details-bin", status.SerializeToString())), details=message)


async def test_a_form_post_goes_on_or_shows_the_page_again_with_the_services_words() -> None:
    """views.attempt: a reply sends the browser on (303, the path made from the reply); a
    form refusal shows the page again, each field's words under its input's name (prefix
    taken off, then renamed); any other error is left to the console's refusal pages."""
    from services.console import views

    shown: list[views.Refusal] = []

    async def again(why: views.Refusal) -> Response:
        shown.append(why)
        return Response("again", status_code=400)

    async def reply(value: str) -> str:
        return value

    async def fails(err: grpc.aio.AioRpcError) -> str:
        raise err

    went = await views.attempt(reply("t1"), lambda made: f"/tickets/{made}", again)
    assert (went.status_code, went.headers["location"]) == (303, "/tickets/t1")
    assert not shown
    refused = _refused(grpc.StatusCode.INVALID_ARGUMENT, "the form is wrong",
                       {"form.client_id": "choose a client", "form.request_note": "too long"})
    back = await views.attempt(fails(refused), "/day?done=form", again, prefix="form.",
                               names={"client_id": "form_client_id"})
    assert back.status_code == 400
    assert shown[0].message == "the form is wrong"
    assert shown[0].fields == {"form_client_id": "choose a client", "request_note": "too long"}
    denied = _refused(grpc.StatusCode.PERMISSION_DENIED, "not yours", {})
    with pytest.raises(grpc.aio.AioRpcError):
        await views.attempt(fails(denied), "/day", again)
    assert len(shown) == 1


def test_the_notice_after_a_post_is_one_of_the_pages_own() -> None:
    from starlette.requests import Request

    from services.console import views

    words = {"saved": "Saved as a new revision."}

    def asked(query: str) -> Request:
        return Request({"type": "http", "query_string": query.encode(), "headers": []})

    i18n.activate("en")
    try:
        assert views.done(asked("done=saved"), words) == "Saved as a new revision."
        assert views.done(asked("done=%3Cscript%3E"), words) == ""
        assert views.done(asked(""), words) == ""
    finally:
        i18n.activate("zh_CN")
