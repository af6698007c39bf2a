"""Pure logic: tokens, settings, page tokens, error details, ids."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from google.rpc import error_details_pb2

from services.common.auth import (
    AccessTable,
    Principal,
    Standing,
    TokenSigner,
    TokenVerifier,
    UnknownKey,
    allow,
    bearer_from_metadata,
    svc,
)
from services.common.errors import InvalidArgument, PermissionDenied, Unauthenticated, Violations
from services.common.ids import new_id
from services.common.keys import SigningKey, jwks
from services.common.pagination import decode_token, encode_token, page_size
from services.common.settings import ConfigError, load_settings

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def _verifier(*keys: SigningKey, standing: dict[str, Standing] | None = None) -> TokenVerifier:
    verifier = TokenVerifier(standing=(standing if standing is not None else {}).get)
    verifier.set_keys("test", jwks([k.public_jwk() for k in keys]))
    return verifier


def test_token_round_trip_and_rejections() -> None:
    key = SigningKey.generate()
    signer, verifier = TokenSigner(key), _verifier(key)
    token = signer.issue("s1", ["broker"], datetime.now(UTC), timedelta(minutes=5))
    assert jwt.get_unverified_header(token)["kid"] == key.kid
    assert verifier.verify(token) == Principal("s1", frozenset({"broker"}))
    expired = signer.issue("s1", ["broker"], NOW - timedelta(days=1), timedelta(minutes=5))
    with pytest.raises(Unauthenticated) as err:
        verifier.verify(expired)
    assert err.value.reason == "TOKEN_EXPIRED"
    forged = TokenSigner(SigningKey.generate()).issue("s1", ["admin"], datetime.now(UTC),
                                                      timedelta(hours=1))
    with pytest.raises(UnknownKey):  # the interceptor fetches keys once and looks again
        verifier.verify(forged)


def test_algorithm_confusion_none_and_edited_claims_are_refused() -> None:
    key = SigningKey.generate()
    verifier = _verifier(key)
    now = datetime.now(UTC)
    claims = {"iss": "branch", "sub": "s1", "roles": ["admin"], "iat": int(now.timestamp()),
              "exp": int((now + timedelta(hours=1)).timestamp())}
    public_pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = base64.urlsafe_b64decode(key.x + "==")
    for secret in (public_pem, raw, key.x.encode(), json.dumps(key.public_jwk()).encode()):
        for alg in ("HS256", "HS512"):
            forged = _sign_hmac(claims, secret, alg, key.kid)
            with pytest.raises(Unauthenticated):
                verifier.verify(forged)
    unsigned = _b64(json.dumps({"alg": "none", "kid": key.kid}).encode()) + "." + \
        _b64(json.dumps(claims).encode()) + "."
    with pytest.raises(Unauthenticated):
        verifier.verify(unsigned)
    good = TokenSigner(key).issue("s1", ["broker"], now, timedelta(minutes=5))
    head, body, sig = good.split(".")
    edited = json.loads(base64.urlsafe_b64decode(body + "=="))
    edited["roles"] = ["admin"]
    with pytest.raises(Unauthenticated):
        verifier.verify(f"{head}.{_b64(json.dumps(edited).encode())}.{sig}")
    no_kid = jwt.encode(claims, key.private, algorithm="EdDSA")
    with pytest.raises(Unauthenticated):
        verifier.verify(no_kid)


def test_standing_refuses_deactivated_and_drops_removed_roles() -> None:
    key = SigningKey.generate()
    now = datetime.now(UTC) - timedelta(seconds=10)
    token = TokenSigner(key).issue("s1", ["broker", "analyst"], now, timedelta(minutes=5))
    standing: dict[str, Standing] = {}
    verifier = _verifier(key, standing=standing)
    assert verifier.verify(token).roles == {"broker", "analyst"}
    standing["s1"] = Standing(True, frozenset({"analyst"}), now.timestamp() + 1)
    assert verifier.verify(token).roles == {"analyst"}
    later = TokenSigner(key).issue("s1", ["analyst", "compliance"], now + timedelta(seconds=5),
                                   timedelta(minutes=5))
    assert verifier.verify(later).roles == {"analyst", "compliance"}  # issued after the change
    standing["s1"] = Standing(False, frozenset({"analyst"}), now.timestamp() + 2)
    with pytest.raises(Unauthenticated) as err:
        verifier.verify(later)
    assert err.value.reason == "TOKEN_REVOKED"


def _count_signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each jwt.decode (the signature and claims check) from now on appends to the list."""
    checked: list[str] = []
    real_decode = jwt.decode

    def decode(*args: Any, **kwargs: Any) -> Any:
        checked.append("x")
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", decode)
    return checked


