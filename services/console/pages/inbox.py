"""The broker's home (`/inbox`): the VIP inbox (advisories and relays ordered by deadline, as
vip's GetInbox gives them), an advisory (acknowledge, ask research, answer) and a research
relay (record the explanation, then the client's acknowledgement).

New items appear without reloading: the page listens to `/inbox/events` (server-sent events,
htmx's sse extension). The console's feed (feed.py) passes on only the vip events that name
this broker or name nobody; the stream then asks vip for the inbox with the broker's own token
and tells the browser to fetch `/inbox/items` only when the inbox changed. The browser never
gets the event itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
from branch.directory.v1 import client_pb2
from branch.research.v1 import research_service_pb2 as research_api
from branch.vip.v1 import advisory_pb2, relay_pb2
from branch.vip.v1 import vip_service_pb2 as vapi
from google.protobuf.message import Message
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from services.common.logs import get_logger
from services.common.protos import from_ts
from services.console import enums, sessions, views, web
from services.console.backend import SignedOut
from services.console.feed import CLOSED
from services.console.i18n import N_, _
from services.console.views import ItemCall, Refusal

log = get_logger("console", component="inbox")

INBOX_SIZE = 100
KEEPALIVE_SECONDS = 15.0
# what the browser is told: look again, or the sign-in ended (the page then asks for its
# list, and the console's answer sends it to the sign-in page)
CHANGED = "event: inbox\ndata: \n\n"
SIGNED_OUT = "event: signedout\ndata: \n\n"
A = advisory_pb2.Advisory
R = relay_pb2.RelayTask
RISK = client_pb2.RiskLevel.DESCRIPTOR
CHANNEL = relay_pb2.RelayChannel.DESCRIPTOR
# GetInbox's next_action, as vip words it (free text, not an enum)
ACTIONS = {
    "acknowledge": N_("acknowledge"),
    "answer": N_("answer"),
    "answer (research answer in)": N_("answer (the research answer is in)"),
    "wait for research": N_("wait for research"),
    "relay": N_("relay to the client"),
    "record acknowledgement": N_("record the client's acknowledgement"),
}
DONE = {
    "acknowledged": N_("The advisory is acknowledged."),
    "research": N_("The question was sent to research."),
    "answered": N_("The advice is recorded."),
    "delivered": N_("The relay is recorded; now record the client's acknowledgement."),
    "relay-acknowledged": N_("The client's acknowledgement is recorded."),
}


def _action(next_action: str) -> str:
    return _(ACTIONS[next_action]) if next_action in ACTIONS else next_action


def _fingerprint(reply: vapi.GetInboxResponse) -> str:
    """What the broker sees of their inbox, as a short opaque digest (it names nothing)."""
    parts = []
    for item in reply.items:
        kind = item.WhichOneof("item")
        thing = item.advisory if kind == "advisory" else item.relay
        parts.append(f"{kind}:{thing.id}:{thing.state}:{item.next_action}:{item.overdue}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _rows(reply: vapi.GetInboxResponse) -> list[dict[str, Any]]:
    rows = []
    for item in reply.items:
        if item.WhichOneof("item") == "advisory":
            a = item.advisory
            rows.append({"kind": _("Advisory"), "href": f"/inbox/advisories/{a.id}",
                         "client_id": a.client_id, "client": a.client_display_name,
                         "about": a.question, "state": enums.label_of(a, "state"),
                         "urgent": a.urgency == advisory_pb2.URGENCY_HIGH})
        else:
            r = item.relay
            rows.append({"kind": _("Research relay"), "href": f"/inbox/relays/{r.id}",
                         "client_id": r.client_id, "client": r.client_display_name,
                         "about": r.note_title, "state": enums.label_of(r, "state"),
                         "urgent": False})
        rows[-1].update(deadline=web.when(from_ts(item.deadline)), overdue=item.overdue,
                        action=_action(item.next_action))
    return rows


async def _inbox(request: Request) -> vapi.GetInboxResponse:
    st = await web.stubs(request)
    reply: vapi.GetInboxResponse = await st.vip.GetInbox(
        vapi.GetInboxRequest(page_size=INBOX_SIZE), metadata=st.metadata)
    return reply


async def inbox(request: Request) -> Response:
    web.require_role(request, "broker")
    reply = await _inbox(request)
    return web.render(request, "pages/inbox/inbox.html", rows=_rows(reply), reply=reply,
                      seen=_fingerprint(reply))


async def inbox_items(request: Request) -> Response:
    """The inbox's list alone (htmx swaps it in when the stream says the inbox changed)."""
    web.require_role(request, "broker")
    reply = await _inbox(request)
    return web.render(request, "pages/inbox/items.html", rows=_rows(reply), reply=reply)


