"""What branchctl prints and exits with when a command fails: one line (or a short list),
never a traceback (that only with --debug).

Exit status (documented in README.md, "branchctl exit status"):
  0        done
  1        stopped here: no or several people match a name, not logged in, a file unreadable
  2        bad command line (argparse, or flags that contradict each other)
  10+code  the service answered with gRPC status `code`: 13 INVALID_ARGUMENT, 15 NOT_FOUND,
           16 ALREADY_EXISTS, 17 PERMISSION_DENIED, 19 FAILED_PRECONDITION, 23 INTERNAL,
           24 UNAVAILABLE (also: the suite is not running), 14 DEADLINE_EXCEEDED,
           26 UNAUTHENTICATED (log in again)
  70       a bug in branchctl (EX_SOFTWARE); the one line says to rerun with --debug
  130      interrupted (Ctrl-C)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import grpc

from services.cli.i18n import _

USAGE, STOPPED, BUG, INTERRUPTED = 2, 1, 70, 130
GRPC_BASE = 10

# API field -> the flag a person types, where the two differ and the flag is not simply the
# field's last part with dashes (that case is found from the command's own options).
FIELDS: dict[str, dict[str, str]] = {
    "onsite analyse": {"suitability_override_reason": "--override", "note_ids": "--note-id",
                       "risk_level": "--risk"},
    "onsite visit": {"visit.visit_time": "--at", "visit_time": "--at",
                     "visit.client_requests": "--requests", "visit.topics": "--topic",
                     "visit.follow_up_note": "--follow-up", "visit.client_id": "CLIENT",
                     "visit.follow_up_needed": "--follow-up"},
    "onsite day": {"start_date": "--date", "end_date": "--date", "plan_date": "--date"},
    "onsite compliance": {"period": "--week", "date": "--date"},
    "onsite patrol": {"patrol.patrol_time": "--at", "patrol_time": "--at",
                      "patrol.observations": "--obs"},
    "onsite schedule": {"meeting.start_time": "--start"},
    "vip answer": {"override_reason": "--override", "risk_level": "--risk"},
    "vip shift": {"shift.start_time": "START", "shift.end_time": "END",
                  "shift.staff_id": "STAFF"},
    "vip on-call": {"time": "--at"},
    "vip report": {"start_date": "--start", "end_date": "--end"},
    "remote record": {"callback_time": "--callback-at", "call_time": "--called-at"},
    "research notes": {"publish_start_time": "--since", "publish_end_time": "--until"},
    "research ledger": {"start_time": "--from", "end_time": "--to"},
    "directory import": {"*": "FILE"},  # every field comes from the file's rows
    "insight summary": {"month": "PERIOD"},
    "insight decide": {"state": "DECISION", "revised_total_score": "--revised-score"},
    "research ask": {"research_request.due_time": "--due",
                     "research_request.question": "--question"},
}


class UsageError(Exception):
    """A command's flags contradict each other (e.g. --from after --to): exit 2."""


def exit_code(code: grpc.StatusCode) -> int:
    """The process exit status for a gRPC status (see the module docstring)."""
    return GRPC_BASE + int(code.value[0])


# An API field's last part -> the option (dest) that usually gives it, in every command that
# has that option; tried after FIELDS and before the field's own name.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "page_size": ("limit",), "page_token": ("page",), "client_manager_id": ("manager",),
    "plan_date": ("date",), "start_date": ("start", "from"), "end_date": ("end", "days"),
    "period_start": ("start",), "period_end": ("end",), "tickers": ("ticker",),
    "note_ids": ("note_id",), "client_ids": ("clients",), "acknowledgement": ("ack",),
    "request_note": ("note",), "advice_risk_level": ("risk",), "risk_level": ("risk",),
    "answer": ("text",), "delivered_to": ("to",), "caller_name": ("caller",),
    "caller_phone": ("phone",), "agent_ids": ("agents",), "daily_quota": ("quota",),
    "retry_backoff_minutes": ("backoff",), "duration_minutes": ("duration",),
    "first_response_minutes": ("first_response",), "resolution_minutes": ("resolution",),
    "visits_per_day": ("visits",), "rooms_per_day": ("rooms",),
    "supersedes_note_id": ("supersedes",), "criterion_key": ("score", "fail"),
    "states": ("state",), "overdue_only": ("overdue",), "flagged_only": ("flagged",),
    "form_id": ("id",), "meeting_id": ("meeting", "id"), "start_local_time": ("time",),
    "format": ("online", "room"), "rooms": ("room",), "note": ("text", "note"),
    "notes": ("text", "notes"), "staff_id": ("staff", "id"), "client_id": ("client", "id"),
    "valid_until_time": ("valid_until",), "publish_start_time": ("since",),
    "publish_end_time": ("until",), "presenter_id": ("analyst", "sharing_client"),
    "presenter_kind": ("analyst", "sharing_client"),
}
SUFFIXES = ("_id", "_ids", "_time", "_date", "_token", "_minutes")


def flag_for(field: str, command: str, options: Mapping[str, str]) -> str:
    """The flag a person types for API `field` in `command` ("group command"); `options`
    maps the command's dests to their flags. The field itself when nothing matches."""
    field = re.sub(r"\[\d+\]", "", field)  # note_ids[2] -> note_ids
    known = FIELDS.get(command, {})
    if field in known:
        return known[field]
    last = field.rsplit(".", 1)[-1]
    if last in known:
        return known[last]
    candidates = [last, *SYNONYMS.get(last, ()), *(last.removesuffix(s) for s in SUFFIXES)]
    for candidate in candidates:
        if candidate in options:
            return options[candidate]
    return known.get("*", field)


def with_flags(text: str, command: str, options: Mapping[str, str],
               fields: Sequence[str] = ()) -> str:
    """`text` with the API field names it mentions (those in FIELDS for the command, and
    `fields`, e.g. a BadRequest's) replaced by the command's flags."""
    known = {f: flag for f, flag in FIELDS.get(command, {}).items() if f != "*"}
    known |= {f: flag_for(f, command, options) for f in fields}
    for field, flag in sorted(known.items(), key=lambda kv: -len(kv[0])):
        text = re.sub(rf"(?<![\w.]){re.escape(field)}(?![\w])", flag, text)
    return text


def unreachable(service: str, address: str) -> str:
    """The line shown when a service does not answer at all."""
    return _("cannot reach the {service} service at {address}: is the suite running? "
             "(./dev up, or check {variable})").format(
        service=service, address=address, variable=f"BRANCH_{service.upper()}_ADDR")