def test_verified_tokens_are_remembered_but_standing_is_asked_every_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = SigningKey.generate()
    now = datetime.now(UTC) - timedelta(seconds=10)
    token = TokenSigner(key).issue("s1", ["broker", "analyst"], now, timedelta(minutes=5))
    standing: dict[str, Standing] = {}
    verifier = _verifier(key, standing=standing)
    assert verifier.verify(token).roles == {"broker", "analyst"}
    checked = _count_signature_checks(monkeypatch)
    assert verifier.verify(token).roles == {"broker", "analyst"}
    assert checked == []  # the signature was not checked again
    # a role removed after the token was issued is dropped at once, on a remembered token
    standing["s1"] = Standing(True, frozenset({"analyst"}), now.timestamp() + 1)
    assert verifier.verify(token).roles == {"analyst"}
    # a deactivation refuses the very next call
    standing["s1"] = Standing(False, frozenset({"analyst"}), now.timestamp() + 2)
    with pytest.raises(Unauthenticated) as err:
        verifier.verify(token)
    assert err.value.reason == "TOKEN_REVOKED"
    # keys replaced: the remembered token is checked again, against keys that no longer sign it
    verifier.set_keys("test", jwks([SigningKey.generate().public_jwk()]))
    with pytest.raises(UnknownKey):
        verifier.verify(token)
    assert checked == []  # refused before any signature check: its key is gone


def test_a_remembered_token_is_forgotten_at_its_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    key = SigningKey.generate()
    issued = datetime.now(UTC) - timedelta(seconds=10)
    token = TokenSigner(key).issue("s1", ["broker"], issued, timedelta(minutes=5))
    verifier = _verifier(key)
    verifier.verify(token)
    checked = _count_signature_checks(monkeypatch)
    exp = (issued + timedelta(minutes=5)).timestamp()
    monkeypatch.setattr(time, "time", lambda: exp - 1)
    verifier.verify(token)
    assert checked == []
    monkeypatch.setattr(time, "time", lambda: exp)  # the cache's clock says: expired
    verifier.verify(token)  # so PyJWT checks it again (its own clock is still real)
    assert checked == ["x"]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sign_hmac(claims: dict[str, Any], secret: bytes, alg: str, kid: str) -> str:
    digest = {"HS256": hashlib.sha256, "HS512": hashlib.sha512}[alg]
    signing_input = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode()) + "." + \
        _b64(json.dumps(claims).encode())
    sig = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64(sig)}"


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
    vip = Principal("svc:vip", frozenset({"service", "service:vip"}))
    onsite_only = AccessTable({"ListNotes": allow("broker", *svc("onsite"))})
    with pytest.raises(PermissionDenied):  # a service reaches only the methods it calls
        onsite_only.check("ListNotes", vip)
    assert onsite_only.check("ListNotes", Principal("svc:onsite", frozenset({"service:onsite"})))


def test_settings_name_the_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRANCH_TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("BRANCH_METRICS_PORT", "99999")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "BRANCH_TIMEZONE" in str(err.value) and "BRANCH_METRICS_PORT" in str(err.value)


def test_settings_defaults_and_templates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BRANCH_DATABASE_URL", "postgresql+asyncpg://h/branch_{service}")
    settings = load_settings(data_dir=tmp_path)
    assert settings.database_url_for("vip") == "postgresql+asyncpg://h/branch_vip"
    assert settings.address("remote") == "127.0.0.1:50053"
    key = settings.service_secret()
    assert key == settings.service_secret() and len(key) >= 32
    assert (tmp_path / "service_key").stat().st_mode & 0o777 == 0o600


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
    from google.rpc import error_details_pb2, status_pb2

    from services.common.errors import DatabaseUnavailable, InvalidArgument, NotFound

    def zh(status: status_pb2.Status) -> str:
        for detail in status.details:
            msg = error_details_pb2.LocalizedMessage()
            if detail.Unpack(msg):
                assert msg.locale == "zh-CN"
                message: str = msg.message
                return message
        raise AssertionError("no LocalizedMessage")

    # the catalogue's template, filled with the same values (services/common/messages.py)
    assert zh(NotFound("client {client_id} not found", client_id="42").to_status("d")) \
        == "找不到客户 42"
    # a message outside the catalogue: this kind of error's phrase, then the English
    assert zh(NotFound("client 42 went away").to_status("d")) == "未找到（client 42 went away）"
    assert zh(DatabaseUnavailable().to_status("d")) == "数据库暂不可用，请稍后重试"
    bad = InvalidArgument({"visit.topics": "at most 20"}).to_status("d")
    assert zh(bad) == "请求参数有误：话题：最多 20 项"
    assert bad.message.startswith("invalid argument")  # the English stays


def test_ts_takes_a_naive_datetime_as_utc_whatever_the_host_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite hands back naive UTC datetimes; the host's TZ must not shift them."""
    import time
    from datetime import UTC, datetime

    from services.common.protos import ts

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        naive = ts(datetime(2026, 12, 1, 0, 30))
        assert naive is not None
        assert naive.ToDatetime(tzinfo=UTC) == datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    finally:
        monkeypatch.undo()
        time.tzset()