async def inbox_events(request: Request) -> Response:
    """text/event-stream: `event: inbox` whenever this broker's inbox changed (from `seen`,
    the digest of the inbox the page shows); comments keep the connection open."""
    s = web.require_role(request, "broker")
    c = web.console(request)
    feed = c.feed
    if feed is None:  # a console without NATS (unit tests): nothing live, the page still works
        return Response(status_code=204)
    listener = feed.listen(s.staff_id)
    idle = timedelta(seconds=c.settings.console_session_idle_seconds)
    absolute = timedelta(seconds=c.settings.console_session_max_seconds)

    async def signed_in() -> sessions.Session | None:
        current = await c.store.get(s.id)
        if current is None or sessions.expiry(current, c.clock.now(), idle, absolute):
            return None
        return current

    async def digest() -> str | None:
        """The inbox's digest now, with the broker's own token; None: the sign-in ended."""
        current = await signed_in()
        if current is None:
            return None
        try:
            st = await c.backend.stubs(current, c.clock.now())
            reply = await st.vip.GetInbox(vapi.GetInboxRequest(page_size=INBOX_SIZE),
                                          metadata=st.metadata, timeout=10)
        except SignedOut:
            return None
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.UNAUTHENTICATED,
                              grpc.StatusCode.PERMISSION_DENIED):
                return None
            log.warning("inbox refresh failed", rpc_status=err.code().name)
            return ""
        return _fingerprint(reply)

    async def stream() -> AsyncIterator[str]:
        last = request.query_params.get("seen", "")
        try:
            yield "retry: 5000\n\n"
            look = True  # the inbox may have moved between the page and this connection
            while True:
                if look:
                    now = await digest()
                    if now is None:
                        yield SIGNED_OUT
                        return
                    if now and now != last:
                        last = now
                        yield CHANGED
                try:
                    owners = await asyncio.wait_for(listener.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    # no notice: only make sure the sign-in is still alive (no call to vip)
                    if await signed_in() is None:
                        yield SIGNED_OUT
                        return
                    yield ": keep-alive\n\n"
                    look = False
                    continue
                if owners is CLOSED:
                    return
                while not listener.queue.empty():  # one look for a burst of events
                    if listener.queue.get_nowait() is CLOSED:
                        return
                look = True
        finally:
            feed.drop(listener)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})


def _times(item: Message, *fields: str) -> dict[str, str]:
    """Each of the item's timestamp fields in the branch zone ("" when it is not set)."""
    return {f: web.when(from_ts(getattr(item, f))) if item.HasField(f) else "" for f in fields}


# --- an advisory ---------------------------------------------------------------------------

async def _advisory_page(request: Request, advisory_id: str, refusal: Refusal | None = None,
                         form: FormData | None = None, status: int = 200) -> Response:
    web.require_role(request, "broker")
    st = await web.stubs(request)
    a: advisory_pb2.Advisory = await st.vip.GetAdvisory(
        vapi.GetAdvisoryRequest(id=advisory_id), metadata=st.metadata)
    ts = _times(a, "open_time", "acknowledge_due_time", "answer_due_time", "acknowledge_time",
                "answer_time", "research_answer_time")
    state = a.state
    return web.render(
        request, "pages/inbox/advisory.html", status_code=status, a=a, ts=ts,
        state=enums.label_of(a, "state"), urgency=enums.label_of(a, "urgency"),
        source=enums.label_of(a, "source"), risk=enums.label_of(a, "advice_risk_level"),
        risk_choices=enums.choices(RISK),
        can_acknowledge=state == advisory_pb2.ADVISORY_STATE_OPEN,
        can_ask_research=(state == advisory_pb2.ADVISORY_STATE_ACKNOWLEDGED
                          and not a.research_requested),
        can_answer=state in (advisory_pb2.ADVISORY_STATE_ACKNOWLEDGED,
                             advisory_pb2.ADVISORY_STATE_AWAITING_RESEARCH),
        refusal=refusal, form=form or {}, done=views.done(request, DONE))


async def advisory(request: Request) -> Response:
    return await _advisory_page(request, request.path_params["advisory_id"])


async def _advisory_step(request: Request, form: FormData, call: ItemCall, done: str
                         ) -> Response:
    """Acknowledge, ask research or answer: vip's `call`, then the advisory with `done`'s
    notice, or with vip's refusal."""
    web.require_role(request, "broker")
    st = await web.stubs(request)
    item_id = request.path_params["advisory_id"]
    return await views.attempt(call(st, item_id), f"/inbox/advisories/{item_id}?done={done}",
                               lambda why: _advisory_page(request, item_id, why, form, 400))


async def acknowledge(request: Request, form: FormData) -> Response:
    return await _advisory_step(request, form, lambda st, item_id: st.vip.AcknowledgeAdvisory(
        vapi.AcknowledgeAdvisoryRequest(id=item_id), metadata=st.metadata), "acknowledged")


