"""The supervisor's dashboard in a real browser: the charts drawn by ECharts from the page's
data attributes (no inline script), every table with its CSV, the rota's gaps on a calendar,
the audit log of every service with filters; axe on every page; a broker is refused."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import grpc
from branch.directory.v1 import staff_pb2
from branch.directory.v1.identity_pb2_grpc import IdentityServiceStub

from services.console.pages import supervisor
from tests.console.conftest import Suite, _person, axe_check, sign_in


async def _supervisor(suite: Suite) -> str:
    number = "S" + uuid.uuid4().hex[:6].upper()
    async with grpc.aio.insecure_channel(suite.addrs["directory"]) as ch:
        await _person(suite.directory, IdentityServiceStub(ch), number, "周主管",
                      staff_pb2.ROLE_SUPERVISOR)
    return number


async def test_supervisor_dashboard_charts_tables_csv_and_audit(page: Any, suite: Suite) -> None:
    number = await _supervisor(suite)
    await sign_in(page, suite, number)
    await page.wait_for_url("**/supervisor")
    # every table of the dashboard is there (a refusal would say so instead of a table)
    for key in supervisor.TABLES:
        await page.wait_for_selector(f"#{key}-table")
    # ECharts drew the charts (SVG renderer) from the data-* attributes
    for chart in ("#chart-sla", "#chart-rota"):
        await page.wait_for_selector(f"{chart} svg")
    assert await page.locator("#sla-table tbody tr").count() == supervisor.WEEKS
    await axe_check(page)
    # CSV of a table: the same columns as on the page
    reply = await page.request.get(suite.url + "/supervisor/export/sla.csv",
                                   headers={"Accept-Language": "en"})
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO((await reply.text()).lstrip("\ufeff"))))
    assert rows[0][0] == "Week of" and len(rows) == supervisor.WEEKS + 1
    for key in supervisor.TABLES:
        got = await page.request.get(suite.url + f"/supervisor/export/{key}.csv")
        assert got.status == 200, key
    # the audit log of every service, filtered by method, and as CSV with the same filter
    await page.click("main a[href='/supervisor/audit']")
    await page.wait_for_selector("#audit-table")
    await axe_check(page)
    await page.fill("#audit-method", "CreateStaff")
    await page.click("form.filters button[type=submit]")
    await page.wait_for_selector("#audit-table tbody tr td:nth-child(4):has-text('CreateStaff')")
    methods = await page.locator("#audit-table tbody td:nth-child(4)").all_inner_texts()
    assert methods and set(methods) == {"CreateStaff"}
    assert "Not answering" not in await page.inner_text("main")  # all six services answered
    await axe_check(page)
    # by employee number: the supervisor's own sign-in, shown with their name
    await page.goto(suite.url + f"/supervisor/audit?staff={number}&method=Login")
    staff = await page.locator("#audit-table tbody td:nth-child(3)").all_inner_texts()
    assert staff and set(staff) == {f"周主管 ({number})"}
    got = await page.request.get(suite.url + "/supervisor/audit.csv?method=CreateStaff")
    lines = list(csv.reader(io.StringIO((await got.text()).lstrip("\ufeff"))))
    assert len(lines) > 1 and {r[3] for r in lines[1:]} == {"CreateStaff"}
    # a filter that is not understood says so and lists nothing (not the whole log)
    for query, words in (("since=2026-13-01", "is not a date"), ("service=bogus", "bogus")):
        reply = await page.goto(suite.url + f"/supervisor/audit?{query}")
        assert reply.status == 400, query
        assert words in await page.inner_text("[role=alert]"), query
        assert await page.locator("#audit-table").count() == 0, query
        got = await page.request.get(suite.url + f"/supervisor/audit.csv?{query}",
                                     headers={"Accept-Language": "en"})
        assert got.status == 400 and words in await got.text(), query


async def test_a_broker_may_not_open_the_dashboard(page: Any, suite: Suite) -> None:
    await sign_in(page, suite, suite.people.broker_a)
    await page.wait_for_selector("#q")
    for path in ("/supervisor", "/supervisor/audit", "/supervisor/export/sla.csv"):
        reply = await page.goto(suite.url + path)
        assert reply.status == 403, path
    await axe_check(page)
