"""Benchmark: the staff console's time per page with N signed-in staff browsing at once
against the demo branch (issue 14: p95 under 300 ms on this machine).

It starts the whole suite as `branch up --demo` does (a subprocess of `branch up --demo`, its
own NATS, free ports, a temporary data directory unless `--data-dir` names one: a directory
whose demo is already loaded is served as it is, which skips the few minutes of loading).
The demo makes one account per role (<data-dir>/demo.accounts), so the N staff are those
accounts signed in several times each, round robin over the roles that have a home page:
each sign-in is its own session (own cookies, own CSRF token, own session in NATS KV), as
several browsers of one person would be. Each person then browses, one request at a time,
their role's home page, the search page (a common surname) and Client 360 of a client in
their scope (found through that search; roles that find none skip it), until each has made
`--requests` requests or `--seconds` have passed.

Printed: one Markdown row per page with the requests, the time the client waited (p50, p95,
p99), the server's own time from the console's `Server-Timing: app;dur=` header (p50, p95)
and errors (anything but 200, or no answer within 60 s); then the suite process's CPU time
a request and the machine's load average.

Run: ./dev bench   (or .venv/bin/python bench/console_pages.py [--staff 50] [--requests 20]
     [--demo-clients 2000] [--data-dir DIR])
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from services import registry  # noqa: E402
from services.cli.demo import read_demo_accounts  # noqa: E402
from services.common.nats_link import free_port  # noqa: E402

BRANCH = str(Path(sys.executable).parent / "branch")
# each role's home page (services/console/pages/home.py HOMES); quality_inspector has none
HOMES = {"client_manager": "/day", "consultant": "/forms", "service_agent": "/desk",
         "broker": "/inbox", "analyst": "/notes", "compliance": "/review",
         "supervisor": "/supervisor", "admin": "/admin/staff"}
SURNAMES = "王李张刘陈杨黄赵吴周"
CLIENT_LINK = re.compile(r'href="/clients/([^"/?#]+)"')
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
TIMING = re.compile(r"app;dur=([0-9.]+)")
REQUEST_TIMEOUT = 60.0


@dataclass
class Person:
    role: str
    employee_no: str
    client: httpx.AsyncClient
    clients_in_scope: list[str] = field(default_factory=list)


@dataclass
class Results:
    took: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_kinds: dict[str, int] = field(default_factory=lambda: defaultdict(int))


async def start_suite(data_dir: Path, demo_clients: int, timeout: float
                      ) -> tuple[asyncio.subprocess.Process, str, asyncio.Task[None]]:
    """`branch up --demo` in data_dir on free ports; (process, console URL, the task that
    keeps reading its output). Waits at most `timeout` seconds for it to be up."""
    ports = {name: free_port() for name in registry.SERVICES}
    console_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANCH_")}
    env.update({f"BRANCH_{n.upper()}_PORT": str(p) for n, p in ports.items()})
    env["BRANCH_CONSOLE_PORT"] = str(console_port)
    proc = await asyncio.create_subprocess_exec(
        BRANCH, "up", "--demo", "--demo-clients", str(demo_clients), "--data-dir",
        str(data_dir), env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    assert proc.stdout is not None
    banner: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"branch up not up after {timeout:.0f} s:\n"
                                   + "".join(banner[-20:]))
            line = (await asyncio.wait_for(proc.stdout.readline(), timeout=left)).decode()
            if not line:
                raise RuntimeError("branch up exited:\n" + "".join(banner[-30:]))
            banner.append(line)
            if line.startswith("demo:"):
                print(f"  {line.rstrip()}  ({time.strftime('%H:%M:%S')})", file=sys.stderr,
                      flush=True)
            if "Ctrl-C" in line:
                break
    except BaseException:
        await stop_suite(proc)
        raise

    async def drain() -> None:  # the pipe never fills while the suite runs
        assert proc.stdout is not None
        while await proc.stdout.read(65536):
            pass

    return proc, f"http://127.0.0.1:{console_port}", asyncio.create_task(drain())


async def stop_suite(proc: asyncio.subprocess.Process) -> None:
    """Ctrl-C, as a person would; killed if it has not stopped within 60 s."""
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(proc.wait(), timeout=60)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def sign_in(url: str, role: str, employee_no: str, password: str) -> Person:
    client = httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT, follow_redirects=False)
    form = await client.get("/signin")
    token = TOKEN.search(form.text)
    if token is None:
        raise RuntimeError(f"no CSRF token on /signin ({form.status_code})")
    reply = await client.post("/signin", data={"csrf_token": token.group(1),
                                               "employee_no": employee_no,
                                               "password": password, "next": "/"})
    if reply.status_code != 303 or reply.headers.get("location") != "/":
        raise RuntimeError(f"{employee_no} ({role}) could not sign in: {reply.status_code}")
    return Person(role, employee_no, client)


async def find_clients(person: Person) -> list[str]:
    """Ids of clients this person may open: from their home page and their searches."""
    found: list[str] = []
    for path in [HOMES[person.role], *(f"/search?q={s}" for s in SURNAMES)]:
        reply = await person.client.get(path)
        found += [c for c in CLIENT_LINK.findall(reply.text) if c not in found]
        if len(found) >= 10:
            break
    return found


def pages_of(person: Person, n: int) -> list[tuple[str, str]]:
    """(label, path) of the person's n-th request: home, search, Client 360 in turn."""
    home = (f"home: {person.role} {HOMES[person.role]}", HOMES[person.role])
    search = ("search (a surname)", f"/search?q={SURNAMES[n % len(SURNAMES)]}")
    turn = [home, search]
    if person.clients_in_scope:
        cid = person.clients_in_scope[n % len(person.clients_in_scope)]
        turn.append(("Client 360", f"/clients/{cid}"))
    return turn


