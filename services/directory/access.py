"""Which roles may call which directory RPC. Scoping by assignment happens in service.py."""

from services.common.auth import allow, public, svc

# Roles that read client records; brokers and client managers only their own clients.
CLIENT_READERS = (
    "supervisor", "admin", "broker", "client_manager", "consultant", "service_agent",
    "compliance",
)
EVERY_STAFF = (
    "client_manager", "consultant", "service_agent", "broker", "analyst", "compliance",
    "supervisor", "admin", "quality_inspector",
)

ACCESS = {
    "CreateStaff": allow("admin", mutating=True),
    "GetStaff": allow(*EVERY_STAFF, *svc("onsite", "remote", "vip")),
    "ListStaff": allow(*EVERY_STAFF),
    "DeactivateStaff": allow("admin", mutating=True),
    "IssueToken": allow("admin", mutating=True),
    "CreateClient": allow("admin", "supervisor", mutating=True),
    "GetClient": allow(*CLIENT_READERS, *svc("onsite", "remote")),
    "ListClients": allow(*CLIENT_READERS, *svc("remote", "vip")),
    "UpdateClient": allow("admin", "supervisor", "client_manager", mutating=True),
    "ChangeClientTier": allow("admin", "supervisor", mutating=True),
    "AssignClientStaff": allow("admin", "supervisor", mutating=True),
    "ImportTrades": allow("admin", mutating=True),
    "ListHoldings": allow(*CLIENT_READERS, *svc("onsite", "remote")),
    "StreamTrades": allow(*CLIENT_READERS, *svc("remote")),
    "ListSecurities": allow(*EVERY_STAFF, *svc("remote")),
    "FindClientsByTickers": allow("supervisor", "admin", *svc("vip")),
    # IdentityService: sign-in and the public keys need no token
    "Login": public(mutating=True),
    "RefreshToken": public(mutating=True),
    "Logout": public(mutating=True),
    "ChangePassword": public(mutating=True),
    "ResetPassword": allow("admin", mutating=True),
    "SetStaffRoles": allow("admin", mutating=True),
    "IssueServiceToken": public(),
    "ListSigningKeys": public(),
    # public market facts; with client_id, scoped to the client like StreamTrades
    "ListCorporateActions": allow(*EVERY_STAFF, *svc("remote")),
    # the business calendar's overrides: the operator sets them, every service reads them
    "SetCalendarDay": allow("admin", "supervisor", mutating=True),
    "DeleteCalendarDay": allow("admin", "supervisor", mutating=True),
    "ListCalendarDays": allow(*EVERY_STAFF, *svc("onsite", "remote", "insight")),
    # scoped as ListClients (search.py); phones masked for roles that do not contact clients
    "SearchClients": allow(*CLIENT_READERS, *svc("remote")),
    "SearchStaff": allow(*EVERY_STAFF),
}
