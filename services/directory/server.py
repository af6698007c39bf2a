"""Wiring: the directory as a ServiceSpec."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import grpc
from branch.directory.v1 import directory_service_pb2, directory_service_pb2_grpc

from services.common.server import ServiceContext, ServiceSpec, default_token_ttl
from services.directory import assignments
from services.directory.access import ACCESS
from services.directory.api import DirectoryServicer
from services.directory.service import Directory

SERVICE_NAME = directory_service_pb2.DESCRIPTOR.services_by_name["DirectoryService"].full_name


def directory_of(ctx: ServiceContext) -> Directory:
    if "directory" not in ctx.extras:
        ctx.extras["directory"] = Directory(
            db=ctx.db, clock=ctx.clock, signer=ctx.signer,
            token_ttl=default_token_ttl(ctx.settings), tz=ZoneInfo(ctx.settings.timezone),
        )
    built: Directory = ctx.extras["directory"]
    return built


def register(server: grpc.aio.Server, ctx: ServiceContext) -> None:
    directory_service_pb2_grpc.add_DirectoryServiceServicer_to_server(
        DirectoryServicer(directory_of(ctx)), server
    )


async def on_start(ctx: ServiceContext) -> None:
    await directory_of(ctx).ensure_admin()


SPEC = ServiceSpec(
    name="directory",
    grpc_services=[SERVICE_NAME],
    access=ACCESS,
    register=register,
    migrations=Path(__file__).parent / "migrations" / "versions",
    on_start=on_start,
    subscriptions=lambda ctx: assignments.subscriptions(),
)
