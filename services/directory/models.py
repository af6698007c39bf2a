"""Directory tables. Decimal values are kept as normalised decimal strings."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel

from services.common.db import UtcDateTime


class Staff(SQLModel, table=True):
    __tablename__ = "directory_staff"

    id: str = Field(primary_key=True, max_length=36)
    employee_no: str = Field(max_length=32, unique=True)
    display_name: str = Field(max_length=100)
    # Comma-separated role names, e.g. "broker,analyst".
    roles: str = Field(max_length=200)
    active: bool = True
    team_lead_id: str = Field(default="", max_length=36)
    # "name|pinyin|initials" in lower case, kept by services/directory/search.py on write.
    search_text: str = Field(default="", max_length=400)
    created_at: datetime = Field(sa_type=UtcDateTime)
    deactivated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Client(SQLModel, table=True):
    __tablename__ = "directory_client"
    __table_args__ = (
        Index("ix_directory_client_broker", "broker_id", "id"),
        Index("ix_directory_client_manager", "client_manager_id", "id"),
        Index("ix_directory_client_phone", "phone_normalized"),
    )

    id: str = Field(primary_key=True, max_length=36)
    account_no: str = Field(max_length=32, unique=True)
    display_name: str = Field(max_length=100)
    phone: str = Field(default="", max_length=32)
    # Digits only, without +86 / 0086; and "name|pinyin|initials" in lower case. Both kept by
    # services/directory/search.py whenever a row is written.
    phone_normalized: str = Field(default="", max_length=32)
    search_text: str = Field(default="", max_length=400)
    channel: int
    tier: int
    risk_tolerance: int
    risk_assessed_on: date
    operating_style: int = 0
    client_manager_id: str = Field(default="", max_length=36)
    broker_id: str = Field(default="", max_length=36)
    commission_rate: str = Field(max_length=20)
    opened_on: date
    status: int
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class Security(SQLModel, table=True):
    __tablename__ = "directory_security"

    ticker: str = Field(primary_key=True, max_length=16)
    name: str = Field(default="", max_length=100)
    risk_level: int = 0
    last_price: str = Field(default="", max_length=24)


class Holding(SQLModel, table=True):
    """Position per client and ticker; the ticker index answers "who holds X"."""

    __tablename__ = "directory_holding"
    __table_args__ = (Index("ix_directory_holding_ticker", "ticker", "client_id"),)

    client_id: str = Field(primary_key=True, max_length=36, foreign_key="directory_client.id")
    ticker: str = Field(primary_key=True, max_length=16)
    quantity: int
    cost_price: str = Field(max_length=24)
    market_price: str = Field(default="", max_length=24)
    as_of: date
    updated_at: datetime = Field(sa_type=UtcDateTime)


class Trade(SQLModel, table=True):
    """One execution. import_seq is the import order; it breaks ties of trade_time.

    price_units, fee_units (int64 units of 1e-8 yuan) and time_micros (microseconds since the
    epoch, UTC) are price, fee and trade_time as integers, written with them by the import
    (and backfilled by migration directory_0005): StreamTrades sends them as they are, in
    the order of ix_directory_trade_client_order."""

    __tablename__ = "directory_trade"
    __table_args__ = (
        # StreamTrades' page order: a page is a range of this index, no sort
        Index("ix_directory_trade_client_order", "client_id", "time_micros", "import_seq",
              "trade_id"),
        Index("ix_directory_trade_client_ticker", "client_id", "ticker"),
    )

    trade_id: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=36, foreign_key="directory_client.id")
    ticker: str = Field(max_length=16)
    side: int
    quantity: int
    price: str = Field(max_length=24)
    fee: str = Field(default="0", max_length=24)
    trade_time: datetime = Field(sa_type=UtcDateTime)
    # rows imported before the column existed keep 0 (their ties fall back to trade id)
    import_seq: int = Field(default=0, sa_type=BigInteger,
                            sa_column_kwargs={"server_default": "0"})
    price_units: int = Field(sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    fee_units: int = Field(sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})
    time_micros: int = Field(sa_type=BigInteger, sa_column_kwargs={"server_default": "0"})


class SigningKeyRow(SQLModel, table=True):
    """An Ed25519 key the directory signs tokens with. The newest unretired key signs; older
    unretired keys are still published so tokens they signed verify during a rotation."""

    __tablename__ = "directory_signing_key"

    kid: str = Field(primary_key=True, max_length=64)
    private_pem: str = Field(max_length=400)
    public_jwk: str = Field(max_length=400)
    created_at: datetime = Field(sa_type=UtcDateTime)
    retired_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class Credential(SQLModel, table=True):
    """A staff member's password (argon2id hash) and sign-in failures."""

    __tablename__ = "directory_credential"

    staff_id: str = Field(primary_key=True, max_length=36, foreign_key="directory_staff.id")
    password_hash: str = Field(max_length=200)
    # set by an admin reset and for the bootstrap admin: change before signing in
    must_change: bool = True
    failed_attempts: int = 0
    locked_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    changed_at: datetime = Field(sa_type=UtcDateTime)


