"""What every remote module shares: database, clock, time zone, and the directory peer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import grpc
from branch.directory.v1 import client_pb2, holding_pb2, staff_pb2
from branch.directory.v1 import corporate_action_pb2 as ca_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1 import directory_service_pb2_grpc as dgrpc
from branch.directory.v1 import search_pb2 as spb
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common import channels, names
from services.common.calendar import BranchCalendar
from services.common.clock import Clock, add_months, day_range, day_start, local_date
from services.common.db import Database
from services.common.errors import Unavailable
from services.common.protos import ts
from services.common.server import ServiceContext
from services.common.upsert import upsert
from services.remote.models import PersonName, RemoteClient


def add_month(day: date) -> date:
    """The same day one month later, clamped to the month's end (31 Jan -> 28/29 Feb)."""
    return add_months(day, 1)


class DirectoryPeer:
    """The directory's answers, called with remote's own service token."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self._sync_channel: grpc.Channel | None = None
        self.names = names.Keeper(ctx.db, PersonName, ctx.clock)

    def _stub(self) -> dgrpc.DirectoryServiceAsyncStub:
        return dgrpc.DirectoryServiceStub(self.ctx.channel("directory"))

    @staticmethod
    def _unavailable(err: grpc.aio.AioRpcError) -> Unavailable:
        return Unavailable("directory: {code}", code=err.code().name)

    async def get_client(self, client_id: str) -> client_pb2.Client | None:
        try:
            client = await self._stub().GetClient(dapi.GetClientRequest(id=client_id),
                                                  timeout=10)
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise self._unavailable(err) from None
        self.names.saw(client)
        return client

    async def client_by_phone(self, phone: str) -> client_pb2.Client | None:
        """The one client whose phone is this number (compared by the directory without
        spaces, dashes and +86); None when nobody or several clients have it."""
        try:
            found = await self._stub().SearchClients(
                spb.SearchClientsRequest(query=phone, page_size=2), timeout=10)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.INVALID_ARGUMENT:
                return None
            raise self._unavailable(err) from None
        same = [r for r in found.results if r.match == spb.SEARCH_MATCH_PHONE and r.exact]
        return await self.get_client(same[0].id) if len(same) == 1 else None

    async def get_staff(self, staff_id: str) -> staff_pb2.Staff | None:
        try:
            staff = await self._stub().GetStaff(dapi.GetStaffRequest(id=staff_id), timeout=10)
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise self._unavailable(err) from None
        self.names.saw(staff)
        return staff

    async def list_clients(self, **filters: Any) -> list[client_pb2.Client]:
        out: list[client_pb2.Client] = []
        token = ""
        try:
            while True:
                page = await self._stub().ListClients(
                    dapi.ListClientsRequest(page_size=1000, page_token=token, **filters),
                    timeout=30,
                )
                out.extend(page.clients)
                token = page.next_page_token
                if not token:
                    return out
        except grpc.aio.AioRpcError as err:
            raise self._unavailable(err) from None

    async def holdings(self, client_id: str) -> list[holding_pb2.Holding]:
        try:
            reply = await self._stub().ListHoldings(
                dapi.ListHoldingsRequest(client_id=client_id), timeout=30)
        except grpc.aio.AioRpcError as err:
            raise self._unavailable(err) from None
        return list(reply.holdings)

    async def securities(self, tickers: list[str]) -> dict[str, holding_pb2.Security]:
        out: dict[str, holding_pb2.Security] = {}
        try:
            for i in range(0, len(tickers), 500):
                chunk = tickers[i:i + 500]
                reply = await self._stub().ListSecurities(
                    dapi.ListSecuritiesRequest(tickers=chunk, page_size=1000), timeout=30)
                out.update({s.ticker: s for s in reply.securities})
        except grpc.aio.AioRpcError as err:
            raise self._unavailable(err) from None
        return out

    async def corporate_actions(self, client_id: str, last_ex_date: date
                                ) -> list[ca_pb2.CorporateAction]:
        """Corporate actions of the tickers the client traded, ex-dates up to last_ex_date."""
        out: list[ca_pb2.CorporateAction] = []
        token = ""
        try:
            while True:
                page = await self._stub().ListCorporateActions(ca_pb2.ListCorporateActionsRequest(
                    client_id=client_id, last_ex_date=last_ex_date.isoformat(),
                    page_size=1000, page_token=token), timeout=30)
                out.extend(page.corporate_actions)
                token = page.next_page_token
                if not token:
                    return out
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                return []  # a directory from before corporate actions, during a rollout
            raise self._unavailable(err) from None

    def _sync_stub(self) -> dgrpc.DirectoryServiceStub:
        """A blocking stub, for long streams read in a worker thread."""
        if self._sync_channel is None:
            tokens = self.ctx.tokens  # short-lived, renewed: read at every call
            self._sync_channel = channels.sync_channel(self.ctx.settings, "directory",
                                                       token=tokens.current)
        return dgrpc.DirectoryServiceStub(self._sync_channel)

    async def fold_trades(self, client_id: str, end: datetime,
                          fold: Callable[[holding_pb2.TradeColumns], None]) -> None:
        """Stream a client's trades up to end into fold, a batch of columns at a time, in a
        worker thread.

        grpc.aio costs tens of microseconds per streamed message on this side and the fold
        is CPU work; a thread with the blocking client keeps 100,000 trades off the event
        loop and is markedly faster.
        """
        request = dapi.StreamTradesRequest(client_id=client_id)
        request.end_time.CopyFrom(ts(end))
        stub = self._sync_stub()

        def run() -> None:
            for batch in stub.StreamTrades(request, timeout=600):
                fold(batch.columns)

        try:
            await asyncio.to_thread(run)
        except grpc.RpcError as err:
            code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
            raise Unavailable("directory: {code}", code=code.name) from None

    def close(self) -> None:
        if self._sync_channel is not None:
            self._sync_channel.close()
            self._sync_channel = None


@dataclass
class Core:
    db: Database
    clock: Clock
    tz: ZoneInfo
    directory: DirectoryPeer
    calendar: BranchCalendar

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        return local_date(self.clock.now(), self.tz)

    def local_date(self, when: datetime) -> date:
        return local_date(when, self.tz)

    def day_start(self, day: date) -> datetime:
        """The instant the branch's day begins."""
        return day_start(day, self.tz)

    def day_range(self, first: date, last: date) -> tuple[datetime, datetime]:
        """[start of first, start of the day after last)."""
        return day_range(first, last, self.tz)

    def new_account_callback_due(self, opened: date) -> date:
        """The last day of the regulator's new-account callback window: one calendar month
        after opening (add_month), moved to the next working day of the branch's calendar
        when it falls on a weekend or holiday (Civil Code art. 203)."""
        return self.calendar.next_working_day(add_month(opened))


async def remember_client(session: AsyncSession, client: client_pb2.Client, now: datetime) -> None:
    """Keep remote's copy of what it needs about a directory client: one INSERT .. ON
    CONFLICT DO UPDATE (an OpenTicket for a client created a moment earlier and the
    client.created consumer both wrote the copy; a read-then-insert lost on the duplicate key,
    INTERNAL). An event without opened_on keeps the date already known."""
    opened = date.fromisoformat(client.opened_on) if client.opened_on else None
    await upsert(session, RemoteClient,
                 {"client_id": client.id, "tier": client.tier, "channel": client.channel,
                  "status": client.status, "opened_on": opened, "updated_at": now},
                 key=["client_id"], keep_if_null=["opened_on"])