async def browse(person: Person, index: int, requests: int, until: float,
                 results: Results) -> None:
    for n in range(requests):
        if time.monotonic() >= until:
            return
        turn = pages_of(person, n // 3)
        label, path = turn[(n + index) % len(turn)]
        start = time.perf_counter()
        try:
            reply = await person.client.get(path)
        except httpx.HTTPError as exc:
            results.errors[label] += 1
            results.error_kinds[type(exc).__name__] += 1
            continue
        took = (time.perf_counter() - start) * 1000
        results.took[label].append(took)
        timing = TIMING.search(reply.headers.get("server-timing", ""))
        if timing:
            results.server[label].append(float(timing.group(1)))
        if reply.status_code != 200:
            results.errors[label] += 1
            results.error_kinds[f"HTTP {reply.status_code}"] += 1


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))]


def table(results: Results) -> list[str]:
    def ms(values: list[float], p: float) -> str:
        return f"{pct(values, p):.0f}" if values else "—"

    lines = ["| page | requests | p50 ms | p95 ms | p99 ms | server p50 ms | server p95 ms "
             "| errors |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    every: list[float] = []
    every_server: list[float] = []
    labels = sorted(set(results.took) | set(results.errors),
                    key=lambda x: (not x.startswith("home"), x))
    for label in labels:
        took, server = results.took[label], results.server[label]
        every += took
        every_server += server
        lines.append(f"| {label} | {len(took)} | {ms(took, 50)} | {ms(took, 95)} | "
                     f"{ms(took, 99)} | {ms(server, 50)} | {ms(server, 95)} | "
                     f"{results.errors[label]} |")
    lines.append(f"| **every page** | {len(every)} | {ms(every, 50)} | {ms(every, 95)} | "
                 f"{ms(every, 99)} | {ms(every_server, 50)} | {ms(every_server, 95)} | "
                 f"{sum(results.errors.values())} |")
    return lines


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    load_before = os.getloadavg()
    began = time.monotonic()
    proc, url, drain = await start_suite(data_dir, args.demo_clients, args.startup_timeout)
    try:
        up_after = time.monotonic() - began
        found = read_demo_accounts(data_dir)
        if found is None:
            raise RuntimeError(f"no demo accounts in {data_dir}")
        password, accounts = found
        roles = [(r, no) for r, no, _ in accounts if r in HOMES]
        people = [await sign_in(url, *roles[i % len(roles)], password)
                  for i in range(args.staff)]
        scope: dict[str, list[str]] = {}
        for person in people:
            if person.role not in scope:
                scope[person.role] = await find_clients(person)
            person.clients_in_scope = scope[person.role]
        results = Results()
        cpu_before = cpu_seconds(proc.pid)
        start = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(*(browse(p, i, args.requests, start + args.seconds, results)
                             for i, p in enumerate(people))),
            timeout=args.seconds + REQUEST_TIMEOUT + 30)
        wall = time.monotonic() - start
        cpu = cpu_seconds(proc.pid) - cpu_before
        load_after = os.getloadavg()
        for person in people:
            await person.client.aclose()
    finally:
        await stop_suite(proc)
        drain.cancel()
    made = sum(len(v) for v in results.took.values()) + sum(results.errors.values())
    per_role = len(people) // len(roles)
    print(f"Console pages: {len(people)} signed-in staff browsing at once (the demo's "
          f"{len(roles)} accounts, one per role, each signed in {per_role}–{per_role + 1} "
          f"times: independent sessions), one request at a time each; demo of "
          f"{args.demo_clients:,} clients (suite up in {up_after:.0f} s)\n")
    print("\n".join(table(results)))
    print(f"\n{made} requests in {wall:.1f} s ({made / wall:.1f} pages/s); suite process CPU "
          f"{cpu:.1f} s ({cpu / max(made, 1) * 1000:.1f} ms a request); "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
          f"({os.cpu_count()} cores)")
    print("Client 360 in scope: " + ", ".join(f"{r} {len(c)}" for r, c in scope.items()))
    if results.error_kinds:
        print("errors: " + ", ".join(f"{k} ×{v}" for k, v in results.error_kinds.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--staff", type=int, default=50, help="signed-in people at once")
    parser.add_argument("--requests", type=int, default=20, help="pages each person opens")
    parser.add_argument("--seconds", type=float, default=180,
                        help="stop browsing after this long, whatever is left")
    parser.add_argument("--demo-clients", type=int, default=2000,
                        help="clients in the demo branch (when it is loaded here)")
    parser.add_argument("--data-dir", type=Path,
                        help="serve this data directory (its demo is loaded on the first run "
                        "and reused after); default: a temporary one")
    parser.add_argument("--startup-timeout", type=float, default=1200,
                        help="seconds to wait for the suite and the demo load")
    args = parser.parse_args()
    if args.data_dir is not None:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args, args.data_dir.resolve()))
        return
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
