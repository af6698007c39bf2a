"""Rebuilding the read model from the event stream: empty its tables and the consumer's
processed-event rows, then delete the durable consumer; every replica's consumer loop makes it
again (deliver policy ALL), so the whole BRANCH stream (kept without age limit) is replayed.
Insight's own records (inspections, appeals, duty log, reviews, stored reports) stay."""

from __future__ import annotations

from nats.js.errors import NotFoundError
from sqlalchemy import delete
from sqlmodel import col

from services.common.db import Database
from services.common.logs import get_logger
from services.common.models import ProcessedEvent
from services.common.nats_link import STREAM, NatsLink
from services.insight.models import Activity, Campaign, Interaction, Ticket

READ_MODEL = (Interaction, Ticket, Activity, Campaign)
CONSUMER = "read-model"
log = get_logger("insight", component="rebuild")


async def rebuild(db: Database, link: NatsLink) -> None:
    """Tables first, consumer second: an event applied in between lands in the fresh tables
    with its processed row, and the replay skips it; nothing applied earlier is kept."""
    durable = f"{db.service}-{CONSUMER}"
    async with db.transaction() as session:
        for table in READ_MODEL:
            await session.exec(delete(table))
        await session.exec(delete(ProcessedEvent).where(
            col(ProcessedEvent.consumer) == durable))
    try:
        await link.jetstream().delete_consumer(STREAM, durable)
    except NotFoundError:
        pass
    log.info("read model emptied; replaying the stream", consumer=durable)


async def lag(db: Database, link: NatsLink) -> int:
    """Events the read model has still to apply (pending and unacknowledged); 0 when caught
    up or when the consumer does not exist yet."""
    try:
        info = await link.jetstream().consumer_info(STREAM, f"{db.service}-{CONSUMER}")
    except NotFoundError:
        return 0
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
