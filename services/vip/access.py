"""Which roles may call which VIP RPC. Scoping (a broker sees only their clients) is in the
area modules."""

from services.common.auth import SERVICE_ROLE, allow

EVERY_STAFF = (
    "client_manager", "consultant", "service_agent", "broker", "analyst", "compliance",
    "supervisor", "admin", SERVICE_ROLE,
)
MANAGERS = ("supervisor", "admin")

ACCESS = {
    "GetRosterEntry": allow("broker", "service_agent", *MANAGERS, SERVICE_ROLE),
    "ListRoster": allow("broker", "service_agent", *MANAGERS, SERVICE_ROLE),
    "UpdateRosterEntry": allow(*MANAGERS, mutating=True),
    "CreateShift": allow(*MANAGERS, mutating=True),
    "ListShifts": allow(*EVERY_STAFF),
    "DeleteShift": allow(*MANAGERS, mutating=True),
    "GetOnCall": allow(*EVERY_STAFF),
    "CheckRotaGaps": allow(*MANAGERS),
    "CreateAdvisory": allow("broker", "service_agent", *MANAGERS, SERVICE_ROLE, mutating=True),
    "GetAdvisory": allow("broker", *MANAGERS, SERVICE_ROLE),
    "ListAdvisories": allow("broker", *MANAGERS, SERVICE_ROLE),
    "AcknowledgeAdvisory": allow("broker", *MANAGERS, mutating=True),
    "RequestAdvisoryResearch": allow("broker", *MANAGERS, mutating=True),
    "AnswerAdvisory": allow("broker", *MANAGERS, mutating=True),
    "CloseAdvisory": allow("broker", *MANAGERS, mutating=True),
    "GetRelay": allow("broker", "compliance", "analyst", *MANAGERS, SERVICE_ROLE),
    "ListRelays": allow("broker", "compliance", "analyst", *MANAGERS, SERVICE_ROLE),
    "RecordRelayDelivery": allow("broker", *MANAGERS, mutating=True),
    "RecordRelayAcknowledgement": allow("broker", *MANAGERS, mutating=True),
    "GetInbox": allow("broker", *MANAGERS),
    "GetSlaReport": allow(*MANAGERS),
    "ListBreaches": allow(*MANAGERS),
}
