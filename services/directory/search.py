"""Finding clients and staff by what people type: names, pinyin, phones, account and employee
numbers, id prefixes.

Each client and staff row carries `search_text` ("name|pinyin|initials", lower case, no
spaces) and clients `phone_normalized` (digits without +86 / 0086); both are computed here
whenever a row is inserted or updated (SQLAlchemy mapper events), so every writer keeps them
current. Indexes: pg_trgm GIN on PostgreSQL; an FTS5 trigram table on SQLite, used for
queries of 3 characters or more (shorter ones scan, as a trigram index cannot answer them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import product
from typing import Any

from branch.directory.v1 import search_pb2 as spb
from pypinyin import Style, lazy_pinyin, pinyin
from sqlalchemy import ColumnElement, and_, case, event, or_, text
from sqlmodel import col, select

from services.common.auth import SERVICE_ROLE, Principal
from services.common.db import Database
from services.common.errors import InvalidArgument, Violations
from services.common.pagination import decode_token, encode_token, page_size
from services.directory import convert
from services.directory.assignments import open_grant_clients
from services.directory.models import Client, Staff

MAX_QUERY = 100
ID_PREFIX_MIN = 4
PHONE_SUFFIX_MIN = 4
FTS_MIN = 3
SQLITE_CLIENT_FTS = "directory_client_fts"
PHONE_QUERY = re.compile(r"^\+?[0-9][0-9 \-()]*$")
ID_QUERY = re.compile(r"^[0-9a-f\-]+$")
HEX_LETTER = re.compile(r"[a-f]")
WILDCARDS = re.compile(r"[%_\\]")
HAN = re.compile(r"[\u3400-\u9fff]")
WORD = re.compile(r"[0-9a-z]+")
# Readings of a polyphonic first character (a surname: 曾 zeng/ceng, 单 shan/dan) are all
# kept, up to this many.
MAX_FIRST_READINGS = 4


def normalize_phone(raw: str) -> str:
    """'+86 130 8938-4935', '0086 13089384935' and '130 8938 4935' all give '13089384935'."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    if raw.strip().startswith("+") and digits.startswith("86"):
        return digits[2:]
    if digits.startswith("0086"):
        return digits[4:]
    if digits.startswith("86") and len(digits) == 13:  # 86 + an 11-digit mobile number
        return digits[2:]
    return digits


def name_key(name: str) -> str:
    """Lower case without spaces: what a name is compared as."""
    return "".join(name.lower().split()).replace("|", "")


def search_text(name: str) -> str:
    """'张三' -> '张三|zhangsan|zs'; 'Li Ming' -> 'liming|liming|lm'. A polyphonic first
    character adds its other readings: '曾小贤' -> '曾小贤|cengxiaoxian zengxiaoxian|cxx zxx'."""
    words: list[list[str]] = []
    first_han = bool(HAN.match(name.strip()[:1]))
    for i, part in enumerate(lazy_pinyin(name)):
        found = WORD.findall(part.lower())
        if not found:
            words.extend([ch] for ch in part if HAN.match(ch))  # no reading known: keep it
        elif i == 0 and first_han:
            readings = pinyin(name.strip()[0], heteronym=True, style=Style.NORMAL)[0]
            more = sorted({r for r in readings if WORD.fullmatch(r)} - set(found))
            words.append(found + more[:MAX_FIRST_READINGS - 1])
        else:
            words.extend([w] for w in found)
    spellings = sorted({"".join(combo) for combo in product(*words)}) if words else []
    initials = sorted({"".join(w[0] for w in combo) for combo in product(*words)}) if words \
        else []
    return "|".join([name_key(name), " ".join(spellings), " ".join(initials)])[:400]


@event.listens_for(Client, "before_insert")
@event.listens_for(Client, "before_update")
def _client_search_columns(mapper: Any, connection: Any, row: Client) -> None:
    fill_client_search(row)


def fill_client_search(row: Client) -> None:
    """Set a client's search_text and phone_normalized from its name and phone (the ORM
    does it on every insert and update; a Core insert calls this itself)."""
    row.search_text = search_text(row.display_name)
    row.phone_normalized = normalize_phone(row.phone)


@event.listens_for(Staff, "before_insert")
@event.listens_for(Staff, "before_update")
def _staff_search_columns(mapper: Any, connection: Any, row: Staff) -> None:
    row.search_text = search_text(row.display_name)


