"""Words for the suites' enum values, by value name (proto enum value names are unique across
the suite: each carries its enum's prefix), marked for the console's catalogue. `label` is
what a page shows for an enum field; a value not listed shows as its lower-case name."""

from __future__ import annotations

from typing import Any

from services.console.i18n import N_, _

WORDS = {
    # branch.directory.v1.Channel
    "CHANNEL_ONSITE": N_("onsite"),
    "CHANNEL_REMOTE": N_("remote"),
    # branch.directory.v1.Tier
    "TIER_STANDARD": N_("standard client"),
    "TIER_KEY": N_("key client"),
    # branch.directory.v1.RiskTolerance
    "RISK_TOLERANCE_C1": N_("C1"),
    "RISK_TOLERANCE_C2": N_("C2"),
    "RISK_TOLERANCE_C3": N_("C3"),
    "RISK_TOLERANCE_C4": N_("C4"),
    "RISK_TOLERANCE_C5": N_("C5"),
    # branch.directory.v1.RiskLevel
    "RISK_LEVEL_R1": N_("R1"),
    "RISK_LEVEL_R2": N_("R2"),
    "RISK_LEVEL_R3": N_("R3"),
    "RISK_LEVEL_R4": N_("R4"),
    "RISK_LEVEL_R5": N_("R5"),
    # branch.directory.v1.OperatingStyle
    "OPERATING_STYLE_SHORT_TERM": N_("short term"),
    "OPERATING_STYLE_SWING": N_("swing"),
    "OPERATING_STYLE_LONG_TERM": N_("long term"),
    "OPERATING_STYLE_VALUE": N_("value investing"),
    # branch.directory.v1.ClientStatus
    "CLIENT_STATUS_ACTIVE": N_("active"),
    "CLIENT_STATUS_CLOSED": N_("account closed"),
    # branch.directory.v1.CorporateActionKind
    "CORPORATE_ACTION_KIND_BONUS": N_("bonus"),
    "CORPORATE_ACTION_KIND_SPLIT": N_("split"),
    "CORPORATE_ACTION_KIND_CASH_DIVIDEND": N_("cash dividend"),
    "CORPORATE_ACTION_KIND_RIGHTS": N_("rights"),
    # branch.directory.v1.Side
    "SIDE_BUY": N_("buy"),
    "SIDE_SELL": N_("sell"),
    # branch.directory.v1.SearchMatch
    "SEARCH_MATCH_ID": N_("ID"),
    "SEARCH_MATCH_ACCOUNT_NO": N_("account number"),
    "SEARCH_MATCH_EMPLOYEE_NO": N_("employee number"),
    "SEARCH_MATCH_PHONE": N_("phone"),
    "SEARCH_MATCH_NAME": N_("name"),
    "SEARCH_MATCH_PINYIN": N_("pinyin"),
    # branch.directory.v1.Role
    "ROLE_CLIENT_MANAGER": N_("client manager"),
    "ROLE_CONSULTANT": N_("consultant"),
    "ROLE_SERVICE_AGENT": N_("service agent"),
    "ROLE_BROKER": N_("broker"),
    "ROLE_ANALYST": N_("analyst"),
    "ROLE_COMPLIANCE": N_("compliance"),
    "ROLE_SUPERVISOR": N_("supervisor"),
    "ROLE_ADMIN": N_("administrator"),
    "ROLE_QUALITY_INSPECTOR": N_("quality inspector"),
    # branch.insight.v1.InteractionKind
    "INTERACTION_KIND_TICKET": N_("ticket"),
    "INTERACTION_KIND_CALLBACK": N_("callback"),
    "INTERACTION_KIND_ADVISORY": N_("advisory"),
    # branch.insight.v1.InspectionState
    "INSPECTION_STATE_PENDING": N_("pending"),
    "INSPECTION_STATE_SCORED": N_("scored"),
    # branch.insight.v1.AppealState
    "APPEAL_STATE_OPEN": N_("open"),
    "APPEAL_STATE_UPHELD": N_("upheld"),
    "APPEAL_STATE_REJECTED": N_("rejected"),
    # branch.insight.v1.KeyEventKind
    "KEY_EVENT_KIND_GOOD": N_("good"),
    "KEY_EVENT_KIND_BAD": N_("bad"),
    # branch.insight.v1.PerformanceReviewState
    "PERFORMANCE_REVIEW_STATE_OPEN": N_("open"),
    "PERFORMANCE_REVIEW_STATE_INTERVIEWED": N_("interviewed"),
    "PERFORMANCE_REVIEW_STATE_APPEALED": N_("appealed"),
    "PERFORMANCE_REVIEW_STATE_CLOSED": N_("closed"),
    # branch.insight.v1.ReportKind
    "REPORT_KIND_DAILY": N_("daily"),
    "REPORT_KIND_WEEKLY": N_("weekly"),
    "REPORT_KIND_MONTHLY": N_("monthly"),
    # branch.insight.v1.ReportFormat
    "REPORT_FORMAT_HTML": N_("HTML"),
    "REPORT_FORMAT_CSV": N_("CSV"),
    "REPORT_FORMAT_XLSX": N_("Excel"),
    # branch.onsite.v1.FormState
    "FORM_STATE_RAISED": N_("raised"),
    "FORM_STATE_ANALYSED": N_("analysed"),
    "FORM_STATE_DELIVERED": N_("delivered"),
    "FORM_STATE_CANCELLED": N_("cancelled"),
    # branch.onsite.v1.FormFlag
    "FORM_FLAG_SUITABILITY_OVERRIDE": N_("suitability override"),
    "FORM_FLAG_OVERDUE": N_("overdue"),
    "FORM_FLAG_CLIENT_REMOTE": N_("client remote"),
    "FORM_FLAG_CLIENT_CLOSED": N_("client closed"),
    # branch.onsite.v1.DropReason
    "DROP_REASON_CLIENT_REMOTE": N_("client remote"),
    "DROP_REASON_CLIENT_CLOSED": N_("client closed"),
    "DROP_REASON_REASSIGNED": N_("reassigned"),
    # branch.onsite.v1.Period
    "PERIOD_DAY": N_("day"),
    "PERIOD_WEEK": N_("week"),
    # branch.onsite.v1.MeetingFormat
    "MEETING_FORMAT_IN_PERSON": N_("in person"),
    "MEETING_FORMAT_ONLINE": N_("online"),
    # branch.onsite.v1.PresenterKind
    "PRESENTER_KIND_ANALYST": N_("analyst"),
    "PRESENTER_KIND_CLIENT": N_("client"),
    # branch.onsite.v1.MeetingState
    "MEETING_STATE_SCHEDULED": N_("scheduled"),
    "MEETING_STATE_HELD": N_("held"),
    "MEETING_STATE_CANCELLED": N_("cancelled"),
    # branch.onsite.v1.RegistrationStatus
    "REGISTRATION_STATUS_CONFIRMED": N_("confirmed"),
    "REGISTRATION_STATUS_WAITLISTED": N_("waitlisted"),
    "REGISTRATION_STATUS_CANCELLED": N_("cancelled"),
    # branch.remote.v1.CampaignKind
    "CAMPAIGN_KIND_GENERAL": N_("general"),
    "CAMPAIGN_KIND_NEW_ACCOUNTS": N_("new accounts"),
    "CAMPAIGN_KIND_ANNUAL_SAMPLE": N_("annual sample"),
    # branch.remote.v1.CampaignState
    "CAMPAIGN_STATE_ACTIVE": N_("active"),
    "CAMPAIGN_STATE_CLOSED": N_("closed"),
    # branch.remote.v1.TargetState
    "TARGET_STATE_PENDING": N_("pending"),
    "TARGET_STATE_CLAIMED": N_("claimed"),
    "TARGET_STATE_DONE": N_("done"),
    "TARGET_STATE_EXHAUSTED": N_("exhausted"),
    "TARGET_STATE_REMOVED": N_("removed"),
    # branch.remote.v1.CallbackOutcome
    "CALLBACK_OUTCOME_REACHED": N_("reached"),
    "CALLBACK_OUTCOME_NO_ANSWER": N_("no answer"),
    "CALLBACK_OUTCOME_WRONG_NUMBER": N_("wrong number"),
    "CALLBACK_OUTCOME_CALL_BACK_LATER": N_("call back later"),
    "CALLBACK_OUTCOME_DECLINED": N_("declined"),
    # branch.remote.v1.ReportState
    "REPORT_STATE_READY": N_("ready"),
    "REPORT_STATE_DELIVERED": N_("delivered"),
    # branch.remote.v1.DeliveryChannel
    "DELIVERY_CHANNEL_EMAIL": N_("email"),
    "DELIVERY_CHANNEL_POST": N_("post"),
    "DELIVERY_CHANNEL_APP": N_("app"),
    "DELIVERY_CHANNEL_FAX": N_("fax"),
    # branch.remote.v1.TradingStyle
    "TRADING_STYLE_SHORT_TERM": N_("short term"),
    "TRADING_STYLE_SWING": N_("swing"),
    "TRADING_STYLE_LONG_TERM": N_("long term"),
    "TRADING_STYLE_UNDETERMINED": N_("undetermined"),
    # branch.remote.v1.Line
    "LINE_INVESTMENT": N_("investment"),
    "LINE_TECHNICAL": N_("technical"),
    # branch.remote.v1.Priority
    "PRIORITY_NORMAL": N_("normal"),
    "PRIORITY_URGENT": N_("urgent"),
    # branch.remote.v1.TicketState
    "TICKET_STATE_OPEN": N_("open"),
    "TICKET_STATE_IN_PROGRESS": N_("in progress"),
    "TICKET_STATE_WAITING": N_("waiting"),
    "TICKET_STATE_RESOLVED": N_("resolved"),
    "TICKET_STATE_CLOSED": N_("closed"),
    # branch.remote.v1.PauseReason
    "PAUSE_REASON_WAITING_CALLER": N_("waiting caller"),
    "PAUSE_REASON_WAITING_THIRD_PARTY": N_("waiting third party"),
    # branch.research.v1.DistributionRecordKind
    "DISTRIBUTION_RECORD_KIND_APPROVED": N_("approved"),
    "DISTRIBUTION_RECORD_KIND_PUBLISHED": N_("published"),
    "DISTRIBUTION_RECORD_KIND_RELAYS_PLANNED": N_("relays planned"),
    "DISTRIBUTION_RECORD_KIND_DELIVERED": N_("delivered"),
    "DISTRIBUTION_RECORD_KIND_ACKNOWLEDGED": N_("acknowledged"),
    "DISTRIBUTION_RECORD_KIND_WITHDRAWN": N_("withdrawn"),
    "DISTRIBUTION_RECORD_KIND_SUPERSEDED": N_("superseded"),
    "DISTRIBUTION_RECORD_KIND_RELAYS_CANCELLED": N_("relays cancelled"),
    # branch.research.v1.NoteKind
    "NOTE_KIND_MARKET": N_("market"),
    "NOTE_KIND_SECTOR": N_("sector"),
    "NOTE_KIND_STOCK": N_("stock"),
    # branch.research.v1.Stance
    "STANCE_BULLISH": N_("bullish"),
    "STANCE_NEUTRAL": N_("neutral"),
    "STANCE_BEARISH": N_("bearish"),
    "STANCE_BUY": N_("buy"),
    "STANCE_HOLD": N_("hold"),
    "STANCE_SELL": N_("sell"),
    # branch.research.v1.Audience
    "AUDIENCE_ALL_CLIENTS": N_("all clients"),
    "AUDIENCE_KEY_CLIENTS": N_("key clients"),
    "AUDIENCE_STAFF_ONLY": N_("staff only"),
    # branch.research.v1.NoteState
    "NOTE_STATE_DRAFT": N_("draft"),
    "NOTE_STATE_SUBMITTED": N_("submitted"),
    "NOTE_STATE_RETURNED": N_("returned"),
    "NOTE_STATE_APPROVED": N_("approved"),
    "NOTE_STATE_PUBLISHED": N_("published"),
    "NOTE_STATE_WITHDRAWN": N_("withdrawn"),
    "NOTE_STATE_SUPERSEDED": N_("superseded"),
    # branch.research.v1.ReviewDecision
    "REVIEW_DECISION_APPROVED": N_("approved"),
    "REVIEW_DECISION_RETURNED": N_("returned"),
    # branch.research.v1.ResearchRequestState
    "RESEARCH_REQUEST_STATE_OPEN": N_("open"),
    "RESEARCH_REQUEST_STATE_CLAIMED": N_("claimed"),
    "RESEARCH_REQUEST_STATE_ANSWERED": N_("answered"),
    # branch.research.v1.ResearchRequestSource
    "RESEARCH_REQUEST_SOURCE_STAFF": N_("staff"),
    "RESEARCH_REQUEST_SOURCE_VIP_ADVISORY": N_("VIP advisory"),
    # branch.vip.v1.Urgency
    "URGENCY_NORMAL": N_("normal"),
    "URGENCY_HIGH": N_("high"),
    # branch.vip.v1.AdvisoryState
    "ADVISORY_STATE_OPEN": N_("open"),
    "ADVISORY_STATE_ACKNOWLEDGED": N_("acknowledged"),
    "ADVISORY_STATE_AWAITING_RESEARCH": N_("awaiting research"),
    "ADVISORY_STATE_ANSWERED": N_("answered"),
    "ADVISORY_STATE_CLOSED": N_("closed"),
    # branch.vip.v1.AdvisorySource
    "ADVISORY_SOURCE_BROKER": N_("broker"),
    "ADVISORY_SOURCE_HOTLINE": N_("hotline"),
    "ADVISORY_SOURCE_TICKET": N_("ticket"),
    # branch.vip.v1.RelayState
    "RELAY_STATE_PENDING": N_("pending"),
    "RELAY_STATE_DELIVERED": N_("delivered"),
    "RELAY_STATE_ACKNOWLEDGED": N_("acknowledged"),
    "RELAY_STATE_CANCELLED": N_("cancelled"),
    "RELAY_STATE_WITHHELD": N_("withheld"),
    # branch.vip.v1.RelayChannel
    "RELAY_CHANNEL_PHONE": N_("phone"),
    "RELAY_CHANNEL_MEETING": N_("meeting"),
    "RELAY_CHANNEL_MESSAGE": N_("message"),
    "RELAY_CHANNEL_VIDEO": N_("video"),
    # branch.vip.v1.RosterStatus
    "ROSTER_STATUS_ACTIVE": N_("active"),
    "ROSTER_STATUS_LEFT": N_("left the roster"),
    # branch.vip.v1.ShiftRole
    "SHIFT_ROLE_BROKER": N_("broker"),
    "SHIFT_ROLE_ANALYST": N_("analyst"),
    "SHIFT_ROLE_SUPERVISOR": N_("supervisor"),
    # branch.vip.v1.BreachKind
    "BREACH_KIND_ADVISORY_ACKNOWLEDGE": N_("advisory acknowledge"),
    "BREACH_KIND_ADVISORY_ANSWER": N_("advisory answer"),
    "BREACH_KIND_RELAY": N_("relay"),
}


def label(enum: Any, number: int) -> str:
    """The word for value `number` of `enum` (an EnumDescriptor) in the current language
    ('' for 0 or a number the enum does not have)."""
    value = enum.values_by_number.get(number)
    if value is None or number == 0:
        return ""
    word = WORDS.get(value.name)
    if word is None:
        snake = "".join("_" + c if c.isupper() and i else c
                        for i, c in enumerate(enum.name)).upper() + "_"
        return str(value.name).removeprefix(snake).replace("_", " ").lower()
    return _(word)


def label_of(msg: Any, field: str) -> str:
    """The word for the enum field `field` of message `msg`."""
    enum = msg.DESCRIPTOR.fields_by_name[field].enum_type
    assert enum is not None, field
    return label(enum, getattr(msg, field))


def choices(enum: Any) -> list[tuple[int, str]]:
    """(number, word) of every value of `enum` but the unspecified one, for a <select>."""
    return [(v.number, label(enum, v.number)) for v in enum.values if v.number]
