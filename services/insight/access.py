"""Which roles may call which insight RPC. Every call is audited (people's performance
records). Scoping (an agent or broker sees only their own inspections and appeals) is in
inspections.py. Shift leads (班长) hold the supervisor role."""

from services.common.auth import allow

INSPECTORS = ("quality_inspector", "supervisor")
OVERSEERS = ("quality_inspector", "supervisor", "admin", "compliance")
INSPECTED = ("service_agent", "broker")
REPORT_READERS = ("quality_inspector", "supervisor", "admin", "compliance")


def audited(*roles: str):  # type: ignore[no-untyped-def]
    return allow(*roles, mutating=True)


ACCESS = {
    "CreateScorecard": audited("quality_inspector", "supervisor"),
    "GetScorecard": audited(*OVERSEERS, *INSPECTED),
    "ListScorecards": audited(*OVERSEERS, *INSPECTED),
    "DrawSamples": audited(*INSPECTORS, "admin"),
    "GetInspectionSettings": audited(*INSPECTORS),
    "UpdateInspectionSettings": audited(*INSPECTORS),
    "CreateWeeklySummary": audited("quality_inspector"),
    "UpdateWeeklySummary": audited("quality_inspector"),
    "GetWeeklySummary": audited(*OVERSEERS, *INSPECTED),
    "ListWeeklySummaries": audited(*OVERSEERS, *INSPECTED),
    "GetInspection": audited(*OVERSEERS, *INSPECTED),
    "ListInspections": audited(*OVERSEERS, *INSPECTED),
    "ScoreInspection": audited(*INSPECTORS),
    "GetInspectionSummary": audited(*OVERSEERS, *INSPECTED),
    "CreateAppeal": audited(*INSPECTED),
    "ListAppeals": audited(*OVERSEERS, *INSPECTED),
    "DecideAppeal": audited(*INSPECTORS),
    "CreateDutyLogEntry": audited("supervisor"),
    "ListDutyLogEntries": audited("supervisor", "quality_inspector", "admin"),
    "GenerateReport": audited("supervisor", "quality_inspector", "admin"),
    "GetReport": audited(*REPORT_READERS),
    "ListReports": audited(*REPORT_READERS),
    "DownloadReport": audited(*REPORT_READERS),
    "CreatePerformanceReview": audited("supervisor"),
    "GetPerformanceReview": audited("supervisor", "admin", *INSPECTED),
    "ListPerformanceReviews": audited("supervisor", "admin", *INSPECTED),
    "CreateKeyEvent": audited("supervisor"),
    "InterviewPerformanceReview": audited("supervisor"),
    "AppealPerformanceReview": audited(*INSPECTED),
    "DecidePerformanceReviewAppeal": audited("supervisor"),
    "RebuildReadModel": audited("admin"),
    "GetReadModelStatus": allow("supervisor", "quality_inspector", "admin"),
}
