"""The broker's live inbox: the suite's vip events, fanned out to the browsers connected to
`/inbox/events` (server-sent events).

One ordered (ephemeral, in-memory) JetStream consumer per console process on `branch.vip.>`,
delivering only new events: nothing is kept, acknowledged or replayed, because a missed
notification costs nothing (the page shows the inbox as it is whenever it loads). This is not
the suite's effectively-once consumption (DESIGN.md section 4): the console changes nothing
when an event comes, it only tells a browser to look again.

What a listener learns from an event is the set of brokers it names (`owners`), or that it
names none (relays planned or cancelled for a note, an advisory closed). The browser is never
sent the event: the page asks for its inbox again through gRPC with the broker's own token,
and only when it changed (pages/inbox.py), so a broker is never told of another broker's item
and nothing they may not read reaches them.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from branch.vip.v1 import events_pb2 as vip_events
from google.protobuf.message import Message

from services.common.logs import get_logger
from services.common.nats_link import STREAM

log = get_logger("console", component="feed")

SUBJECTS = "branch.vip.>"
# subject -> (payload, the fields naming the brokers whose inbox it touches); an empty tuple:
# the event names no broker (any connected broker's inbox may have changed)
OWNERS: dict[str, tuple[type[Message], tuple[str, ...]]] = {
    "branch.vip.advisory.opened": (vip_events.AdvisoryOpened, ("broker_id",)),
    "branch.vip.advisory.acknowledged": (vip_events.AdvisoryAcknowledged, ("broker_id",)),
    "branch.vip.advisory.research_requested": (vip_events.AdvisoryResearchRequested, ()),
    "branch.vip.advisory.answered": (vip_events.AdvisoryAnswered, ("broker_id",)),
    "branch.vip.advisory.closed": (vip_events.AdvisoryClosed, ()),
    "branch.vip.advisory.overdue": (vip_events.AdvisoryOverdue, ("broker_id",)),
    "branch.vip.advisory.escalated": (vip_events.AdvisoryEscalated,
                                      ("escalated_to_id", "previous_assignee_id")),
    "branch.vip.relay.planned": (vip_events.RelaysPlanned, ()),
    "branch.vip.relay.cancelled": (vip_events.RelaysCancelled, ()),
    "branch.vip.relay.delivered": (vip_events.RelayDelivered, ("broker_id",)),
    "branch.vip.relay.acknowledged": (vip_events.RelayAcknowledged, ("broker_id",)),
    "branch.vip.relay.overdue": (vip_events.RelayOverdue, ("broker_id",)),
    "branch.vip.roster.left": (vip_events.RosterLeft, ()),
}
# the longest a listener's queue grows before older notices are dropped (they all say the
# same thing: look again)
QUEUE = 16
CLOSED: frozenset[str] = frozenset({"\0closed"})


def owners_of(subject: str, data: bytes) -> frozenset[str] | None:
    """The brokers an event names (empty: it names none), or None when it is not about an
    inbox at all (or cannot be read)."""
    known = OWNERS.get(subject)
    if known is None:
        return None
    kind, fields = known
    msg = kind()
    try:
        msg.ParseFromString(data)
    except Exception:  # noqa: BLE001 - a malformed event is no reason to stop the feed
        return None
    return frozenset(v for f in fields if (v := getattr(msg, f)))


@dataclass(eq=False)
class Listener:
    """One connected browser: notices of inbox events, the brokers each names."""

    staff_id: str
    queue: asyncio.Queue[frozenset[str]] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE))

    def concerns(self, owners: frozenset[str]) -> bool:
        """Whether the event may have changed this broker's inbox."""
        return not owners or self.staff_id in owners

    def put(self, owners: frozenset[str]) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(owners)


class InboxFeed:
    """start() subscribes (retrying until the BRANCH stream exists); listen()/drop() for each
    connected browser; close() ends every stream, so the web server can stop."""

    def __init__(self, nc: Any) -> None:
        self._nc = nc
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._listeners: set[Listener] = set()
        self.ready = asyncio.Event()
        self.closed = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._subscribe())

    async def _subscribe(self) -> None:
        from nats.js.api import DeliverPolicy

        delay = 0.2
        while not self.closed:
            try:
                self._sub = await self._nc.jetstream().subscribe(
                    SUBJECTS, stream=STREAM, ordered_consumer=True,
                    deliver_policy=DeliverPolicy.NEW, cb=self._on_msg)
                self.ready.set()
                log.info("inbox feed subscribed", subjects=SUBJECTS)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - no stream yet (services starting)
                log.info("inbox feed waits for the event stream", error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _on_msg(self, msg: Any) -> None:
        owners = owners_of(msg.subject, msg.data)
        if owners is None:
            return
        for listener in list(self._listeners):
            if listener.concerns(owners):
                listener.put(owners)

    def listen(self, staff_id: str) -> Listener:
        listener = Listener(staff_id)
        if self.closed:
            listener.put(CLOSED)
        self._listeners.add(listener)
        return listener

    def drop(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    async def close(self) -> None:
        self.closed = True
        for listener in list(self._listeners):
            listener.put(CLOSED)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, timeout=2)
        if self._sub is not None and not (self._nc.is_closed or self._nc.is_draining):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._sub.unsubscribe(), timeout=2)
