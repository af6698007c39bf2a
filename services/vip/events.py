"""What vip consumes: directory client events (roster), research notes (relay) and answers,
remote hotline tickets (advisories). What it publishes is emitted in the area modules:
branch.vip.roster.*, branch.vip.advisory.*, branch.vip.relay.*."""

from __future__ import annotations

from services.common.consumer import Subscription
from services.vip import advisory, relay, roster
from services.vip.core import Vip


def subscriptions(vip: Vip) -> list[Subscription]:
    on_ticket, on_answer = advisory.handlers(vip)
    return [
        Subscription("clients", ["branch.directory.client.created",
                                 "branch.directory.client.updated",
                                 "branch.directory.client.tier_changed"],
                     roster.handlers(vip)),
        # published and withdrawn share one consumer, so a withdrawal follows its publication
        Subscription("notes", ["branch.research.note.published",
                               "branch.research.note.withdrawn"], relay.handlers(vip)),
        Subscription("answers", ["branch.research.request.answered"], on_answer),
        Subscription("tickets", ["branch.remote.ticket.opened"], on_ticket),
    ]
