"""Which roles may call which on-site RPC. Scoping (own clients, own forms) is in the modules."""

from services.common.auth import allow

MANAGERS = ("client_manager", "supervisor", "admin")
READERS = ("client_manager", "supervisor", "admin")
FORM_READERS = ("client_manager", "consultant", "supervisor", "admin")
EVERY_STAFF = (
    "client_manager", "consultant", "service_agent", "broker", "analyst", "compliance",
    "supervisor", "admin",
)
MEETING_ORGANISERS = ("supervisor", "admin", "client_manager", "analyst")

ACCESS = {
    "SetDailyPlan": allow(*MANAGERS, mutating=True),
    "GetDailyPlan": allow(*READERS),
    "RecordVisit": allow(*MANAGERS, mutating=True),
    "ListVisits": allow(*READERS),
    "RecordPatrol": allow(*MANAGERS, mutating=True),
    "ListPatrols": allow(*READERS),
    "SetQuota": allow("supervisor", "admin", mutating=True),
    "ListQuotas": allow(*EVERY_STAFF),
    "GetCompliance": allow(*READERS),
    "RaiseConsultationForm": allow(*MANAGERS, mutating=True),
    "GetConsultationForm": allow(*FORM_READERS),
    "ListConsultationForms": allow(*FORM_READERS),
    "AnalyseConsultationForm": allow("consultant", "supervisor", "admin", mutating=True),
    "DeliverConsultationForm": allow("client_manager", "consultant", "supervisor", "admin",
                                     mutating=True),
    "CancelConsultationForm": allow("client_manager", "consultant", "supervisor", "admin",
                                    mutating=True),
    # Scoped as reading the form: its consultant, the manager who raised it, supervisors.
    "ListRelevantNotes": allow(*FORM_READERS),
    "SummarizeOverdueForms": allow("supervisor", "admin"),
    "GetOnsiteSettings": allow(*EVERY_STAFF),
    "UpdateOnsiteSettings": allow("supervisor", "admin", mutating=True),
    "CreateMeetingSeries": allow(*MEETING_ORGANISERS, mutating=True),
    "ScheduleMeeting": allow(*MEETING_ORGANISERS, mutating=True),
    "UpdateMeeting": allow(*MEETING_ORGANISERS, mutating=True),
    "GetMeeting": allow(*EVERY_STAFF),
    "ListMeetings": allow(*EVERY_STAFF),
    "RegisterForMeeting": allow("client_manager", "consultant", "service_agent", "broker",
                                "analyst", "supervisor", "admin", mutating=True),
    "CancelRegistration": allow("client_manager", "consultant", "service_agent", "broker",
                                "analyst", "supervisor", "admin", mutating=True),
    "ListRegistrations": allow(*EVERY_STAFF),
    "RecordAttendance": allow(*MEETING_ORGANISERS, mutating=True),
}
