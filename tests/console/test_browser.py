"""The console in a real browser against the real services (conftest.py)."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1 import holding_pb2

from services.common.protos import ts
from tests.console.conftest import PASSWORD, Suite, axe_check, change_password, sign_in
from tests.harness import ADMIN


async def test_sign_in_and_out(page: Any, suite: Suite) -> None:
    await sign_in(page, suite, suite.people.broker_a)
    await page.wait_for_selector("text=李经纪")
    assert "Broker" in await page.inner_text("header")
    await axe_check(page)
    await page.click("text=Sign out")
    await page.wait_for_selector("text=You have signed out.")


async def test_wrong_password_says_so(page: Any, suite: Suite) -> None:
    await sign_in(page, suite, suite.people.broker_a, "not the password")
    assert "wrong" in await page.inner_text("#signin-error")
    await axe_check(page)


async def test_idle_session_goes_back_to_sign_in_with_the_reason(page: Any,
                                                                  suite: Suite) -> None:
    await sign_in(page, suite, suite.people.broker_a)
    await page.wait_for_selector("text=李经纪")
    suite.clock.offset = timedelta(minutes=31)
    try:
        await page.goto(suite.url + f"/clients/{suite.people.client_a.id}")
        assert "/signin" in page.url
        assert "without activity" in await page.inner_text("main")
        await axe_check(page)
    finally:
        suite.clock.offset = timedelta()


async def test_csrf_post_without_or_with_wrong_token_is_refused(page: Any,
                                                                suite: Suite) -> None:
    await sign_in(page, suite, suite.people.admin_no)
    await page.wait_for_selector("#staff-table")
    before = await suite.directory.ListStaff(dapi.ListStaffRequest(page_size=500),
                                             metadata=ADMIN)
    for token in (None, "forged"):
        data = {"employee_no": "EVIL1", "display_name": "Mallory", "roles": "admin"}
        if token:
            data["csrf_token"] = token
        reply = await page.request.post(suite.url + "/admin/staff", form=data,
                                        headers={"Accept-Language": "en"})
        assert reply.status == 403
        assert "did not come from this console" in await reply.text()
    after = await suite.directory.ListStaff(dapi.ListStaffRequest(page_size=500),
                                            metadata=ADMIN)
    assert len(after.staff) == len(before.staff)


async def test_admin_creates_staff_and_resets_a_password(page: Any, suite: Suite) -> None:
    await sign_in(page, suite, suite.people.admin_no)
    await page.wait_for_selector("#staff-table")
    await axe_check(page)
    number = "N" + suite.people.admin_no
    await page.fill("#new-employee-no", number)
    await page.fill("#new-display-name", "周新人")
    await page.check("input[name=roles][value=service_agent]")
    await page.click("main form.stack button[type=submit]")
    await page.wait_for_selector("text=The staff member was created.")
    await axe_check(page)
    await page.click("text=Reset password")
    temporary = await page.inner_text("#temporary-password")
    assert len(temporary) >= 10
    # the new person signs in with it and must choose a password first
    await page.click("text=Sign out")
    await sign_in(page, suite, number, temporary)
    await page.wait_for_selector("text=must be changed")
    await axe_check(page)
    await change_password(page, temporary, PASSWORD)
    await page.wait_for_selector("text=Your password was changed")
    await sign_in(page, suite, number)
    await page.wait_for_selector("text=周新人")


async def test_search_box_finds_a_client_by_pinyin_initials(page: Any, suite: Suite) -> None:
    await sign_in(page, suite, suite.people.broker_a)
    await page.wait_for_selector("#q")
    await page.fill("#q", "zsf")
    link = page.locator("#search-results a", has_text="张三丰")
    await link.wait_for()
    await axe_check(page)
    await link.click()
    await page.wait_for_selector("h1:has-text('张三丰')")


async def test_client_360_for_own_client_and_refusal_for_another_brokers(
        page: Any, suite: Suite) -> None:
    client_id = suite.people.client_a.id

    async def records() -> AsyncIterator[dapi.ImportTradesRequest]:
        yield dapi.ImportTradesRequest(trade=holding_pb2.Trade(
            trade_id=f"{client_id}-console-1", client_id=client_id, ticker="600519",
            side=holding_pb2.SIDE_BUY, quantity=300, price="1688.5", fee="12.25",
            trade_time=ts(suite.clock.now() - timedelta(days=3))))

    await suite.directory.ImportTrades(records(), metadata=ADMIN)
    await sign_in(page, suite, suite.people.broker_a)
    await page.wait_for_selector("#q")
    await page.goto(suite.url + f"/clients/{client_id}")
    main = await page.inner_text("main")
    assert "张三丰" in main and "C3" in main
    # the recent trade, read from the columnar stream: decimals as imported
    assert "600519" in main and "1,688.50" in main and "12.25" in main and "buy" in main
    for heading in ("Holdings", "Recent trades", "Visits", "Tickets", "Advisories"):
        assert heading in main
    await axe_check(page)
    reply = await page.goto(suite.url + f"/clients/{suite.people.client_b.id}")
    assert reply.status == 403
    assert "钱多多" not in await page.inner_text("main")
    assert "Not allowed" in await page.inner_text("h1")
    await axe_check(page)


async def test_healthz_checks_the_directory(suite: Suite) -> None:
    def get() -> tuple[int, str, str, str]:
        with urllib.request.urlopen(suite.url + "/healthz", timeout=10) as reply:
            return (reply.status, reply.read().decode(),
                    reply.headers["content-security-policy"], reply.headers["server-timing"])

    status, body, csp, timing = await asyncio.to_thread(get)
    assert (status, body) == (200, "ok")
    assert "script-src 'self'" in csp
    # the server's time for the request (bench/console_pages.py reads it), in ms
    assert re.fullmatch(r"app;dur=\d+\.\d", timing), timing


async def test_a_csp_violation_or_script_error_is_caught(page: Any, suite: Suite) -> None:
    """The browser runs under the console's real CSP and every page test fails on a
    violation (the page fixture), so this inline script must be refused and reported."""
    await sign_in(page, suite, suite.people.broker_a)
    await page.wait_for_selector("#q")
    async with page.expect_event("pageerror"), page.expect_console_message(
            lambda m: m.text.startswith("CSP violation")):
        await page.evaluate("""() => { const s = document.createElement('script');
            s.textContent = 'window.inlineRan = true'; document.body.append(s);
            setTimeout(() => { throw new Error('boom'); }); }""")
    assert not await page.evaluate("() => window.inlineRan === true")
    faults = "\n".join(page.faults)
    assert "CSP violation: script-src" in faults and "pageerror: " in faults and "boom" in faults
    page.faults.clear()
