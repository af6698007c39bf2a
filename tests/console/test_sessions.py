"""Sessions: the signed-in password change, and token refresh shared by console replicas."""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1 import identity_pb2, staff_pb2
from branch.directory.v1.identity_pb2_grpc import IdentityServiceStub

from services.console import backend, sessions
from services.console.app import build_app
from services.console.sessions import NatsStore, Session
from tests.console.conftest import (
    PASSWORD,
    Suite,
    _person,
    axe_check,
    change_password,
    sign_in,
)
from tests.harness import make_settings

NEW_PASSWORD = "a new horse battery"


async def _new_person(suite: Suite, role: Any = staff_pb2.ROLE_BROKER) -> str:
    number = "P" + uuid.uuid4().hex[:6].upper()
    async with grpc.aio.insecure_channel(suite.addrs["directory"]) as ch:
        await _person(suite.directory, IdentityServiceStub(ch), number, "孙改密", role)
    return number


def _other_browser_signs_in(suite: Suite, number: str) -> Callable[[str], int]:
    """A second sign-in of `number` (another browser: urllib with its own cookies); returns
    a function giving the status of a GET through it (303 to /signin once it has ended)."""
    jar = http.cookiejar.CookieJar()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    page = opener.open(suite.url + "/signin").read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    data = urllib.parse.urlencode({"csrf_token": token.group(1), "employee_no": number,
                                   "password": PASSWORD, "next": "/"}).encode()
    try:
        opener.open(suite.url + "/signin", data)
    except urllib.error.HTTPError as err:
        assert err.code == 303 and err.headers["location"] == "/"

    def status(path: str) -> int:
        try:
            return int(opener.open(suite.url + path).status)
        except urllib.error.HTTPError as err:
            return err.code

    assert status("/search?q=x") == 200
    return status


async def test_signed_in_password_change_changes_it_then_asks_for_the_new_one(
        page: Any, suite: Suite) -> None:
    number = await _new_person(suite)
    elsewhere = await asyncio.to_thread(_other_browser_signs_in, suite, number)
    await sign_in(page, suite, number)
    await page.wait_for_selector("text=孙改密")
    await page.click("header a[href='/password']")
    await page.wait_for_selector("#new_password")
    await axe_check(page)
    await change_password(page, PASSWORD, NEW_PASSWORD)
    await page.wait_for_selector("text=Your password was changed")
    await axe_check(page)
    # the person's sign-in in the other browser has ended too (the directory revoked its
    # refresh token; the console does not wait for its access token to run out)
    assert await asyncio.to_thread(elsewhere, "/search?q=x") == 303
    # the old password no longer signs in; the new one does
    await sign_in(page, suite, number, PASSWORD)
    assert "wrong" in await page.inner_text("#signin-error")
    await sign_in(page, suite, number, NEW_PASSWORD)
    await page.wait_for_selector("text=孙改密")


async def test_signed_in_password_change_with_a_wrong_current_password_keeps_the_session(
        page: Any, suite: Suite) -> None:
    number = await _new_person(suite)
    await sign_in(page, suite, number)
    await page.wait_for_selector("text=孙改密")
    await page.goto(suite.url + "/password")
    await change_password(page, "not my password", NEW_PASSWORD)
    await page.wait_for_selector("#password-error")
    await axe_check(page)
    await page.goto(suite.url + "/")
    assert "/signin" not in page.url
    await page.wait_for_selector("text=孙改密")


async def test_two_replicas_renewing_one_sign_in_at_once_spend_the_refresh_token_once(
        suite: Suite, nats_server: Any, tmp_path: Path) -> None:
    """Two console replicas (two apps, each its own NATS connection and channels, one
    session bucket) find the same sign-in's access token expired at the same moment. One
    renews it; the other waits for the record and uses the same new token. Before the
    compare-and-set both spent the refresh token, the directory took the second spend for a
    stolen token and ended the sign-in."""
    settings = make_settings(tmp_path, nats_server.url,
                             **{f"{k}_addr": v for k, v in suite.addrs.items()})
    consoles = []
    async with AsyncExitStack() as stack:
        for _ in range(2):
            store, nc = await NatsStore.connect(nats_server.url, timedelta(hours=1))
            stack.push_async_callback(nc.close)
            console = build_app(settings, store).state.console
            stack.push_async_callback(console.backend.close)
            consoles.append(console)
        number = await _new_person(suite)
        identity: Any = consoles[0].backend.identity
        login = await identity.Login(identity_pb2.LoginRequest(employee_no=number,
                                                               password=PASSWORD))
        now = datetime.now(UTC)
        record = Session(id=sessions.new_id(), staff_id=login.staff_id, employee_no=number,
                         display_name="孙改密", roles=list(login.roles),
                         access_token=login.access_token, access_expires=0.0,  # expired
                         refresh_token=login.refresh_token, csrf="c",
                         created_at=now.isoformat(), last_seen=now.isoformat())
        store = consoles[0].store
        await store.put(record)
        copies = [await c.store.get(record.id) for c in consoles]
        stale = await store.get(record.id)
        assert stale is not None and all(copies)
        tokens = await asyncio.gather(*(c.backend.access_token(copy, now)
                                        for c, copy in zip(consoles, copies, strict=True)))
        assert tokens[0] == tokens[1]  # (a JWT issued in the same second may equal the old)
        stored = await store.get(record.id)
        assert stored is not None and stored.access_token == tokens[0]
        assert backend.CLAIM not in stored.extra and stored.refresh_token != login.refresh_token
        # a request that read the record before the renewal cannot write the spent token back
        stale.last_seen = datetime.now(UTC).isoformat()
        assert not await store.replace(stale)
        # the sign-in lives on: the new token is accepted, and the next renewal works
        me = await suite.directory.GetStaff(dapi.GetStaffRequest(id=login.staff_id),
                                            metadata=(("authorization", f"Bearer {tokens[0]}"),))
        assert me.employee_no == number
        stored.access_expires = 0.0
        assert await store.replace(stored)
        spent = stored.refresh_token
        await consoles[1].backend.access_token(stored, now)
        renewed = await store.get(record.id)
        assert renewed is not None and renewed.refresh_token not in (spent, login.refresh_token)


async def test_memory_store_replace_is_a_compare_and_set() -> None:
    """The store contract the replicas rely on, on the unit-test store: a copy read before
    another write cannot overwrite it; delete_staff ends one person's sign-ins only."""
    store = sessions.MemoryStore()
    now = datetime(2026, 3, 1, 16, 5, tzinfo=UTC).isoformat()

    def record(sid: str, staff: str) -> Session:
        return Session(id=sid, staff_id=staff, employee_no="E", display_name="n",
                       roles=["broker"], access_token="a", access_expires=0.0,
                       refresh_token="r1", csrf="c", created_at=now, last_seen=now)

    await store.put(record("s1", "p1"))
    await store.put(record("s2", "p1"))
    await store.put(record("s3", "p2"))
    first, second = await store.get("s1"), await store.get("s1")
    assert first is not None and second is not None
    first.refresh_token = "r2"
    assert await store.replace(first)
    second.last_seen = now
    assert not await store.replace(second)  # would have written r1 back
    kept = await store.get("s1")
    assert kept is not None and kept.refresh_token == "r2"
    assert await store.delete_staff("p1") == 2
    assert await store.get("s1") is None and await store.get("s3") is not None
