"""Trading-record reports: built from the directory's records, stored, delivered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from branch.directory.v1 import client_pb2
from branch.directory.v1 import corporate_action_pb2 as ca_pb2
from branch.remote.v1 import events_pb2, report_pb2
from branch.remote.v1 import remote_service_pb2 as api
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import Principal
from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, Violations
from services.common.events import emit
from services.common.fields import check_date
from services.common.ids import new_id
from services.common.logs import get_logger
from services.common.pagination import decode_token, encode_token, page_size
from services.remote import convert, render
from services.remote.analysis import Analyzer
from services.remote.core import Core, remember_client
from services.remote.models import Report

log = get_logger("remote", component="reports")


@dataclass
class Built:
    client: client_pb2.Client
    start: date
    end: date
    figures: report_pb2.ReportFigures
    markdown: str
    html: str


@dataclass
class Reports:
    core: Core

    async def build(self, req: api.CreateReportRequest) -> Built:
        """Everything before the write: directory calls and the analysis."""
        v = Violations()
        v.check(bool(req.client_id), "client_id", "required")
        start = check_date(v, "period_start", req.period_start)
        end = check_date(v, "period_end", req.period_end)
        if end and end > self.core.today():
            v.add("period_end", "must not be in the future")
        elif start and end:
            v.check(end >= start, "period_end", "must not be before period_start")
            v.check((end - start).days <= 3660, "period_start", "at most ten years")
        v.raise_if_any()
        assert start and end
        client = await self.core.directory.get_client(req.client_id)
        if client is None:
            raise NotFound("client {client_id} not found", client_id=req.client_id)
        start_at, end_at = self.core.day_range(start, end)
        actions: dict[str, list[tuple[int, ca_pb2.CorporateAction]]] = {}
        for action in await self.core.directory.corporate_actions(client.id, end):
            # an ex-date is a branch-local date: the action applies from its first instant
            at = self.core.day_start(date.fromisoformat(action.ex_date))
            actions.setdefault(action.ticker, []).append((int(at.timestamp()), action))
        analyzer = Analyzer(int(start_at.timestamp()), int(end_at.timestamp()), actions,
                            tz=self.core.tz)
        await self.core.directory.fold_trades(client.id, end_at, analyzer.add_columns)
        holdings = await self.core.directory.holdings(client.id)
        tickers = sorted({h.ticker for h in holdings} | set(analyzer.tickers))
        securities = await self.core.directory.securities(tickers)
        figures = analyzer.figures(holdings, securities, client.risk_tolerance,
                                   client.risk_assessment_expired)
        s, e = start.isoformat(), end.isoformat()
        return Built(client, start, end, figures,
                     render.markdown(client, s, e, figures, analyzer.monthly),
                     render.html(client, s, e, figures, analyzer.monthly))

    async def store(self, session: AsyncSession, principal: Principal, built: Built
                    ) -> report_pb2.Report:
        now = self.core.now()
        await remember_client(session, built.client, now)
        row = Report(
            id=new_id(), client_id=built.client.id, period_start=built.start,
            period_end=built.end, state=report_pb2.REPORT_STATE_READY,
            figures=built.figures.SerializeToString(), markdown=built.markdown,
            html=built.html, created_by=principal.staff_id, created_at=now)
        session.add(row)
        emit(session, subject="branch.remote.report.created",
             message=events_pb2.ReportCreated(report_id=row.id, client_id=row.client_id,
                                              warnings=len(built.figures.warnings),
                                              create_time=convert.report(row, content=False)
                                              .create_time),
             about=row.id, now=now)
        log.info("report created", report_id=row.id, trades=built.figures.trades)
        return convert.report(row, content=False)

    async def get(self, report_id: str) -> report_pb2.Report:
        if not report_id:
            raise InvalidArgument({"id": "required"})
        async with self.core.db.read() as session:
            row = await session.get(Report, report_id)
        if row is None:
            raise NotFound("report {report_id} not found", report_id=report_id)
        return convert.report(row, content=True)

    async def list(self, req: api.ListReportsRequest) -> api.ListReportsResponse:
        size = page_size(req.page_size)
        after = decode_token(req.page_token)
        query = select(Report).order_by(col(Report.id).desc())
        if after:
            query = query.where(col(Report.id) < str(after[0]))
        if req.client_id:
            query = query.where(Report.client_id == req.client_id)
        if req.state:
            query = query.where(Report.state == req.state)
        async with self.core.db.read() as session:
            rows = list((await session.exec(query.limit(size + 1))).all())
        more = len(rows) > size
        rows = rows[:size]
        return api.ListReportsResponse(
            reports=[convert.report(r, content=False) for r in rows],
            next_page_token=encode_token(rows[-1].id) if more else "")

    async def deliver(self, principal: Principal, req: api.DeliverReportRequest
                      ) -> report_pb2.Report:
        v = Violations()
        v.check(bool(req.id), "id", "required")
        v.check(req.channel in report_pb2.DeliveryChannel.values() and req.channel != 0,
                "channel", "EMAIL, POST, APP or FAX")
        v.check(0 < len(req.delivered_to) <= 200, "delivered_to", "1 to 200 characters")
        v.raise_if_any()
        async with self.core.db.transaction() as session:
            # locked, so two replicas cannot both deliver it (and both raise the event)
            row = await session.get(Report, req.id, with_for_update=True)
            if row is None:
                raise NotFound("report {id} not found", id=req.id)
            if row.state == report_pb2.REPORT_STATE_DELIVERED:
                raise FailedPrecondition("report already delivered", reason="ALREADY_DELIVERED")
            now = self.core.now()
            row.state = report_pb2.REPORT_STATE_DELIVERED
            row.delivery_channel = req.channel
            row.delivered_by = principal.staff_id
            row.delivered_to = req.delivered_to
            row.delivered_at = now
            session.add(row)
            out = convert.report(row, content=False)
            emit(session, subject="branch.remote.report.delivered",
                 message=events_pb2.ReportDelivered(
                     report_id=row.id, client_id=row.client_id, channel=req.channel,
                     delivered_by=principal.staff_id, deliver_time=out.deliver_time),
                 about=row.id, now=now)
            return out