@dataclass(frozen=True)
class Query:
    """A typed query, read every way it could be meant."""

    raw: str
    key: str  # name_key of the query: compared with search_text
    phone: str  # normalised digits when the query looks like a phone number, else ""
    # lower case when it could be the start or end of an id, else "" (ids are UUIDv7: made
    # in the same millisecond they share a start, so tables show their last 8 characters)
    id_prefix: str

    @classmethod
    def parse(cls, raw: str) -> Query:
        v = Violations()
        raw = raw.strip()
        v.check(0 < len(raw) <= MAX_QUERY, "query", "1 to {max_query} characters",
                max_query=MAX_QUERY)
        v.raise_if_any()
        phone = normalize_phone(raw) if PHONE_QUERY.match(raw) else ""
        lower = raw.lower()
        # all digits reads as a phone or account number, not as part of an id
        hexish = ID_QUERY.match(lower) and HEX_LETTER.search(lower)
        id_prefix = lower if len(lower) >= ID_PREFIX_MIN and hexish else ""
        return cls(raw=raw, key=name_key(raw), phone=phone, id_prefix=id_prefix)

    def like(self) -> str:
        return "%" + _escape(self.key) + "%"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fts(column: str, pattern: str) -> ColumnElement[bool]:
    """SQLite: ids whose FTS5 trigram column is LIKE pattern (no ESCAPE: it disables the
    index, so patterns given here hold no wildcard of their own)."""
    return col(Client.id).in_(text(
        f"SELECT id FROM {SQLITE_CLIENT_FTS} WHERE {column} LIKE :pattern"
    ).bindparams(pattern=pattern).columns(id=Client.id.type))  # type: ignore[attr-defined]


def _starts(column: Any, prefix: str) -> ColumnElement[bool]:
    """SQLite: a prefix as a range, which the column's B-tree index answers (BINARY order)."""
    return and_(col(column) >= prefix, col(column) < prefix + "\U0010ffff")


def client_filter(q: Query, dialect: str) -> ColumnElement[bool]:
    """Any way the query names a client. Each term is one an index answers (pg_trgm GIN or
    B-tree on PostgreSQL; FTS5 trigram or B-tree on SQLite) so the planner ORs index scans
    (BitmapOr / MULTI-INDEX OR) rather than reading every client; only SQLite names under
    3 characters are scanned."""
    terms: list[ColumnElement[bool]] = []
    # digits, spaces and '+' only: a phone or account number, never a name
    name = q.key if not q.phone else ""
    if dialect == "sqlite":
        if len(name) >= FTS_MIN and not WILDCARDS.search(name):
            terms.append(_fts("search_text", "%" + name + "%"))
        elif name:
            terms.append(col(Client.search_text).like(q.like(), escape="\\"))
        terms.append(_starts(Client.account_no, q.raw))
        if q.phone:
            terms.append(col(Client.phone_normalized) == q.phone)
            if len(q.phone) >= PHONE_SUFFIX_MIN:
                terms.append(_fts("phone", "%" + q.phone))
        if q.id_prefix:
            terms += [_starts(Client.id, q.id_prefix), _fts("id", "%" + q.id_prefix)]
        return or_(*terms)
    if name:
        terms.append(col(Client.search_text).like(q.like(), escape="\\"))
    terms.append(col(Client.account_no).like(_escape(q.raw) + "%", escape="\\"))
    if q.phone:
        terms.append(col(Client.phone_normalized) == q.phone)
        if len(q.phone) >= PHONE_SUFFIX_MIN:
            terms.append(col(Client.phone_normalized).like("%" + q.phone))
    if q.id_prefix:
        terms += [col(Client.id).like(q.id_prefix + "%"), col(Client.id).like("%" + q.id_prefix)]
    return or_(*terms)


def client_exact(q: Query) -> ColumnElement[bool]:
    terms = [col(Client.id) == q.raw.lower(), col(Client.account_no) == q.raw,
             col(Client.search_text).like(_escape(q.key) + "|%", escape="\\")]
    if q.phone:
        terms.append(col(Client.phone_normalized) == q.phone)
    return case((or_(*terms), 0), else_=1)


def staff_filter(q: Query) -> ColumnElement[bool]:
    terms = [col(Staff.search_text).like(q.like(), escape="\\"),
             col(Staff.employee_no).ilike(_escape(q.raw) + "%", escape="\\")]
    if q.id_prefix:
        terms += [col(Staff.id).like(q.id_prefix + "%"), col(Staff.id).like("%" + q.id_prefix)]
    return or_(*terms)


def staff_exact(q: Query) -> ColumnElement[bool]:
    return case((or_(col(Staff.id) == q.raw.lower(), col(Staff.employee_no).ilike(_escape(q.raw),
                                                                            escape="\\"),
                     col(Staff.search_text).like(_escape(q.key) + "|%", escape="\\")), 0),
                else_=1)


