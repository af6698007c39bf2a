"""The on-site service's questions to the directory, over gRPC with the service's own token."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
from branch.directory.v1 import client_pb2, holding_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

from services.common.errors import NotFound, Unavailable
from services.common.names import Keeper

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub

TIMEOUT = 5.0


class DirectoryLink:
    def __init__(self, channel: Callable[[], grpc.aio.Channel],
                 names: Keeper | None = None) -> None:
        self._channel = channel
        self._names = names  # keeps the names of the clients and staff it is told about

    def _stub(self) -> DirectoryServiceAsyncStub:
        return DirectoryServiceStub(self._channel())

    async def get_client(self, client_id: str) -> client_pb2.Client:
        """The client, or NotFound (reason CLIENT_UNKNOWN) when the directory has no such id."""
        try:
            client = await self._stub().GetClient(dapi.GetClientRequest(id=client_id),
                                                  timeout=TIMEOUT)
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise NotFound("client {client_id} is not known to the directory",
                               client_id=client_id,
                               reason="CLIENT_UNKNOWN") from None
            raise _unavailable(err) from None
        if self._names is not None:
            self._names.saw(client)
        return client

    async def list_holdings(self, client_id: str) -> list[holding_pb2.Holding]:
        try:
            resp = await self._stub().ListHoldings(dapi.ListHoldingsRequest(client_id=client_id),
                                                   timeout=TIMEOUT)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound("client {client_id} is not known to the directory",
                               client_id=client_id,
                               reason="CLIENT_UNKNOWN") from None
            raise _unavailable(err) from None
        return list(resp.holdings)

    async def get_staff(self, staff_id: str) -> staff_pb2.Staff | None:
        try:
            staff = await self._stub().GetStaff(dapi.GetStaffRequest(id=staff_id),
                                                timeout=TIMEOUT)
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise _unavailable(err) from None
        if self._names is not None:
            self._names.saw(staff)
        return staff


def _unavailable(err: grpc.aio.AioRpcError) -> Unavailable:
    return Unavailable("directory did not answer: {code}", code=err.code().name)