async def ask_research(request: Request, form: FormData) -> Response:
    return await _advisory_step(request, form, lambda st, item_id: st.vip.RequestAdvisoryResearch(
        vapi.RequestAdvisoryResearchRequest(id=item_id, question=web.text(form, "question")),
        metadata=st.metadata), "research")


async def answer(request: Request, form: FormData) -> Response:
    risk = web.text(form, "risk_level")
    return await _advisory_step(request, form, lambda st, item_id: st.vip.AnswerAdvisory(
        vapi.AnswerAdvisoryRequest(
            id=item_id, advice=web.text(form, "advice"),
            risk_level=client_pb2.RiskLevel.ValueType(int(risk) if risk.isdigit() else 0),
            override_reason=web.text(form, "override_reason")),
        metadata=st.metadata), "answered")


# --- a research relay ----------------------------------------------------------------------

async def _relay_page(request: Request, relay_id: str, refusal: Refusal | None = None,
                      form: FormData | None = None, status: int = 200) -> Response:
    web.require_role(request, "broker")
    st = await web.stubs(request)
    r: relay_pb2.RelayTask = await st.vip.GetRelay(vapi.GetRelayRequest(id=relay_id),
                                                   metadata=st.metadata)
    summary = ""
    with contextlib.suppress(grpc.aio.AioRpcError):  # withdrawn or expired: the task says so
        note = await st.research.GetNote(research_api.GetNoteRequest(
            id=r.note_id, revision=r.revision), metadata=st.metadata)
        summary = note.summary
    ts = _times(r, "create_time", "due_time", "publish_time", "deliver_time", "acknowledge_time")
    return web.render(
        request, "pages/inbox/relay.html", status_code=status, r=r, ts=ts, summary=summary,
        state=enums.label_of(r, "state"), risk=enums.label_of(r, "risk_level"),
        channel=enums.label_of(r, "channel"), channel_choices=enums.choices(CHANNEL),
        can_deliver=r.state == relay_pb2.RELAY_STATE_PENDING,
        can_acknowledge=r.state == relay_pb2.RELAY_STATE_DELIVERED,
        refusal=refusal, form=form or {}, done=views.done(request, DONE))


async def relay(request: Request) -> Response:
    return await _relay_page(request, request.path_params["relay_id"])


async def _relay_step(request: Request, form: FormData, call: ItemCall, done: str
                      ) -> Response:
    """Record the relay's delivery or the client's acknowledgement: vip's `call`, then the
    relay with `done`'s notice, or with vip's refusal."""
    web.require_role(request, "broker")
    st = await web.stubs(request)
    item_id = request.path_params["relay_id"]
    return await views.attempt(call(st, item_id), f"/inbox/relays/{item_id}?done={done}",
                               lambda why: _relay_page(request, item_id, why, form, 400))


async def deliver(request: Request, form: FormData) -> Response:
    channel = web.text(form, "channel")
    return await _relay_step(request, form, lambda st, item_id: st.vip.RecordRelayDelivery(
        vapi.RecordRelayDeliveryRequest(
            id=item_id,
            channel=relay_pb2.RelayChannel.ValueType(int(channel) if channel.isdigit() else 0),
            summary=web.text(form, "summary")),
        metadata=st.metadata), "delivered")


async def relay_acknowledged(request: Request, form: FormData) -> Response:
    return await _relay_step(request, form, lambda st, item_id: st.vip.RecordRelayAcknowledgement(
        vapi.RecordRelayAcknowledgementRequest(id=item_id, note=web.text(form, "note")),
        metadata=st.metadata), "relay-acknowledged")


ROUTES = [
    Route("/inbox", inbox, methods=["GET"]),
    Route("/inbox/items", inbox_items, methods=["GET"]),
    Route("/inbox/events", inbox_events, methods=["GET"]),
    Route("/inbox/advisories/{advisory_id}", advisory, methods=["GET"]),
    Route("/inbox/advisories/{advisory_id}/acknowledge", web.form_handler(acknowledge),
          methods=["POST"]),
    Route("/inbox/advisories/{advisory_id}/research", web.form_handler(ask_research),
          methods=["POST"]),
    Route("/inbox/advisories/{advisory_id}/answer", web.form_handler(answer),
          methods=["POST"]),
    Route("/inbox/relays/{relay_id}", relay, methods=["GET"]),
    Route("/inbox/relays/{relay_id}/deliver", web.form_handler(deliver), methods=["POST"]),
    Route("/inbox/relays/{relay_id}/acknowledge", web.form_handler(relay_acknowledged),
          methods=["POST"]),
]
NAV = [web.NavItem("/inbox", N_("VIP inbox"), frozenset({"broker"}))]
