"""Directory rules: staff, tokens, clients with scoping, imports and the holdings index."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from branch.directory.v1 import (
    client_pb2,
    events_pb2,
    staff_pb2,
)
from branch.directory.v1 import corporate_action_pb2 as ca_pb2
from branch.directory.v1 import (
    directory_service_pb2 as api,
)
from sqlalchemy import bindparam, func, or_
from sqlalchemy import select as core_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.auth import Principal
from services.common.clock import Clock, local_today
from services.common.db import Database, Write
from services.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    Msg,
    NotFound,
    PermissionDenied,
    Violations,
)
from services.common.events import emit, emit_in
from services.common.ids import new_id
from services.common.pagination import decode_token, encode_token, page_size
from services.common.suitability import assessment_expired
from services.common.units import micros
from services.common.upsert import insert_missing
from services.directory import assignments, convert, corporate_actions, trade_stream
from services.directory.identity import Identity, wall_now
from services.directory.keystore import KeyStore
from services.directory.models import Client, Holding, Security, Staff
from services.directory.search import fill_client_search, search_text
from services.directory.validation import (
    PHONE,
    check_date,
    check_decimal,
    check_text,
)

UPDATABLE_CLIENT_FIELDS = {
    "display_name", "phone", "channel", "risk_tolerance", "risk_assessed_on",
    "operating_style", "commission_rate", "status",
}
# A client manager may correct the profile and renew the risk assessment of their own clients;
# channel, status and commission are the supervisor's.
MANAGER_CLIENT_FIELDS = {
    "display_name", "phone", "risk_tolerance", "risk_assessed_on", "operating_style",
}
# GetClient's read: every column of one client, by id (compiled once, cached by SQLAlchemy)
CLIENT_TABLE = Client.__table__  # type: ignore[attr-defined]
CLIENT_BY_ID = core_select(CLIENT_TABLE).where(CLIENT_TABLE.c.id == bindparam("id"))
# CreateClient's writes and checks (Core, compiled once)
CLIENT_COLUMNS = tuple(CLIENT_TABLE.columns)
CLIENT_BY_ACCOUNT = core_select(CLIENT_TABLE.c.id).where(
    CLIENT_TABLE.c.account_no == bindparam("account_no"))
STAFF_TABLE = Staff.__table__  # type: ignore[attr-defined]
STAFF_STANDING = core_select(STAFF_TABLE.c.active, STAFF_TABLE.c.roles).where(
    STAFF_TABLE.c.id == bindparam("id"))
IMPORT_BATCH = 1000
TRADE_BATCH = 5000
MAX_REJECTIONS = 1000


@dataclass
class Directory:
    db: Database
    clock: Clock
    keys: KeyStore
    token_ttl: timedelta
    tz: ZoneInfo = ZoneInfo("Asia/Shanghai")
    # after a deactivation commits: (staff id, active, roles, time) to every service at once
    announce: Callable[[str, bool, list[str], datetime], Awaitable[None]] | None = None

    def today(self) -> date:
        """Today in the branch's zone (BRANCH_TIMEZONE), not UTC's."""
        return local_today(self.clock, self.tz)

    # ---- staff ---------------------------------------------------------------------------

    async def create_staff(self, session: AsyncSession, msg: staff_pb2.Staff) -> staff_pb2.Staff:
        v = Violations()
        check_text(v, "staff.employee_no", msg.employee_no, max_len=32, required=True)
        check_text(v, "staff.display_name", msg.display_name, max_len=100, required=True)
        roles = [convert.ROLE_NAMES.get(r) for r in msg.roles]
        if not msg.roles:
            v.add("staff.roles", "at least one role")
        elif None in roles:
            v.add("staff.roles", "unknown role")
        if msg.team_lead_id and await session.get(Staff, msg.team_lead_id) is None:
            v.add("staff.team_lead_id", "no such staff member")
        v.raise_if_any()
        existing = (
            await session.exec(select(Staff).where(col(Staff.employee_no) == msg.employee_no))
        ).first()
        if existing is not None:
            raise AlreadyExists("employee_no {employee_no} is taken", employee_no=msg.employee_no)
        now = self.clock.now()
        row = Staff(
            id=new_id(),
            employee_no=msg.employee_no,
            display_name=msg.display_name,
            roles=",".join(sorted({r for r in roles if r})),
            active=True,
            team_lead_id=msg.team_lead_id,
            created_at=now,
        )
        session.add(row)
        out = convert.staff_to_proto(row)
        emit(session, subject="branch.directory.staff.created",
             message=events_pb2.StaffCreated(staff=out), about=row.id, now=now)
        return out

    async def get_staff(self, staff_id: str) -> staff_pb2.Staff:
        async with self.db.read() as session:
            return convert.staff_to_proto(await _staff_or_raise(session, staff_id))

    async def list_staff(self, req: api.ListStaffRequest) -> api.ListStaffResponse:
        size = page_size(req.page_size)
        after = decode_token(req.page_token)
        query = select(Staff).order_by(col(Staff.id)).limit(size + 1)
        if after:
            query = query.where(col(Staff.id) > str(after[0]))
        if not req.include_inactive:
            query = query.where(col(Staff.active).is_(True))
        if req.role:
            name = convert.ROLE_NAMES.get(req.role)
            if name is None:
                raise InvalidArgument({"role": "unknown role"})
            query = query.where(col(Staff.roles).contains(name))
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
        more = len(rows) > size
        rows = rows[:size]
        return api.ListStaffResponse(
            staff=[convert.staff_to_proto(r) for r in rows],
            next_page_token=encode_token(rows[-1].id) if more else "",
        )

    async def deactivate_staff(self, staff_id: str) -> staff_pb2.Staff:
        if not staff_id:
            raise InvalidArgument({"id": "required"})
        now = self.clock.now()
        async with self.db.transaction() as session:
            row = await _staff_or_raise(session, staff_id)
            if not row.active:
                return convert.staff_to_proto(row)
            row.active = False
            row.deactivated_at = now
            session.add(row)
            out = convert.staff_to_proto(row)
            emit(session, subject="branch.directory.staff.deactivated",
                 message=events_pb2.StaffDeactivated(staff=out), about=row.id,
                 now=now)
            await Identity.revoke_staff(session, row.id, now)
        if self.announce is not None:
            try:  # every service refuses their tokens now; the event consumer backs this up
                await self.announce(row.id, False, row.roles.split(","), now)
            except Exception:
                pass
        return out

    async def issue_token(self, req: api.IssueTokenRequest) -> api.IssueTokenResponse:
        v = Violations()
        v.check(bool(req.staff_id), "staff_id", "required")
        limit = int(self.token_ttl.total_seconds())
        v.check(0 <= req.ttl_seconds <= limit, "ttl_seconds",
                "between 0 and {limit} (the access-token lifetime)", limit=limit)
        v.raise_if_any()
        async with self.db.read() as session:
            row = await _staff_or_raise(session, req.staff_id)
        if not row.active:
            raise FailedPrecondition("staff member is deactivated", reason="STAFF_INACTIVE")
        ttl = timedelta(seconds=req.ttl_seconds) if req.ttl_seconds else self.token_ttl
        now = wall_now()
        token = self.keys.signer().issue(row.id, row.roles.split(","), now, ttl)
        out = api.IssueTokenResponse(token=token)
        out.expire_time.FromDatetime(now + ttl)
        return out

    async def ensure_admin(self) -> Staff:
        """The bootstrap admin account (employee_no ADMIN), created on first start."""
        async with self.db.transaction() as session:
            return await admin_row(session, self.clock.now())

    # ---- clients -------------------------------------------------------------------------

    def _validate_client(
        self, v: Violations, msg: client_pb2.Client, fields: set[str]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "display_name" in fields:
            check_text(v, "client.display_name", msg.display_name, max_len=100, required=True)
            values["display_name"] = msg.display_name
        if "phone" in fields:
            if msg.phone and not PHONE.match(msg.phone):
                v.add("client.phone", "digits, spaces or '-', optionally starting with '+'")
            values["phone"] = msg.phone
        if "channel" in fields:
            v.check(msg.channel in (client_pb2.CHANNEL_ONSITE, client_pb2.CHANNEL_REMOTE),
                    "client.channel", "ONSITE or REMOTE")
            values["channel"] = msg.channel
        if "risk_tolerance" in fields:
            v.check(1 <= msg.risk_tolerance <= 5, "client.risk_tolerance", "C1 to C5")
            values["risk_tolerance"] = msg.risk_tolerance
        if "risk_assessed_on" in fields:
            assessed = check_date(v, "client.risk_assessed_on", msg.risk_assessed_on)
            if assessed and assessed > self.today():
                v.add("client.risk_assessed_on", "must not be in the future")
            values["risk_assessed_on"] = assessed
        if "operating_style" in fields:
            v.check(msg.operating_style in client_pb2.OperatingStyle.values(),
                    "client.operating_style", "unknown operating style")
            values["operating_style"] = msg.operating_style
        if "commission_rate" in fields:
            rate = check_decimal(v, "client.commission_rate", msg.commission_rate, positive=True)
            if rate and Decimal(rate) >= Decimal("0.01"):
                v.add("client.commission_rate", "a fraction of turnover below 0.01")
            values["commission_rate"] = rate
        if "status" in fields:
            statuses = (client_pb2.CLIENT_STATUS_ACTIVE, client_pb2.CLIENT_STATUS_CLOSED)
            v.check(msg.status in statuses, "client.status", "ACTIVE or CLOSED")
            values["status"] = msg.status
        return values

    def create_client(self, w: Write, msg: client_pb2.Client) -> client_pb2.Client:
        """Validate and insert a client, its ClientCreated event and (through
        idempotency.once_in) the call's audit record, in one Database.write transaction:
        Core statements, no ORM unit of work. Raises INVALID_ARGUMENT (field violations,
        a client manager or broker that is not an active member with that role). A taken
        account number is left to the unique constraint (IntegrityError; see
        explain_client_conflict)."""
        v = Violations()
        fields = {"display_name", "phone", "channel", "risk_tolerance", "risk_assessed_on",
                  "operating_style", "commission_rate"}
        values = self._validate_client(v, msg, fields)
        check_text(v, "client.account_no", msg.account_no, max_len=32, required=True)
        tier = msg.tier or client_pb2.TIER_STANDARD
        v.check(tier in (client_pb2.TIER_STANDARD, client_pb2.TIER_KEY), "client.tier",
                "STANDARD or KEY")
        opened = check_date(v, "client.opened_on", msg.opened_on, required=False) or self.today()
        for field_name in ("client_manager_id", "broker_id"):
            staff_id = getattr(msg, field_name)
            if staff_id:
                role = "client_manager" if field_name == "client_manager_id" else "broker"
                staff = w.conn.execute(STAFF_STANDING, {"id": staff_id}).first()
                _check_role(v, f"client.{field_name}", staff, role)
        v.raise_if_any()
        now = self.clock.now()
        row = Client(
            id=new_id(),
            account_no=msg.account_no,
            tier=tier,
            client_manager_id=msg.client_manager_id,
            broker_id=msg.broker_id,
            opened_on=opened,
            status=client_pb2.CLIENT_STATUS_ACTIVE,
            created_at=now,
            updated_at=now,
            **values,
        )
        fill_client_search(row)  # a Core insert: the mapper events do not run
        w.insert(CLIENT_TABLE, {c.name: getattr(row, c.name) for c in CLIENT_COLUMNS})
        out = convert.client_to_proto(row, self.today())
        emit_in(w, subject="branch.directory.client.created",
                message=events_pb2.ClientCreated(client=out), about=row.id, now=now)
        return out

    async def explain_client_conflict(self, msg: client_pb2.Client) -> None:
        """After CreateClient's insert broke a unique constraint: raises ALREADY_EXISTS when
        the account number is taken; returns otherwise (the caller raises what it had)."""
        taken = await self.db.fetch_one(CLIENT_BY_ACCOUNT, {"account_no": msg.account_no})
        if taken is not None:
            raise AlreadyExists("account_no {account_no} already exists", account_no=msg.account_no)

    async def get_client(self, principal: Principal, client_id: str) -> client_pb2.Client:
        """The client's record and contact details: for their own staff, the branch-wide
        roles, and staff with work on the client assigned to them (audited, assignments.py).
        Raises NOT_FOUND, PERMISSION_DENIED (OUT_OF_SCOPE)."""
        if not client_id:
            raise InvalidArgument({"id": "required"})
        # the hot read: one Core statement, no session (Database.fetch_one)
        row = await self.db.fetch_one(CLIENT_BY_ID, {"id": client_id})
        if row is None:
            raise NotFound("client {client_id} not found", client_id=client_id)
        grant = None
        if not in_scope(principal, row):
            async with self.db.read() as session:
                grant = await assignments.open_grant(session, principal.staff_id, row.id)
            if grant is None:
                ensure_scope(principal, row)
        out = convert.client_to_proto(row, self.today())
        if grant is not None:
            await assignments.audit_read(self.db, self.clock, principal, grant)
        return out

    async def _client_in_scope(
        self, session: AsyncSession, principal: Principal, client_id: str
    ) -> Client:
        if not client_id:
            raise InvalidArgument({"id": "required"})
        row = await session.get(Client, client_id)
        if row is None:
            raise NotFound("client {client_id} not found", client_id=client_id)
        ensure_scope(principal, row)
        return row

    async def list_clients(
        self, principal: Principal, req: api.ListClientsRequest
    ) -> api.ListClientsResponse:
        size = page_size(req.page_size)
        after = decode_token(req.page_token)
        filters = []
        if req.channel:
            filters.append(col(Client.channel) == req.channel)
        if req.tier:
            filters.append(col(Client.tier) == req.tier)
        if req.risk_tolerance:
            filters.append(col(Client.risk_tolerance) == req.risk_tolerance)
        if req.status:
            filters.append(col(Client.status) == req.status)
        if req.client_manager_id:
            filters.append(col(Client.client_manager_id) == req.client_manager_id)
        if req.broker_id:
            filters.append(col(Client.broker_id) == req.broker_id)
        if not principal.sees_branch and not principal.has("consultant", "service_agent",
                                                               "compliance"):
            own = []
            if principal.has("broker"):
                if req.broker_id and req.broker_id != principal.staff_id:
                    raise PermissionDenied("brokers see only their own clients",
                                           reason="OUT_OF_SCOPE")
                own.append(col(Client.broker_id) == principal.staff_id)
            if principal.has("client_manager"):
                if req.client_manager_id and req.client_manager_id != principal.staff_id:
                    raise PermissionDenied("client managers see only their own clients",
                                           reason="OUT_OF_SCOPE")
                own.append(col(Client.client_manager_id) == principal.staff_id)
            filters.append(or_(*own) if own else col(Client.id) == "")
        query = select(Client).where(*filters).order_by(col(Client.id)).limit(size + 1)
        if after:
            query = query.where(col(Client.id) > str(after[0]))
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
            count_query = select(func.count()).select_from(Client).where(*filters)
            total = (await session.exec(count_query)).one()
        more = len(rows) > size
        rows = rows[:size]
        today = self.today()
        return api.ListClientsResponse(
            clients=[convert.client_to_proto(r, today) for r in rows],
            next_page_token=encode_token(rows[-1].id) if more else "",
            total_size=int(total),
        )

    async def update_client(
        self, principal: Principal, msg: client_pb2.Client, paths: Sequence[str]
    ) -> client_pb2.Client:
        v = Violations()
        fields = set(paths)
        if not msg.id:
            v.add("client.id", "required")
        if not fields:
            v.add("update_mask", "name at least one field")
        unknown = fields - UPDATABLE_CLIENT_FIELDS
        if unknown:
            v.add("update_mask", "cannot update {names}", names=', '.join(sorted(unknown)))
        v.raise_if_any()
        if not principal.sees_branch and fields - MANAGER_CLIENT_FIELDS:
            raise PermissionDenied("client managers may not change {names}",
                                   names=", ".join(sorted(fields - MANAGER_CLIENT_FIELDS)),
                                   reason="FIELD_NOT_ALLOWED")
        values = self._validate_client(v, msg, fields)
        v.raise_if_any()
        async with self.db.transaction() as session:
            row = await self._client_in_scope(session, principal, msg.id)
            changed = [k for k, val in values.items() if getattr(row, k) != val]
            if not changed:
                return convert.client_to_proto(row, self.today())
            for k in changed:
                setattr(row, k, values[k])
            now = self.clock.now()
            row.updated_at = now
            session.add(row)
            out = convert.client_to_proto(row, self.today())
            emit(session, subject="branch.directory.client.updated",
                 message=events_pb2.ClientUpdated(client=out, changed_fields=sorted(changed)),
                 about=row.id, now=now)
            return out

    async def change_tier(self, req: api.ChangeClientTierRequest) -> client_pb2.Client:
        v = Violations()
        v.check(bool(req.id), "id", "required")
        v.check(req.tier in (client_pb2.TIER_STANDARD, client_pb2.TIER_KEY), "tier",
                "STANDARD or KEY")
        v.check(len(req.reason) <= 500, "reason", "at most 500 characters")
        v.raise_if_any()
        async with self.db.transaction() as session:
            row = await session.get(Client, req.id)
            if row is None:
                raise NotFound("client {id} not found", id=req.id)
            if row.status != client_pb2.CLIENT_STATUS_ACTIVE:
                raise FailedPrecondition("client has left the branch", reason="CLIENT_CLOSED")
            if row.tier == req.tier:
                return convert.client_to_proto(row, self.today())
            old = row.tier
            now = self.clock.now()
            row.tier = req.tier
            row.updated_at = now
            session.add(row)
            out = convert.client_to_proto(row, self.today())
            emit(session, subject="branch.directory.client.tier_changed",
                 message=events_pb2.ClientTierChanged(client=out, old_tier=old,  # type: ignore[arg-type]
                                                      new_tier=req.tier),
                 about=row.id, now=now)
            return out

    async def assign_staff(self, req: api.AssignClientStaffRequest) -> client_pb2.Client:
        v = Violations()
        v.check(bool(req.id), "id", "required")
        v.check(bool(req.client_manager_id or req.broker_id), "client_manager_id",
                "name a client manager or a broker")
        v.raise_if_any()
        async with self.db.transaction() as session:
            if req.client_manager_id:
                await _check_staff_role(session, v, "client_manager_id", req.client_manager_id,
                                        "client_manager")
            if req.broker_id:
                await _check_staff_role(session, v, "broker_id", req.broker_id, "broker")
            v.raise_if_any()
            row = await session.get(Client, req.id)
            if row is None:
                raise NotFound("client {id} not found", id=req.id)
            changed = []
            if req.client_manager_id and row.client_manager_id != req.client_manager_id:
                row.client_manager_id = req.client_manager_id
                changed.append("client_manager_id")
            if req.broker_id and row.broker_id != req.broker_id:
                row.broker_id = req.broker_id
                changed.append("broker_id")
            if changed:
                now = self.clock.now()
                row.updated_at = now
                session.add(row)
                out = convert.client_to_proto(row, self.today())
                emit(session, subject="branch.directory.client.updated",
                     message=events_pb2.ClientUpdated(client=out, changed_fields=changed),
                     about=row.id, now=now)
                return out
            return convert.client_to_proto(row, self.today())

    # ---- holdings and trades -------------------------------------------------------------

    async def list_holdings(self, principal: Principal, client_id: str) -> api.ListHoldingsResponse:
        async with self.db.read() as session:
            await self._client_in_scope(session, principal, client_id)
            rows = (
                await session.exec(
                    select(Holding, Security.risk_level)
                    .join(Security, col(Security.ticker) == col(Holding.ticker), isouter=True)
                    .where(col(Holding.client_id) == client_id, col(Holding.quantity) > 0)
                    .order_by(col(Holding.ticker))
                )
            ).all()
        return api.ListHoldingsResponse(
            holdings=[convert.holding_to_proto(h, risk or 0) for h, risk in rows]
        )

    async def stream_trades(
        self, principal: Principal, req: api.StreamTradesRequest,
        start: datetime | None, end: datetime | None,
    ) -> AsyncIterator[api.StreamTradesResponse]:
        """Batches of trades in time order, read as plain columns (no ORM objects) and sent
        as columns (TradeColumns): a 100,000-trade history is the case this is built for."""
        async with self.db.read() as session:
            await self._client_in_scope(session, principal, req.client_id)
        dialect, sqlite = self.db.engine.dialect, self.db.is_sqlite
        # the SQL of the first page and of the next ones, written once
        first, following = (
            trade_stream.page_sql(dialect, start=start is not None, end=end is not None,
                                  after=after, limit=TRADE_BATCH) for after in (False, True))
        values: dict[str, Any] = {
            "client_id": req.client_id,
            "start": micros(start) if start else None, "end": micros(end) if end else None}
        sql, names = first
        while True:
            async with self.db.read() as session:
                rows = await trade_stream.fetch(session, sql, [values[n] for n in names],
                                                sqlite)
            if rows:
                response = api.StreamTradesResponse()
                trade_stream.fill_columns(response.columns, req.client_id, rows)
                yield response
            if len(rows) < TRADE_BATCH:
                return
            last = rows[-1]
            values.update(after_micros=last[6], after_seq=last[7], after_id=last[0])
            sql, names = following

    async def list_corporate_actions(
        self, principal: Principal, req: ca_pb2.ListCorporateActionsRequest
    ) -> ca_pb2.ListCorporateActionsResponse:
        if req.client_id:
            async with self.db.read() as session:
                await self._client_in_scope(session, principal, req.client_id)
        return await corporate_actions.list_actions(self.db, req)

    async def list_securities(self, req: api.ListSecuritiesRequest) -> api.ListSecuritiesResponse:
        size = page_size(req.page_size)
        after = decode_token(req.page_token)
        query = select(Security).order_by(col(Security.ticker)).limit(size + 1)
        if req.tickers:
            query = query.where(col(Security.ticker).in_(list(req.tickers)))
        if after:
            query = query.where(col(Security.ticker) > str(after[0]))
        async with self.db.read() as session:
            rows = list((await session.exec(query)).all())
        more = len(rows) > size
        rows = rows[:size]
        return api.ListSecuritiesResponse(
            securities=[convert.security_to_proto(r) for r in rows],
            next_page_token=encode_token(rows[-1].ticker) if more else "",
        )

    async def find_clients_by_tickers(
        self, req: api.FindClientsByTickersRequest
    ) -> api.FindClientsByTickersResponse:
        v = Violations()
        v.check(0 < len(req.tickers) <= 100, "tickers", "between 1 and 100 tickers")
        v.check(req.tier in client_pb2.Tier.values(), "tier", "unknown tier")
        v.raise_if_any()
        size = page_size(req.page_size)
        after = decode_token(req.page_token)
        tickers = sorted(set(req.tickers))
        id_query = (
            select(Holding.client_id)
            .where(col(Holding.ticker).in_(tickers), col(Holding.quantity) > 0)
            .distinct()
            .order_by(col(Holding.client_id))
        )
        if after:
            id_query = id_query.where(col(Holding.client_id) > str(after[0]))
        query = (
            select(Client)
            .where(col(Client.id).in_(id_query.scalar_subquery()),
                   col(Client.status) == client_pb2.CLIENT_STATUS_ACTIVE)
            .order_by(col(Client.id))
            .limit(size + 1)
        )
        if req.tier:
            query = query.where(col(Client.tier) == req.tier)
        async with self.db.read() as session:
            clients = list((await session.exec(query)).all())
            more = len(clients) > size
            clients = clients[:size]
            held: dict[str, list[str]] = {}
            if clients:
                pairs = (
                    await session.exec(
                        select(Holding.client_id, Holding.ticker).where(
                            col(Holding.client_id).in_([c.id for c in clients]),
                            col(Holding.ticker).in_(tickers),
                            col(Holding.quantity) > 0,
                        )
                    )
                ).all()
                for cid, ticker in pairs:
                    held.setdefault(cid, []).append(ticker)
        today = self.today()
        return api.FindClientsByTickersResponse(
            clients=[
                api.ClientPosition(
                    client_id=c.id,
                    tier=c.tier,  # type: ignore[arg-type]
                    risk_tolerance=c.risk_tolerance,  # type: ignore[arg-type]
                    risk_assessment_expired=assessment_expired(c.risk_assessed_on, today),
                    broker_id=c.broker_id,
                    client_manager_id=c.client_manager_id,
                    tickers=sorted(held.get(c.id, [])),
                )
                for c in clients
            ],
            next_page_token=encode_token(clients[-1].id) if more else "",
        )


def in_scope(principal: Principal, row: convert.ClientRow) -> bool:
    """Brokers and client managers reach only the clients assigned to them."""
    if principal.sees_branch or principal.has("consultant", "service_agent", "compliance"):
        return True
    if principal.has("broker") and row.broker_id == principal.staff_id:
        return True
    return principal.has("client_manager") and row.client_manager_id == principal.staff_id


async def admin_row(session: AsyncSession, now: datetime) -> Staff:
    """The bootstrap admin's row, inserted if missing in one statement (ON CONFLICT on the
    unique employee_no): two replicas starting at once both inserted it, and the second
    failed its start on the duplicate key."""
    await insert_missing(session, Staff, {
        "id": new_id(), "employee_no": "ADMIN", "display_name": "Administrator",
        "roles": "admin", "active": True, "team_lead_id": "",
        "search_text": search_text("Administrator"), "created_at": now,
        "deactivated_at": None}, key=["employee_no"])
    return (await session.exec(select(Staff).where(col(Staff.employee_no) == "ADMIN"))).one()


def ensure_scope(principal: Principal, row: convert.ClientRow) -> None:
    if not in_scope(principal, row):
        raise PermissionDenied("client is not assigned to you", reason="OUT_OF_SCOPE")


async def _staff_or_raise(session: AsyncSession, staff_id: str) -> Staff:
    if not staff_id:
        raise InvalidArgument({"id": "required"})
    row = await session.get(Staff, staff_id)
    if row is None:
        raise NotFound("staff {staff_id} not found", staff_id=staff_id)
    return row


async def _check_staff_role(
    session: AsyncSession, v: Violations, field_name: str, staff_id: str, role: str
) -> None:
    _check_role(v, field_name, await session.get(Staff, staff_id), role)


def _check_role(v: Violations, field_name: str, row: Any, role: str) -> None:
    """row: the staff member's (active, roles), or None when there is no such member."""
    if row is None or not row.active:
        v.add(field_name, "no such active staff member")
    elif role not in row.roles.split(","):
        v.add(field_name, "staff member is not a {role}", role=Msg(role))
