"""Which roles may call which directory RPC. Scoping by assignment happens in service.py."""

from services.common.auth import SERVICE_ROLE, allow

# Roles that read client records; brokers and client managers only their own clients.
CLIENT_READERS = (
    "supervisor", "admin", SERVICE_ROLE, "broker", "client_manager", "consultant",
    "service_agent", "compliance",
)
EVERY_STAFF = (
    "client_manager", "consultant", "service_agent", "broker", "analyst", "compliance",
    "supervisor", "admin", "quality_inspector", SERVICE_ROLE,
)

ACCESS = {
    "CreateStaff": allow("admin", mutating=True),
    "GetStaff": allow(*EVERY_STAFF),
    "ListStaff": allow(*EVERY_STAFF),
    "DeactivateStaff": allow("admin", mutating=True),
    "IssueToken": allow("admin", mutating=True),
    "CreateClient": allow("admin", "supervisor", SERVICE_ROLE, mutating=True),
    "GetClient": allow(*CLIENT_READERS),
    "ListClients": allow(*CLIENT_READERS),
    "UpdateClient": allow("admin", "supervisor", "client_manager", mutating=True),
    "ChangeClientTier": allow("admin", "supervisor", mutating=True),
    "AssignClientStaff": allow("admin", "supervisor", mutating=True),
    "ImportTrades": allow("admin", SERVICE_ROLE, mutating=True),
    "ListHoldings": allow(*CLIENT_READERS),
    "StreamTrades": allow(*CLIENT_READERS),
    "ListSecurities": allow(*EVERY_STAFF),
    "FindClientsByTickers": allow("supervisor", "admin", SERVICE_ROLE),
    # public market facts; with client_id, scoped to the client like StreamTrades
    "ListCorporateActions": allow(*EVERY_STAFF),
    # the business calendar's overrides: the operator sets them, every service reads them
    "SetCalendarDay": allow("admin", "supervisor", mutating=True),
    "DeleteCalendarDay": allow("admin", "supervisor", mutating=True),
    "ListCalendarDays": allow(*EVERY_STAFF),
    # scoped as ListClients (search.py); phones masked for roles that do not contact clients
    "SearchClients": allow(*CLIENT_READERS),
    "SearchStaff": allow(*EVERY_STAFF),
}
