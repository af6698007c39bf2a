"""Wiring: the directory as a ServiceSpec (DirectoryService and IdentityService)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
from branch.directory.v1 import (
    directory_service_pb2,
    directory_service_pb2_grpc,
    events_pb2,
    identity_pb2,
    identity_pb2_grpc,
)
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.consumer import Subscription
from services.common.events import Event
from services.common.identity import SigningSide
from services.common.logs import get_logger
from services.common.server import ServiceContext, ServiceSpec, default_token_ttl
from services.common.standing import known_staff, publish_standing
from services.directory import assignments
from services.directory.access import ACCESS
from services.directory.api import DirectoryServicer
from services.directory.identity import DEACTIVATED, ROLES_CHANGED, Identity
from services.directory.identity_api import IdentityServicer
from services.directory.keystore import KeyStore
from services.directory.models import Credential, Staff
from services.directory.service import Directory

SERVICE_NAME = directory_service_pb2.DESCRIPTOR.services_by_name["DirectoryService"].full_name
IDENTITY_NAME = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name
ADMIN_PASSWORD_FILE = "admin.password"


def keys_of(ctx: ServiceContext) -> KeyStore:
    if "keys" not in ctx.extras:
        ctx.extras["keys"] = KeyStore(ctx.db, ctx.clock)
    return ctx.extras["keys"]


def _announcer(ctx: ServiceContext):  # type: ignore[no-untyped-def]
    async def announce(staff_id: str, active: bool, roles: list[str], when: datetime) -> None:
        await publish_standing(ctx.nats, staff_id, active=active, roles=roles, changed=when)

    return announce


def directory_of(ctx: ServiceContext) -> Directory:
    if "directory" not in ctx.extras:
        ctx.extras["directory"] = Directory(
            db=ctx.db, clock=ctx.clock, keys=keys_of(ctx),
            token_ttl=default_token_ttl(ctx.settings), tz=ZoneInfo(ctx.settings.timezone),
            announce=_announcer(ctx),
        )
    return ctx.extras["directory"]


def identity_of(ctx: ServiceContext) -> Identity:
    if "identity" not in ctx.extras:
        s = ctx.settings
        ctx.extras["identity"] = Identity(
            db=ctx.db, clock=ctx.clock, keys=keys_of(ctx),
            access_ttl=default_token_ttl(s),
            refresh_ttl=timedelta(seconds=s.refresh_token_ttl_seconds),
            service_secret=s.service_secret(),
            max_failures=s.login_max_failures,
            lockout=timedelta(seconds=s.login_lockout_seconds),
            publish=_announcer(ctx),
        )
    return ctx.extras["identity"]


def register(server: grpc.aio.Server, ctx: ServiceContext) -> None:
    directory_service_pb2_grpc.add_DirectoryServiceServicer_to_server(
        DirectoryServicer(directory_of(ctx)), server
    )
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(
        IdentityServicer(identity_of(ctx)), server
    )


async def signing(ctx: ServiceContext) -> SigningSide:
    keys = keys_of(ctx)
    await keys.reload()
    return keys


async def on_start(ctx: ServiceContext) -> None:
    admin = await directory_of(ctx).ensure_admin()
    await bootstrap_admin_password(ctx, admin.id)


async def bootstrap_admin_password(ctx: ServiceContext, admin_id: str) -> None:
    """Give the bootstrap admin a first password (BRANCH_ADMIN_PASSWORD, or generated into
    <data_dir>/admin.password, mode 0600); it must be changed at the first sign-in."""
    identity = identity_of(ctx)
    async with ctx.db.read() as session:
        if await session.get(Credential, admin_id) is not None:
            return
    password = ctx.settings.admin_password or secrets.token_urlsafe(12)
    async with ctx.db.transaction() as session:
        await identity.set_password(session, admin_id, password, must_change=True)
    if not ctx.settings.admin_password:
        path = ctx.settings.data_dir / ADMIN_PASSWORD_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(password + "\n")


def background(ctx: ServiceContext, stop: asyncio.Event) -> list[Callable[[], Awaitable[None]]]:
    async def reconcile() -> None:
        """Write the standing of every staff member missing from the bucket (a new or
        wiped NATS store): a deactivation must not be forgotten with it."""
        try:
            known = await known_staff(ctx.nats)
            async with ctx.db.read() as session:
                rows = list((await session.exec(select(Staff))).all())
            for row in rows:
                if row.id not in known and not stop.is_set():
                    await publish_standing(
                        ctx.nats, row.id, active=row.active,
                        roles=[r for r in row.roles.split(",") if r],
                        changed=row.deactivated_at or ctx.clock.now())
        except Exception:
            get_logger("directory").warning("standing not reconciled", exc_info=True)

    return [reconcile]


def subscriptions(ctx: ServiceContext) -> list[Subscription]:
    async def standing(session: AsyncSession, event: Event) -> None:
        """Backs up the write made right after the change: lands even if NATS was away."""
        msg = events_pb2.StaffDeactivated()
        msg.ParseFromString(event.data)
        row = await session.get(Staff, msg.staff.id)
        if row is None:
            return
        await publish_standing(ctx.nats, row.id, active=row.active,
                               roles=[r for r in row.roles.split(",") if r],
                               changed=event.time)

    return [Subscription("standing", [DEACTIVATED, ROLES_CHANGED], standing)]


SPEC = ServiceSpec(
    name="directory",
    grpc_services=[SERVICE_NAME, IDENTITY_NAME],
    access=ACCESS,
    register=register,
    migrations=Path(__file__).parent / "migrations" / "versions",
    on_start=on_start,
    subscriptions=lambda ctx: [*assignments.subscriptions(), *subscriptions(ctx)],
    background=background,
    signing=signing,
)