def client_match(q: Query, row: Client) -> tuple[int, bool]:
    """(SearchMatch value, exact) for one found client; the strongest reading wins."""
    name, _, rest = row.search_text.partition("|")
    if q.id_prefix and (row.id.startswith(q.id_prefix) or row.id.endswith(q.id_prefix)):
        return spb.SEARCH_MATCH_ID, row.id == q.id_prefix
    if row.account_no.startswith(q.raw):
        return spb.SEARCH_MATCH_ACCOUNT_NO, row.account_no == q.raw
    if q.phone and (row.phone_normalized == q.phone or (
            len(q.phone) >= PHONE_SUFFIX_MIN and row.phone_normalized.endswith(q.phone))):
        return spb.SEARCH_MATCH_PHONE, row.phone_normalized == q.phone
    if q.key in name:
        return spb.SEARCH_MATCH_NAME, name == q.key
    return spb.SEARCH_MATCH_PINYIN, False


def staff_match(q: Query, row: Staff) -> tuple[int, bool]:
    name = row.search_text.partition("|")[0]
    if q.id_prefix and (row.id.startswith(q.id_prefix) or row.id.endswith(q.id_prefix)):
        return spb.SEARCH_MATCH_ID, row.id == q.id_prefix
    if row.employee_no.lower().startswith(q.raw.lower()):
        return spb.SEARCH_MATCH_EMPLOYEE_NO, row.employee_no.lower() == q.raw.lower()
    if q.key in name:
        return spb.SEARCH_MATCH_NAME, name == q.key
    return spb.SEARCH_MATCH_PINYIN, False


def mask_phone(phone: str) -> str:
    """'+86 130 8938 4935' -> '130****4935': enough to confirm a caller, not to call."""
    digits = normalize_phone(phone)
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


CONTACT_ROLES = ("supervisor", "admin", SERVICE_ROLE, "broker", "client_manager", "consultant",
                 "service_agent")


def client_scope(principal: Principal) -> ColumnElement[bool] | None:
    """As ListClients: brokers and client managers find their own clients, plus those whose
    work is assigned to them now (open assignment grants); None means the whole branch."""
    if principal.sees_branch or principal.has("consultant", "service_agent", "compliance"):
        return None
    own: list[ColumnElement[bool]] = [col(Client.id).in_(open_grant_clients(principal.staff_id))]
    if principal.has("broker"):
        own.append(col(Client.broker_id) == principal.staff_id)
    if principal.has("client_manager"):
        own.append(col(Client.client_manager_id) == principal.staff_id)
    return or_(*own)


async def search_clients(db: Database, principal: Principal,
                         req: spb.SearchClientsRequest) -> spb.SearchClientsResponse:
    """Clients the query names, exact matches first, then by name and id; offset-paged."""
    q = Query.parse(req.query)
    size = page_size(req.page_size)
    offset = _offset(req.page_token)
    where = [client_filter(q, db.engine.dialect.name)]
    scope = client_scope(principal)
    if scope is not None:
        where.append(scope)
    query = (select(Client).where(*where)
             .order_by(client_exact(q), col(Client.display_name), col(Client.id))
             .offset(offset).limit(size + 1))
    async with db.read() as session:
        rows = list((await session.exec(query)).all())
    more = len(rows) > size
    full_phone = principal.has(*CONTACT_ROLES)
    results = []
    for row in rows[:size]:
        match, exact = client_match(q, row)
        results.append(spb.ClientSearchResult(
            id=row.id, display_name=row.display_name, account_no=row.account_no,
            tier=row.tier, status=row.status,  # type: ignore[arg-type]
            phone=row.phone if full_phone else mask_phone(row.phone),
            broker_id=row.broker_id, client_manager_id=row.client_manager_id,
            match=match, exact=exact))  # type: ignore[arg-type]
    return spb.SearchClientsResponse(
        results=results, next_page_token=encode_token(offset + size) if more else "")


async def search_staff(db: Database, req: spb.SearchStaffRequest) -> spb.SearchStaffResponse:
    """Staff the query names, exact matches first, then by name and id; offset-paged."""
    q = Query.parse(req.query)
    size = page_size(req.page_size)
    offset = _offset(req.page_token)
    query = select(Staff).where(staff_filter(q))
    if not req.include_inactive:
        query = query.where(col(Staff.active).is_(True))
    query = (query.order_by(staff_exact(q), col(Staff.display_name), col(Staff.id))
             .offset(offset).limit(size + 1))
    async with db.read() as session:
        rows = list((await session.exec(query)).all())
    more = len(rows) > size
    results = []
    for row in rows[:size]:
        match, exact = staff_match(q, row)
        results.append(spb.StaffSearchResult(
            id=row.id, display_name=row.display_name, employee_no=row.employee_no,
            roles=convert.staff_to_proto(row).roles, active=row.active,
            match=match, exact=exact))  # type: ignore[arg-type]
    return spb.SearchStaffResponse(
        results=results, next_page_token=encode_token(offset + size) if more else "")


def _offset(token: str) -> int:
    key = decode_token(token)
    if key is None:
        return 0
    if not isinstance(key[0], int) or key[0] < 0:
        raise InvalidArgument({"page_token": "not a token this service issued"})
    return key[0]
