"""Which roles may call which VIP RPC. Scoping (a broker sees only their clients) is in the
area modules."""

from services.common.auth import allow

EVERY_STAFF = (
    "client_manager", "consultant", "service_agent", "broker", "analyst", "compliance",
    "supervisor", "admin",
)
MANAGERS = ("supervisor", "admin")

ACCESS = {
    "GetRosterEntry": allow("broker", "service_agent", *MANAGERS),
    "ListRoster": allow("broker", "service_agent", *MANAGERS),
    "UpdateRosterEntry": allow(*MANAGERS, mutating=True),
    "CreateShift": allow(*MANAGERS, mutating=True),
    "ListShifts": allow(*EVERY_STAFF),
    "DeleteShift": allow(*MANAGERS, mutating=True),
    "GetOnCall": allow(*EVERY_STAFF),
    "CheckRotaGaps": allow(*MANAGERS),
    "CreateAdvisory": allow("broker", "service_agent", *MANAGERS, mutating=True),
    "GetAdvisory": allow("broker", *MANAGERS),
    "ListAdvisories": allow("broker", *MANAGERS),
    "AcknowledgeAdvisory": allow("broker", *MANAGERS, mutating=True),
    "RequestAdvisoryResearch": allow("broker", *MANAGERS, mutating=True),
    "AnswerAdvisory": allow("broker", *MANAGERS, mutating=True),
    "CloseAdvisory": allow("broker", *MANAGERS, mutating=True),
    "GetRelay": allow("broker", "compliance", "analyst", *MANAGERS),
    "ListRelays": allow("broker", "compliance", "analyst", *MANAGERS),
    "RecordRelayDelivery": allow("broker", *MANAGERS, mutating=True),
    "RecordRelayAcknowledgement": allow("broker", *MANAGERS, mutating=True),
    "GetInbox": allow("broker", *MANAGERS),
    "GetSlaReport": allow(*MANAGERS),
    "ListBreaches": allow(*MANAGERS),
}
