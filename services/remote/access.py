"""Which roles may call which remote RPC. Scoping (own campaigns, own tickets, own
statistics) happens in the domain modules."""

from services.common.auth import allow

DESK = ("service_agent", "supervisor", "admin")
READERS = DESK

ACCESS = {
    "CreateCampaign": allow("supervisor", mutating=True),
    "GetCampaign": allow(*READERS),
    "ListCampaigns": allow(*READERS),
    "CloseCampaign": allow("supervisor", mutating=True),
    "ListTargets": allow(*READERS),
    "NextCallback": allow("service_agent", mutating=True),
    "RecordCallback": allow("service_agent", mutating=True),
    "ListCallbacks": allow(*READERS, "compliance"),
    "GetCampaignProgress": allow(*READERS),
    "GetRegulatoryProgress": allow("supervisor", "admin", "compliance"),
    "CreateReport": allow("service_agent", "supervisor", mutating=True),
    "GetReport": allow(*READERS),
    "ListReports": allow(*READERS),
    "DeliverReport": allow("service_agent", "supervisor", mutating=True),
    "OpenTicket": allow("service_agent", "supervisor", mutating=True),
    "GetTicket": allow(*READERS, "compliance"),
    "ListTickets": allow(*READERS, "compliance"),
    "RespondTicket": allow("service_agent", "supervisor", mutating=True),
    "PauseTicket": allow("service_agent", "supervisor", mutating=True),
    "ResumeTicket": allow("service_agent", "supervisor", mutating=True),
    "TransferTicket": allow("service_agent", "supervisor", mutating=True),
    "ResolveTicket": allow("service_agent", "supervisor", mutating=True),
    "ReopenTicket": allow("service_agent", "supervisor", mutating=True),
    "RecordFollowUp": allow("service_agent", "supervisor", mutating=True),
    "SetAgentDuty": allow("service_agent", "supervisor", mutating=True),
    "SetAgentAbsence": allow("service_agent", "supervisor", mutating=True),
    "ListAgents": allow(*READERS),
    "ListSlaPolicies": allow(*READERS),
    "UpdateSlaPolicy": allow("supervisor", mutating=True),
    "GetWeeklyStatistics": allow("service_agent", "supervisor", "admin"),
}
