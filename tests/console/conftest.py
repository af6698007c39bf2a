"""The console against the real services (directory, onsite, remote, vip, research, insight
from the harness, one NATS), started once for tests/console (package scope: every test file
shares it), and a real Chromium driven by Playwright.

Chromium is Debian's (/usr/bin/chromium): installed here with apt-get when missing and
running as root, else the browser tests are skipped saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import grpc
import pytest
from branch.directory.v1 import client_pb2, identity_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from branch.directory.v1.identity_pb2_grpc import IdentityServiceStub

from services.common.nats_link import EmbeddedNats
from services.console.server import ConsoleRunner
from services.directory.server import SPEC as DIRECTORY
from services.insight.server import SPEC as INSIGHT
from services.onsite.server import SPEC as ONSITE
from services.remote.server import SPEC as REMOTE
from services.research.server import SPEC as RESEARCH
from services.vip.server import SPEC as VIP
from tests.harness import ADMIN, make_settings, running

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub
    from branch.directory.v1.identity_pb2_grpc import IdentityServiceAsyncStub

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
AXE = "/static/vendor/axe.min.js"  # the console's own copy: 'self' under its CSP
# Chromium reports a CSP violation in the console; this makes sure of it (an init script runs
# outside the page's CSP) and says which directive and what was blocked
REPORT_CSP = """document.addEventListener('securitypolicyviolation', e => console.error(
  'CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') +
  ' at ' + e.sourceFile + ':' + e.lineNumber));
// not sseError: an event stream the server ends (the inbox's, after telling the page the
// sign-in ended) is how EventSource works; htmx reconnects, and the live tests check delivery
for (const t of ['responseError', 'sendError', 'swapError', 'targetError',
                 'onLoadError', 'oobErrorNoTarget', 'historyCacheError', 'evalDisallowedError'])
  document.addEventListener('htmx:' + t, e => console.error('htmx:' + t + ' on ' +
    location.pathname + ' ' + ((e.detail && e.detail.xhr && e.detail.xhr.status) || '') +
    ' ' + ((e.detail && e.detail.error) || '')));"""
PASSWORD = "correct horse battery"


class OffsetClock:
    """Real time moved by `offset` (tests jump past the idle expiry; tokens stay real)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class People:
    admin_no: str
    broker_a: str
    broker_b: str
    client_a: client_pb2.Client
    client_b: client_pb2.Client
    ids: dict[str, str] = field(default_factory=dict)


@dataclass
class Suite:
    url: str
    clock: OffsetClock
    people: People
    directory: DirectoryServiceAsyncStub
    addrs: dict[str, str] = field(default_factory=dict)  # service -> host:port


def ensure_chromium() -> str | None:
    """'' when chromium is there (installed now if need be), else why it is not."""
    if os.path.exists(CHROMIUM):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"{CHROMIUM} missing and not root: apt-get install -y chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
    done = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0 or not os.path.exists(CHROMIUM):
        return f"apt-get install chromium failed: {done.stderr[-300:]}"
    return None


async def _person(d: DirectoryServiceAsyncStub, ident: IdentityServiceAsyncStub, no: str, name: str,
                  role: staff_pb2.Role.ValueType) -> str:
    staff = await d.CreateStaff(dapi.CreateStaffRequest(staff=staff_pb2.Staff(
        employee_no=no, display_name=name, roles=[role])), metadata=ADMIN)
    temp = await ident.ResetPassword(identity_pb2.ResetPasswordRequest(staff_id=staff.id),
                                     metadata=ADMIN)
    await ident.ChangePassword(identity_pb2.ChangePasswordRequest(
        employee_no=no, password=temp.temporary_password, new_password=PASSWORD))
    return staff.id