class RefreshToken(SQLModel, table=True):
    """One refresh token (single use). A family is every token descending from one sign-in;
    presenting a spent token revokes its family."""

    __tablename__ = "directory_refresh_token"
    __table_args__ = (
        Index("ix_directory_refresh_token_family", "family_id"),
        Index("ix_directory_refresh_token_staff", "staff_id"),
    )

    id: str = Field(primary_key=True, max_length=36)
    # sha256 hex of the secret half; the token itself is never stored
    secret_hash: str = Field(max_length=64)
    family_id: str = Field(max_length=36)
    staff_id: str = Field(max_length=36)
    created_at: datetime = Field(sa_type=UtcDateTime)
    expires_at: datetime = Field(sa_type=UtcDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UtcDateTime)



class ImportCounter(SQLModel, table=True):
    """The next import sequence number; one row, taken in blocks under the row's lock."""

    __tablename__ = "directory_import_counter"

    name: str = Field(primary_key=True, max_length=32)
    next_value: int = Field(sa_type=BigInteger)


class CorporateAction(SQLModel, table=True):
    """Bonus shares, splits, cash dividends and rights issues; amounts as decimal strings."""

    __tablename__ = "directory_corporate_action"

    ticker: str = Field(primary_key=True, max_length=16)
    ex_date: date = Field(primary_key=True)
    kind: int = Field(primary_key=True)
    shares_per_10: str = Field(default="", max_length=24)
    split_ratio: str = Field(default="", max_length=24)
    cash_per_10: str = Field(default="", max_length=24)
    rights_price: str = Field(default="", max_length=24)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class CalendarDayRow(SQLModel, table=True):
    """An operator's override of the business calendar for one branch-local date
    (services.common.calendar.Override): working or not, and why."""

    __tablename__ = "directory_calendar_day"

    day: date = Field(primary_key=True)
    working: bool
    note: str = Field(default="", max_length=200)
    set_by: str = Field(default="", max_length=100)
    set_at: datetime = Field(sa_type=UtcDateTime)


class AssignmentGrant(SQLModel, table=True):
    """Work on a client assigned to a staff member outside their own clients (the on-call
    broker's advisory), fed by other services' events. While open (ended_at empty) it lets
    that staff member read the client's contact details; each such read is audited."""

    __tablename__ = "directory_assignment_grant"
    __table_args__ = (Index("ix_directory_grant_staff_client", "staff_id", "client_id"),)

    # e.g. "vip.advisory"
    source: str = Field(primary_key=True, max_length=40)
    source_id: str = Field(primary_key=True, max_length=64)
    staff_id: str = Field(primary_key=True, max_length=36)
    client_id: str = Field(max_length=36)
    granted_at: datetime = Field(sa_type=UtcDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
