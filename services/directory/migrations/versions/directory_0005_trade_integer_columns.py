"""trades as integers for the stream

Trades gain price_units and fee_units (int64 units of 1e-8 yuan) and time_micros (microseconds
since the epoch, UTC), written by the import beside the decimal strings and the timestamp they
come from; StreamTrades reads them without converting anything. Existing rows are backfilled
here with the exact conversion the stream used to do in its SELECT (digits past the eighth
decimal place truncated, as services.common.units.units does). The (client_id, trade_time)
index becomes (client_id, time_micros, import_seq, trade_id): the stream's page order, so a
page is an index range read with no sort (on PostgreSQL once the table has statistics: a large
import ends with ANALYZE, services/directory/imports.py).

Revision ID: directory_0005
Revises: directory_0004
Create Date: 2026-12-08 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'directory_0005'
down_revision: str | None = 'directory_0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNITS = 100_000_000


def _units_sqlite(column: str) -> str:
    # a normalised decimal string ('12.3', '5') as units: whole part times 1e8, plus the
    # first eight fraction digits (padded with zeros)
    return (f"CASE WHEN instr({column}, '.') = 0 THEN CAST({column} AS INTEGER) * {_UNITS} "
            f"ELSE CAST(substr({column}, 1, instr({column}, '.') - 1) AS INTEGER) * {_UNITS} "
            f"+ CAST(substr(substr({column}, instr({column}, '.') + 1) || '00000000', 1, 8) "
            "AS INTEGER) END")


# SQLite keeps UtcDateTime as the text 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC); whole seconds
# from the text without its fraction (SQLite's date functions keep milliseconds and would
# round 01.999999 up to 02), then the microseconds
_MICROS_SQLITE = ("CAST(strftime('%s', substr(trade_time, 1, 19)) AS INTEGER) * 1000000 "
                  "+ CAST(substr(trade_time, 21, 6) AS INTEGER)")
# PostgreSQL: numeric arithmetic, exact to the microsecond
_UNITS_PG = "CAST(trunc(CAST({c} AS numeric) * 100000000) AS bigint)"
_MICROS_PG = "CAST(EXTRACT(epoch FROM trade_time) * 1000000 AS bigint)"


def upgrade() -> None:
    with op.batch_alter_table('directory_trade', schema=None) as batch_op:
        batch_op.add_column(sa.Column('price_units', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('fee_units', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('time_micros', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.drop_index('ix_directory_trade_client_time')
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"UPDATE directory_trade SET price_units = {_units_sqlite('price')}, "
                   f"fee_units = {_units_sqlite('fee')}, time_micros = {_MICROS_SQLITE}")
    else:
        op.execute(f"UPDATE directory_trade SET price_units = {_UNITS_PG.format(c='price')}, "
                   f"fee_units = {_UNITS_PG.format(c='fee')}, time_micros = {_MICROS_PG}")
    # made after the backfill: one sort instead of an index update per row
    with op.batch_alter_table('directory_trade', schema=None) as batch_op:
        batch_op.create_index('ix_directory_trade_client_order',
                              ['client_id', 'time_micros', 'import_seq', 'trade_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('directory_trade', schema=None) as batch_op:
        batch_op.drop_index('ix_directory_trade_client_order')
        batch_op.create_index('ix_directory_trade_client_time', ['client_id', 'trade_time'],
                              unique=False)
        batch_op.drop_column('time_micros')
        batch_op.drop_column('fee_units')
        batch_op.drop_column('price_units')
