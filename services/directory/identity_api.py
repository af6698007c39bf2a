"""Thin gRPC adapter for IdentityService: request -> Identity call -> response."""

from __future__ import annotations

from branch.directory.v1 import identity_pb2_grpc as grpc_api

from services.directory.identity import Identity


class IdentityServicer(grpc_api.IdentityServiceServicer):
    def __init__(self, identity: Identity) -> None:
        self.i = identity

    async def Login(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.login(request)

    async def RefreshToken(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.refresh(request)

    async def Logout(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.logout(request)

    async def ChangePassword(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.change_password(request)

    async def ResetPassword(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.reset_password(request)

    async def SetStaffRoles(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.set_roles(request)

    async def IssueServiceToken(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.issue_service_token(request)

    async def ListSigningKeys(self, request, context):  # type: ignore[no-untyped-def]
        return await self.i.list_signing_keys()
