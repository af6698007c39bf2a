"""Words for the enum values the desk pages show (broker, analyst, compliance), translated:
`label(Advisory.DESCRIPTOR.fields_by_name["state"].enum_type, 1)` or `label_of(msg, "state")`.
A value without words here shows its own name in lower case."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from services.console.i18n import N_, _

LABELS = {
    # vip advisories
    "ADVISORY_STATE_OPEN": N_("open"),
    "ADVISORY_STATE_ACKNOWLEDGED": N_("acknowledged"),
    "ADVISORY_STATE_AWAITING_RESEARCH": N_("awaiting research"),
    "ADVISORY_STATE_ANSWERED": N_("answered"),
    "ADVISORY_STATE_CLOSED": N_("closed"),
    "URGENCY_NORMAL": N_("normal"),
    "URGENCY_HIGH": N_("high"),
    "ADVISORY_SOURCE_BROKER": N_("asked the broker"),
    "ADVISORY_SOURCE_HOTLINE": N_("hotline call"),
    "ADVISORY_SOURCE_TICKET": N_("hotline ticket"),
    # vip relays
    "RELAY_STATE_PENDING": N_("to relay"),
    "RELAY_STATE_DELIVERED": N_("relayed, awaiting acknowledgement"),
    "RELAY_STATE_ACKNOWLEDGED": N_("acknowledged"),
    "RELAY_STATE_CANCELLED": N_("cancelled"),
    "RELAY_STATE_WITHHELD": N_("withheld (suitability)"),
    "RELAY_CHANNEL_PHONE": N_("phone"),
    "RELAY_CHANNEL_MEETING": N_("meeting"),
    "RELAY_CHANNEL_MESSAGE": N_("message"),
    "RELAY_CHANNEL_VIDEO": N_("video call"),
    # research notes
    "NOTE_STATE_DRAFT": N_("draft"),
    "NOTE_STATE_SUBMITTED": N_("in review"),
    "NOTE_STATE_RETURNED": N_("sent back"),
    "NOTE_STATE_APPROVED": N_("approved"),
    "NOTE_STATE_PUBLISHED": N_("published"),
    "NOTE_STATE_WITHDRAWN": N_("withdrawn"),
    "NOTE_STATE_SUPERSEDED": N_("superseded"),
    "NOTE_KIND_MARKET": N_("market"),
    "NOTE_KIND_SECTOR": N_("sector"),
    "NOTE_KIND_STOCK": N_("stock"),
    "STANCE_BULLISH": N_("bullish"),
    "STANCE_NEUTRAL": N_("neutral"),
    "STANCE_BEARISH": N_("bearish"),
    "STANCE_BUY": N_("buy"),
    "STANCE_HOLD": N_("hold"),
    "STANCE_SELL": N_("sell"),
    "AUDIENCE_ALL_CLIENTS": N_("all clients"),
    "AUDIENCE_KEY_CLIENTS": N_("key clients"),
    "AUDIENCE_STAFF_ONLY": N_("staff only"),
    "REVIEW_DECISION_APPROVED": N_("approved"),
    "REVIEW_DECISION_RETURNED": N_("sent back"),
    # research requests
    "RESEARCH_REQUEST_STATE_OPEN": N_("open"),
    "RESEARCH_REQUEST_STATE_CLAIMED": N_("claimed"),
    "RESEARCH_REQUEST_STATE_ANSWERED": N_("answered"),
    "RESEARCH_REQUEST_SOURCE_STAFF": N_("staff"),
    "RESEARCH_REQUEST_SOURCE_VIP_ADVISORY": N_("VIP advisory"),
}
# GetInbox's next_action, as vip words it
ACTIONS = {
    "acknowledge": N_("acknowledge"),
    "answer": N_("answer"),
    "relay": N_("relay to the client"),
    "record acknowledgement": N_("record the client's acknowledgement"),
    "answer (research answer in)": N_("answer (the research answer is in)"),
    "wait for research": N_("wait for research"),
}


def label(enum: Any, number: int) -> str:
    """Words for one value of `enum` (an EnumDescriptor); '' for 0 (unspecified)."""
    if not number:
        return ""
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    name = str(value.name)
    if name in LABELS:
        return _(LABELS[name])
    if name.startswith("RISK_LEVEL_"):
        return name.removeprefix("RISK_LEVEL_")
    return name.lower().replace("_", " ")


def label_of(msg: Message, field: str) -> str:
    """Words for the enum field `field` of `msg`."""
    enum = msg.DESCRIPTOR.fields_by_name[field].enum_type
    assert enum is not None, field
    return label(enum, getattr(msg, field))


def choices(enum: Any) -> list[tuple[int, str]]:
    """(number, words) of every value but the unspecified one, for a <select>."""
    return [(v.number, label(enum, v.number)) for v in enum.values if v.number]


def action(next_action: str) -> str:
    return _(ACTIONS[next_action]) if next_action in ACTIONS else next_action
