"""branchctl today (what to do now, by role) and branchctl audit (every service's audit
records merged by time, for supervisors and admins).

`today` runs the existing list commands that answer "what is waiting for me" for each of the
caller's roles (from the token); a service that does not answer is named and the rest still
shown. `audit` asks each service's AuditService.ListAuditRecords and merges newest first.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

import grpc
from branch.common.v1 import audit_pb2
from branch.common.v1.audit_pb2_grpc import AuditServiceStub

from services import registry
from services.cli import errors, when
from services.cli.argtypes import count
from services.cli.branchctl import Ctl
from services.cli.i18n import _
from services.cli.people import staff_option
from services.cli.timefmt import DATE_TIME, local

# role (the token's) -> the commands that show its work waiting now, as command lines
TODAY: dict[str, list[list[str]]] = {
    "client_manager": [["onsite", "day"]],
    "consultant": [["onsite", "forms", "--inbox"]],
    "service_agent": [["remote", "day"]],
    "broker": [["vip", "inbox"]],
    "analyst": [["research", "requests"]],
    "compliance": [["research", "queue"]],
    "supervisor": [["vip", "breaches"], ["remote", "breached"], ["onsite", "overdue"]],
    "admin": [["vip", "breaches"], ["remote", "breached"], ["onsite", "overdue"]],
}


def _roles(ctl: Ctl) -> list[str]:
    import jwt

    if not ctl.metadata:  # says "not logged in" when there is no token
        return []
    claims = jwt.decode(ctl.token, options={"verify_signature": False})
    return [str(r) for r in claims.get("roles", [])]


async def today(args: argparse.Namespace, ctl: Ctl) -> None:
    """For each of the caller's roles, the lists that hold what to do now."""
    from services.cli.branchctl import build_parser

    parser = build_parser()
    worst = 0
    plan = [cmd for role in _roles(ctl) for cmd in TODAY.get(role, [])]
    if not plan:
        raise SystemExit(_("no work list for your roles: {roles}").format(
            roles=", ".join(_roles(ctl)) or _("none")))
    done: list[list[str]] = []
    for cmd in plan:
        if cmd in done:
            continue
        done.append(cmd)
        ctl.console.print(f"[bold]branchctl {' '.join(cmd)}[/bold]")
        section = parser.parse_args(cmd)
        try:
            await section.func(section, ctl)
        except grpc.aio.AioRpcError as err:
            worst = worst or errors.exit_code(err.code())
            details = err.details() or ""
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                details = errors.unreachable(cmd[0], "its BRANCH_" + cmd[0].upper() + "_ADDR")
            print(f"  {' '.join(cmd)}: {err.code().name}: {details}", file=sys.stderr)
    if worst:
        raise SystemExit(worst)


async def audit(args: argparse.Namespace, ctl: Ctl) -> None:
    """Audit records of every service, newest first (supervisors and admins)."""
    req = audit_pb2.ListAuditRecordsRequest(page_size=args.limit, staff_id=args.staff or "",
                                            method=args.method or "")

    async def one(service: str) -> tuple[str, list[audit_pb2.AuditRecord]]:
        resp = await AuditServiceStub(ctl.channel(service)).ListAuditRecords(
            req, metadata=ctl.metadata)
        return service, list(resp.audit_records)

    services = list(registry.SERVICES)
    answers = await asyncio.gather(*(one(s) for s in services), return_exceptions=True)
    rows: list[tuple[datetime, str, audit_pb2.AuditRecord]] = []
    failed: list[grpc.aio.AioRpcError] = []
    for service, answer in zip(services, answers, strict=True):
        if isinstance(answer, grpc.aio.AioRpcError):
            failed.append(answer)
            print(f"  {service}: {answer.code().name}: {answer.details()}", file=sys.stderr)
            continue
        if isinstance(answer, BaseException):
            raise answer
        for r in answer[1]:
            rows += [(r.time.ToDatetime(), service, r)]
    if failed and len(failed) == len(services):
        raise failed[0]
    since = args.since.astimezone(UTC).replace(tzinfo=None) if args.since else None
    picked = sorted((x for x in rows if since is None or x[0] >= since),
                    key=lambda x: x[0], reverse=True)[:args.limit]
    ctl.table("audit records, newest first", ["time", "service", "staff", "method", "resource",
                                              "outcome", "request id"],
              [[local(r.time, DATE_TIME), service, r.staff_id, r.method, r.resource, r.outcome,
                r.request_id] for _, service, r in picked])
    if failed:
        raise SystemExit(errors.exit_code(failed[0].code()))


def add_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = groups.add_parser("today", help=_("what to do now, for each of your roles"))
    p.set_defaults(func=today)
    p = groups.add_parser("audit", help=_("audit records of every service, newest first "
                          "(supervisor, admin)"))
    staff_option(p, "--staff", help="only this staff member's calls")
    p.add_argument("--method", help=_("only this RPC, e.g. ChangeClientTier"))
    p.add_argument("--since", type=when.moment, help=_("e.g. 'yesterday 09:00', '2 hours ago'"))
    p.add_argument("--limit", type=count.at_least(1), default=50)
    p.set_defaults(func=audit)