@pytest.fixture(scope="package")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """tests/console's own nats-server (overrides the session's): the services here start
    on an empty stream, not behind the backlog of events every earlier test on this pytest
    worker published (a vip consumer working through thousands of other suites' client
    events kept a key client off the roster for more than 20 s)."""
    server = EmbeddedNats(tmp_path_factory.mktemp("console-nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="package")
async def suite(tmp_path_factory: pytest.TempPathFactory, nats_server: Any
                ) -> AsyncIterator[Suite]:
    tmp = tmp_path_factory.mktemp("console")
    nats_url = nats_server.url
    async with AsyncExitStack() as stack:
        directory = await stack.enter_async_context(
            running(DIRECTORY, make_settings(tmp / "directory", nats_url)))
        addrs = {"directory_addr": f"127.0.0.1:{directory.port}"}
        for spec in (RESEARCH, ONSITE, REMOTE, VIP, INSIGHT):
            r = await stack.enter_async_context(
                running(spec, make_settings(tmp / spec.name, nats_url, **addrs)))
            addrs[f"{spec.name}_addr"] = f"127.0.0.1:{r.port}"
        ch = grpc.aio.insecure_channel(addrs["directory_addr"])
        stack.push_async_callback(ch.close)
        d, ident = DirectoryServiceStub(ch), IdentityServiceStub(ch)
        tag = uuid.uuid4().hex[:4].upper()
        people = People(admin_no=f"A{tag}", broker_a=f"BA{tag}", broker_b=f"BB{tag}",
                        client_a=client_pb2.Client(), client_b=client_pb2.Client())
        people.ids["admin"] = await _person(d, ident, people.admin_no, "王管理",
                                            staff_pb2.ROLE_ADMIN)
        people.ids["broker_a"] = await _person(d, ident, people.broker_a, "李经纪",
                                               staff_pb2.ROLE_BROKER)
        people.ids["broker_b"] = await _person(d, ident, people.broker_b, "赵经纪",
                                               staff_pb2.ROLE_BROKER)
        for attr, name, broker, acct in (("client_a", "张三丰", "broker_a", "1"),
                                         ("client_b", "钱多多", "broker_b", "2")):
            client = await d.CreateClient(dapi.CreateClientRequest(client=client_pb2.Client(
                account_no=f"31{acct}{uuid.uuid4().int % 10**8:08d}", display_name=name,
                phone=f"1380000{acct}{uuid.uuid4().int % 1000:03d}",
                channel=client_pb2.CHANNEL_ONSITE, tier=client_pb2.TIER_KEY,
                risk_tolerance=client_pb2.RISK_TOLERANCE_C3, risk_assessed_on="2026-01-05",
                broker_id=people.ids[broker], opened_on="2020-01-02",
                commission_rate="0.0003")), metadata=ADMIN)
            setattr(people, attr, client)
        clock = OffsetClock()
        console = ConsoleRunner(make_settings(tmp / "console", nats_url, **addrs),
                                clock=clock, port=0)
        await console.start()
        stack.push_async_callback(console.stop)
        yield Suite(f"http://127.0.0.1:{console.port}", clock, people, d,
                    {k.removesuffix("_addr"): v for k, v in addrs.items()})


@pytest.fixture(scope="package")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    why = ensure_chromium()
    if why:
        pytest.skip(why)
    from playwright.async_api import async_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
            locale="en-GB")  # under the console's real CSP: no bypass_csp
        await context.add_init_script(REPORT_CSP)
        context.on("page", _watch)  # every tab, the fixture's and a test's own
        yield context
        await context.close()


def _is_refusal_status(message: Any) -> bool:
    """Chromium's own line for a page the console answered 4xx (a refusal the test asked
    for, checked by the test itself), not a fault of the page: a static file or the icon
    missing is one."""
    path = urlsplit(message.location.get("url", "")).path
    return (message.text.startswith("Failed to load resource: the server responded with a "
                                    "status of 4")
            and not path.startswith("/static/") and path != "/favicon.ico")


def _watch(p: Any) -> None:
    """Collect the tab's CSP violations, script errors and htmx's error events in
    p.faults."""
    if hasattr(p, "faults"):
        return
    p.faults = []

    async def on_console(m: Any) -> None:
        if m.type != "error" or _is_refusal_status(m):
            return
        text = m.text
        if text == "Event" and "/htmx" in m.location.get("url", ""):
            return  # htmx logging its own error event: the init script names it (htmx:...)
        p.faults.append(f"console: {text} ({m.location.get('url')})")

    p.on("console", on_console)
    p.on("pageerror", lambda e: p.faults.append(f"pageerror: {e}"))


@pytest.fixture
async def page(browser: Any, suite: Suite) -> AsyncIterator[Any]:
    """A new tab that fails its test on any CSP violation or JavaScript error (checked at
    every axe_check and at the end)."""
    await browser.clear_cookies()
    p = await browser.new_page()
    _watch(p)
    yield p
    faults = list(p.faults)
    await p.close()
    assert not faults, faults


def assert_no_faults(page: Any) -> None:
    """No CSP violation or JavaScript error on the page so far."""
    assert not page.faults, page.faults


async def axe_check(page: Any) -> None:
    """axe-core on the page as it is: no serious or critical violation, and no CSP violation
    or script error so far."""
    assert_no_faults(page)
    await page.add_script_tag(url=AXE)
    result = await page.evaluate("async () => await axe.run(document)")
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, bad
    assert_no_faults(page)


async def sign_in(page: Any, suite: Suite, employee_no: str, password: str = PASSWORD) -> None:
    await page.goto(suite.url + "/signin")
    await axe_check(page)
    await page.fill("#employee_no", employee_no)
    await page.fill("#password", password)
    await page.click("form.stack button[type=submit]")


async def change_password(page: Any, current: str, new: str) -> None:
    """Send the password page's form (the current password, the new one twice); the caller
    waits for what should follow."""
    await page.fill("#password", current)
    await page.fill("#new_password", new)
    await page.fill("#new_password_again", new)
    await page.click("main form[action='/password'] button[type=submit]")
