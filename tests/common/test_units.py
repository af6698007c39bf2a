"""Pure logic: tokens, settings, page tokens, error details, ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.rpc import error_details_pb2

from services.common.auth import AccessTable, Principal, TokenSigner, allow, bearer_from_metadata
from services.common.errors import InvalidArgument, PermissionDenied, Unauthenticated, Violations
from services.common.ids import new_id
from services.common.pagination import decode_token, encode_token, page_size
from services.common.settings import ConfigError, load_settings

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def test_token_round_trip_and_rejections() -> None:
    signer = TokenSigner("k" * 32)
    token = signer.issue("s1", ["broker"], datetime.now(UTC), timedelta(minutes=5))
    assert signer.verify(token) == Principal("s1", frozenset({"broker"}))
    expired = signer.issue("s1", ["broker"], NOW - timedelta(days=1), timedelta(minutes=5))
    with pytest.raises(Unauthenticated) as err:
        signer.verify(expired)
    assert err.value.reason == "TOKEN_EXPIRED"
    forged = TokenSigner("x" * 32).issue("s1", ["admin"], datetime.now(UTC), timedelta(hours=1))
    with pytest.raises(Unauthenticated):
        signer.verify(forged)
    with pytest.raises(ValueError):
        TokenSigner("short")


def test_bearer_parsing() -> None:
    assert bearer_from_metadata({"authorization": "Bearer abc"}) == "abc"
    for bad in ({}, {"authorization": "abc"}, {"authorization": "Bearer  "}):
        with pytest.raises(Unauthenticated):
            bearer_from_metadata(bad)


def test_access_table_fails_closed() -> None:
    table = AccessTable({"GetThing": allow("broker")})
    broker = Principal("b", frozenset({"broker"}))
    assert table.check("GetThing", broker)
    with pytest.raises(PermissionDenied):
        table.check("DeleteThing", broker)
    with pytest.raises(PermissionDenied):
        table.check("GetThing", Principal("a", frozenset({"analyst"})))
    with pytest.raises(ValueError):
        allow("wizard")


def test_settings_name_the_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRANCH_TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("BRANCH_METRICS_PORT", "99999")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "BRANCH_TIMEZONE" in str(err.value) and "BRANCH_METRICS_PORT" in str(err.value)


def test_settings_defaults_and_templates(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("BRANCH_DATABASE_URL", "postgresql+asyncpg://h/branch_{service}")
    settings = load_settings(data_dir=tmp_path)
    assert settings.database_url_for("vip") == "postgresql+asyncpg://h/branch_vip"
    assert settings.address("remote") == "127.0.0.1:50053"
    key = settings.signing_key()
    assert key == settings.signing_key() and len(key) >= 32


def test_page_tokens() -> None:
    assert decode_token(encode_token("abc")) == ["abc"]
    assert decode_token("") is None
    for bad in ("!!", encode_token("a", "b")):
        with pytest.raises(InvalidArgument):
            decode_token(bad)
    assert page_size(0) == 50 and page_size(5000) == 1000
    with pytest.raises(InvalidArgument):
        page_size(-1)


def test_invalid_argument_lists_every_field() -> None:
    v = Violations()
    v.add("a", "bad a")
    v.check(False, "b", "bad b")
    v.check(True, "c", "fine")
    with pytest.raises(InvalidArgument) as err:
        v.raise_if_any()
    status = err.value.to_status("x.branch")
    bad = error_details_pb2.BadRequest()
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.domain == "x.branch"
    assert status.details[1].Unpack(bad)
    assert [f.field for f in bad.field_violations] == ["a", "b"]


def test_ids_are_time_ordered_and_unique() -> None:
    ids = [new_id() for _ in range(2000)]
    assert len(set(ids)) == 2000
    assert all(len(i) == 36 and i[14] == "7" for i in ids)


def test_request_ids_are_logged_only_when_they_look_like_ids() -> None:
    from services.common.interceptors import _loggable

    assert _loggable("demo-client-12") == "demo-client-12"
    assert _loggable("01a21a91-033f-7c13-90aa-e7b40d9d9c46") == "01a21a91-033f-7c13-90aa-e7b40d9d9c46"
    hidden = _loggable("call Zhang San on 138 0000 0000")
    assert hidden.startswith("sha256:") and "Zhang" not in hidden


def test_errors_carry_a_chinese_localized_message() -> None:
    from google.rpc import error_details_pb2

    from services.common.errors import DatabaseUnavailable, InvalidArgument, NotFound

    def zh(status) -> str:  # type: ignore[no-untyped-def]
        for detail in status.details:
            msg = error_details_pb2.LocalizedMessage()
            if detail.Unpack(msg):
                assert msg.locale == "zh-CN"
                return msg.message
        raise AssertionError("no LocalizedMessage")

    assert zh(NotFound("client 42 not found").to_status("d")) == "未找到（client 42 not found）"
    assert zh(DatabaseUnavailable().to_status("d")) == "数据库暂不可用，请稍后重试"
    bad = InvalidArgument({"visit.topics": "at most 20"}).to_status("d")
    assert zh(bad) == "请求参数有误：visit.topics：at most 20"
    assert bad.message.startswith("invalid argument")  # the English stays
