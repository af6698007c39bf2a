"""Corporate actions: bonus shares (送转股), splits, cash dividends (派息) and rights issues (配股).

Stored by (ticker, ex-date, kind); an import of the same values is a duplicate, of changed
values a correction. Reports apply them to FIFO lots at the ex-date (services/remote/analysis.py).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from branch.directory.v1 import corporate_action_pb2 as ca_pb2
from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.common.db import Database
from services.common.errors import InvalidArgument, Violations
from services.common.pagination import decode_token, encode_token, page_size
from services.common.request_checks import collect
from services.common.upsert import upsert as upsert_row
from services.directory.models import CorporateAction, Trade
from services.directory.validation import check_date, check_decimal, check_ticker

# The exchanges opened in December 1990 (Shanghai on the 19th); nothing happened before.
FIRST_DAY = date(1990, 12, 1)
# Ex-dates are announced ahead; more than a year ahead is a typing mistake.
AHEAD = timedelta(days=366)
Kind = ca_pb2.CorporateActionKind
VALUE_FIELDS = ("shares_per_10", "split_ratio", "cash_per_10", "rights_price")
# the amounts each kind needs; the others must be empty
NEEDS: dict[int, tuple[str, ...]] = {
    Kind.CORPORATE_ACTION_KIND_BONUS: ("shares_per_10",),
    Kind.CORPORATE_ACTION_KIND_SPLIT: ("split_ratio",),
    Kind.CORPORATE_ACTION_KIND_CASH_DIVIDEND: ("cash_per_10",),
    Kind.CORPORATE_ACTION_KIND_RIGHTS: ("shares_per_10", "rights_price"),
}
MAX_TICKERS = 1000


def check_action(a: ca_pb2.CorporateAction, now: datetime) -> tuple[Violations, dict[str, str]]:
    """Violations under corporate_action.*, and the normalised amounts when there are none."""
    v = Violations()
    collect(v, a, "corporate_action")
    if v:
        return v, {}
    check_ticker(v, "corporate_action.ticker", a.ticker)
    day = check_date(v, "corporate_action.ex_date", a.ex_date)
    if day is not None and not FIRST_DAY <= day <= (now + AHEAD).date():
        v.add("corporate_action.ex_date",
              "from {first_day} (the exchanges opened in December 1990) to a year after today",
              first_day=FIRST_DAY.isoformat())
    needed = NEEDS.get(a.kind)
    if needed is None:
        v.add("corporate_action.kind", "BONUS, SPLIT, CASH_DIVIDEND or RIGHTS")
        return v, {}
    values: dict[str, str] = {}
    kind_name = Kind.Name(a.kind).removeprefix("CORPORATE_ACTION_KIND_")
    for name in VALUE_FIELDS:
        value = getattr(a, name)
        path = f"corporate_action.{name}"
        if name in needed:
            values[name] = check_decimal(v, path, value, positive=True)
        elif value:
            v.add(path, "must be empty for a {kind_name} action", kind_name=kind_name)
        else:
            values[name] = ""
    return v, values


async def upsert(session: AsyncSession, a: ca_pb2.CorporateAction, values: dict[str, str],
                 now: datetime) -> bool:
    """True when stored or changed; False for a duplicate of what is stored."""
    key = (a.ticker, date.fromisoformat(a.ex_date), a.kind)
    row = await session.get(CorporateAction, key)
    if row is not None and all(getattr(row, name) == values[name] for name in VALUE_FIELDS):
        return False
    # one statement: two imports of a new action at once both inserted it (duplicate key)
    await upsert_row(session, CorporateAction, {
        "ticker": key[0], "ex_date": key[1], "kind": key[2], "updated_at": now, **values},
        key=["ticker", "ex_date", "kind"])
    if row is not None:
        await session.refresh(row)
    return True


def to_proto(row: CorporateAction) -> ca_pb2.CorporateAction:
    return ca_pb2.CorporateAction(
        ticker=row.ticker, ex_date=row.ex_date.isoformat(), kind=row.kind,  # type: ignore[arg-type]
        shares_per_10=row.shares_per_10, split_ratio=row.split_ratio,
        cash_per_10=row.cash_per_10, rights_price=row.rights_price)


async def list_actions(db: Database, req: ca_pb2.ListCorporateActionsRequest
                       ) -> ca_pb2.ListCorporateActionsResponse:
    """A page of actions for the client's traded tickers and/or the named tickers.

    Raises InvalidArgument naming client_id, tickers, last_ex_date or page_token. The caller
    checks the client is in the principal's scope.
    """
    v = Violations()
    v.check(bool(req.client_id or req.tickers), "client_id", "client_id or tickers required")
    v.check(len(req.tickers) <= MAX_TICKERS, "tickers", "at most {max_tickers}",
            max_tickers=MAX_TICKERS)
    last = check_date(v, "last_ex_date", req.last_ex_date, required=False)
    v.raise_if_any()
    size = page_size(req.page_size or 1000)
    after = decode_token(req.page_token, parts=3)
    which = []
    if req.tickers:
        which.append(col(CorporateAction.ticker).in_(list(req.tickers)))
    if req.client_id:
        traded = select(Trade.ticker).where(Trade.client_id == req.client_id).distinct()
        which.append(col(CorporateAction.ticker).in_(traded))
    query = select(CorporateAction).where(or_(*which))
    if last:
        query = query.where(col(CorporateAction.ex_date) <= last)
    if after:
        try:
            ticker, day, kind = str(after[0]), date.fromisoformat(str(after[1])), int(after[2])  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise InvalidArgument({"page_token": "not a token this service issued"}) from None
        query = query.where(or_(
            col(CorporateAction.ticker) > ticker,
            (col(CorporateAction.ticker) == ticker) & (col(CorporateAction.ex_date) > day),
            (col(CorporateAction.ticker) == ticker) & (col(CorporateAction.ex_date) == day)
            & (col(CorporateAction.kind) > kind)))
    query = query.order_by(col(CorporateAction.ticker), col(CorporateAction.ex_date),
                           col(CorporateAction.kind)).limit(size + 1)
    async with db.read() as session:
        rows = list((await session.exec(query)).all())
    more = len(rows) > size
    rows = rows[:size]
    token = encode_token(rows[-1].ticker, rows[-1].ex_date.isoformat(), rows[-1].kind) \
        if more else ""
    return ca_pb2.ListCorporateActionsResponse(
        corporate_actions=[to_proto(r) for r in rows], next_page_token=token)
