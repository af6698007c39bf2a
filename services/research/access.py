"""Which roles may call which research RPC. Scoping (own notes, own requests) is in the
domain modules."""

from services.common.auth import allow, svc

# Everyone who reads research; brokers, client managers, consultants and agents see only
# published, unexpired notes.
NOTE_READERS = (
    "analyst", "compliance", "supervisor", "admin", "broker", "client_manager", "consultant",
    "service_agent",
)
REQUEST_ASKERS = ("broker", "consultant", "client_manager", "supervisor")
REQUEST_READERS = (
    "analyst", "supervisor", "compliance", "admin", "broker", "consultant", "client_manager",
)
LEDGER_READERS = ("supervisor", "compliance")

ACCESS = {
    "CreateNote": allow("analyst", mutating=True),
    "GetNote": allow(*NOTE_READERS),
    "ListNotes": allow(*NOTE_READERS, *svc("onsite")),
    "UpdateNote": allow("analyst", mutating=True),
    "ListNoteRevisions": allow("analyst", "compliance", "supervisor", "admin"),
    "SubmitNote": allow("analyst", mutating=True),
    "ListReviewQueue": allow("compliance", "supervisor"),
    "ApproveNote": allow("compliance", mutating=True),
    "ReturnNote": allow("compliance", mutating=True),
    "PublishNote": allow("analyst", "compliance", "supervisor", mutating=True),
    "WithdrawNote": allow("analyst", "compliance", "supervisor", mutating=True),
    "CreateResearchRequest": allow(*REQUEST_ASKERS, mutating=True),
    "GetResearchRequest": allow(*REQUEST_READERS),
    "ListResearchRequests": allow(*REQUEST_READERS),
    "ClaimResearchRequest": allow("analyst", mutating=True),
    "ReleaseResearchRequest": allow("analyst", "supervisor", mutating=True),
    "AnswerResearchRequest": allow("analyst", mutating=True),
    "GetNoteReach": allow("analyst", "supervisor", "compliance", "admin"),
    "ListNoteReach": allow("analyst", "supervisor", "compliance", "admin"),
    "ListDistributionRecords": allow(*LEDGER_READERS),
    "ExportDistributionLedger": allow(*LEDGER_READERS),
}
