"""branchctl directory ...: clients, staff, and trade imports from CSV."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from branch.directory.v1 import client_pb2, identity_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub
from branch.directory.v1.identity_pb2_grpc import IdentityServiceStub
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from services.cli import output
from services.cli.branchctl import Ctl
from services.cli.i18n import _
from services.cli.people import client_option, staff_option
from services.cli.timefmt import zone
from services.directory import csvfile

if TYPE_CHECKING:
    from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceAsyncStub
    from branch.directory.v1.identity_pb2_grpc import IdentityServiceAsyncStub

CHANNELS = {"onsite": client_pb2.CHANNEL_ONSITE, "remote": client_pb2.CHANNEL_REMOTE}
TIERS = {"standard": client_pb2.TIER_STANDARD, "key": client_pb2.TIER_KEY}
ROLES = [n.removeprefix("ROLE_").lower() for n in staff_pb2.Role.keys() if n != "ROLE_UNSPECIFIED"]
SEND_BATCH = 500


def _stub(ctl: Ctl) -> DirectoryServiceAsyncStub:
    return DirectoryServiceStub(ctl.channel("directory"))



async def clients(args: argparse.Namespace, ctl: Ctl) -> None:
    req = api.ListClientsRequest(page_size=args.limit, page_token=args.page or "")
    if args.channel:
        req.channel = CHANNELS[args.channel]
    if args.tier:
        req.tier = TIERS[args.tier]
    if args.broker:
        req.broker_id = args.broker
    if args.manager:
        req.client_manager_id = args.manager
    resp = await _stub(ctl).ListClients(req, metadata=ctl.metadata)
    ctl.table(_("clients ({count} match)").format(count=resp.total_size),
              ["id", "account", "name", "channel", "tier", "risk", "assessed", "broker id"],
              [[c.id, c.account_no, c.display_name,
                client_pb2.Channel.Name(c.channel).removeprefix("CHANNEL_").lower(),
                client_pb2.Tier.Name(c.tier).removeprefix("TIER_").lower(),
                client_pb2.RiskTolerance.Name(c.risk_tolerance).removeprefix("RISK_TOLERANCE_"),
                c.risk_assessed_on + (" (expired)" if c.risk_assessment_expired else ""),
                c.broker_id] for c in resp.clients])
    if resp.next_page_token:
        ctl.console.print(_("next page: --page {token}").format(token=resp.next_page_token))


async def client(args: argparse.Namespace, ctl: Ctl) -> None:
    stub = _stub(ctl)
    c = await stub.GetClient(api.GetClientRequest(id=args.id), metadata=ctl.metadata)
    held = await stub.ListHoldings(api.ListHoldingsRequest(client_id=args.id),
                                   metadata=ctl.metadata)
    if ctl.output == "json":  # scripts: the API's own field names and values
        output.write_message(c, held.holdings, "holdings")
        return
    if ctl.output == "table":
        ctl.table(_("client {account_no} {name}").format(account_no=c.account_no,
                                                        name=c.display_name),
                  ["field", "value"], output.record_rows(c, words=True))
    else:
        ctl.table("client", [r[0] for r in output.record_rows(c)],
                  [[r[1] for r in output.record_rows(c)]])
    ctl.table("holdings", ["ticker", "quantity", "cost", "market", "risk", "as of"],
              [[h.ticker, h.quantity, h.cost_price, h.market_price,
                client_pb2.RiskLevel.Name(h.risk_level).removeprefix("RISK_LEVEL_"), h.as_of]
               for h in held.holdings])


async def staff(args: argparse.Namespace, ctl: Ctl) -> None:
    req = api.ListStaffRequest(page_size=args.limit, include_inactive=args.all)
    if args.role:
        req.role = staff_pb2.Role.Value(f"ROLE_{args.role.upper()}")
    resp = await _stub(ctl).ListStaff(req, metadata=ctl.metadata)
    ctl.table("staff", ["id", "employee no", "name", "roles", "active"],
              [[s.id, s.employee_no, s.display_name,
                ",".join(staff_pb2.Role.Name(r).removeprefix("ROLE_").lower() for r in s.roles),
                s.active] for s in resp.staff])


def _identity(ctl: Ctl) -> IdentityServiceAsyncStub:
    return IdentityServiceStub(ctl.channel("directory"))


async def reset_password(args: argparse.Namespace, ctl: Ctl) -> None:
    reply = await _identity(ctl).ResetPassword(
        identity_pb2.ResetPasswordRequest(staff_id=args.id), metadata=ctl.metadata)
    ctl.console.print(_("temporary password (give it in person; changed at the next sign-in): "
                        "{password}").format(password=reply.temporary_password))


async def roles(args: argparse.Namespace, ctl: Ctl) -> None:
    wanted = [staff_pb2.Role.Value(f"ROLE_{r.upper()}") for r in args.roles]
    staff = await _identity(ctl).SetStaffRoles(
        identity_pb2.SetStaffRolesRequest(staff_id=args.id, roles=wanted), metadata=ctl.metadata)
    ctl.console.print(_("{employee_no} now: {roles}").format(
        employee_no=staff.employee_no, roles=", ".join(
            staff_pb2.Role.Name(r).removeprefix("ROLE_").lower() for r in staff.roles)))


async def deactivate(args: argparse.Namespace, ctl: Ctl) -> None:
    staff = await _stub(ctl).DeactivateStaff(api.DeactivateStaffRequest(id=args.id),
                                             metadata=ctl.metadata)
    ctl.console.print(_("{employee_no} deactivated: refused by every service from now")
                      .format(employee_no=staff.employee_no))


async def tier(args: argparse.Namespace, ctl: Ctl) -> None:
    c = await _stub(ctl).ChangeClientTier(api.ChangeClientTierRequest(
        id=args.id, tier=TIERS[args.tier], reason=args.reason), metadata=ctl.metadata)
    ctl.console.print(_("{id} is now {tier}").format(id=c.id, tier=args.tier))


async def import_csv(args: argparse.Namespace, ctl: Ctl) -> None:
    """Send a trades or corporate-actions CSV (see services/directory/csvfile.py)."""
    path = Path(args.file)
    try:
        parsed = csvfile.read(path.read_bytes(), zone(), encoding=args.encoding or "",
                              name=str(path))
    except OSError as exc:
        raise SystemExit(f"{path}: {exc.strerror}") from None
    except csvfile.FileError as exc:
        raise SystemExit(f"{path}: {exc}") from None
    records = parsed.records
    with Progress(TextColumn(_("checking") if args.dry_run else _("importing")), BarColumn(),
                  MofNCompleteColumn(), console=ctl.console) as progress:
        task = progress.add_task("import", total=len(records))

        async def messages() -> AsyncIterator[api.ImportTradesRequest]:
            for start in range(0, len(records), SEND_BATCH):
                chunk = records[start:start + SEND_BATCH]
                yield api.ImportTradesRequest(batch=chunk, validate_only=args.dry_run)
                progress.advance(task, len(chunk))

        result = await _stub(ctl).ImportTrades(messages(), metadata=ctl.metadata)
    rejections = [(parsed.rows[r.index], r.field, r.reason) for r in result.rejections
                  if 0 <= r.index < len(parsed.rows)]
    rejected = result.rejected + len({row for row, _, _ in parsed.refused})
    counts = _("accepted {accepted}, duplicate {duplicate}, rejected {rejected}").format(
        accepted=result.accepted, duplicate=result.duplicate, rejected=rejected)
    if args.dry_run:
        ctl.console.print(_("dry run ({kind}), nothing written: would be {counts}").format(
            kind=parsed.kind, counts=counts))
    else:
        ctl.console.print(f"{parsed.kind}: {counts}")
    for row, name, reason in sorted(parsed.refused + rejections)[:20]:
        ctl.console.print("  " + _("row {row}: {name}: {reason}").format(row=row, name=name,
                                                                         reason=reason),
                          markup=False)


def add_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from services.directory import calendar_cli

    calendar_cli.add_commands(groups)
    group = groups.add_parser("directory", help=_("clients, staff and imports"))
    sub = group.add_subparsers(dest="command", required=True)
    p = sub.add_parser("clients", help=_("list clients you may see"))
    p.add_argument("--channel", choices=CHANNELS)
    p.add_argument("--tier", choices=TIERS)
    staff_option(p, "--broker")
    staff_option(p, "--manager")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--page")
    p.set_defaults(func=clients)
    p = sub.add_parser("client", help=_("show one client with holdings"))
    client_option(p, "id")
    p.set_defaults(func=client)
    p = sub.add_parser("staff", help=_("list staff"))
    p.add_argument("--role", choices=ROLES, help="one of: " + ", ".join(ROLES))
    p.add_argument("--all", action="store_true", help=_("include deactivated"))
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=staff)
    role_names = [staff_pb2.Role.Name(v).removeprefix("ROLE_").lower()
                  for v in staff_pb2.Role.values() if v]
    p = sub.add_parser("reset-password", help=_("admin: a temporary password for a staff "
                       "member, changed at their next sign-in"))
    staff_option(p, "id", help="employee number, name, id prefix or id")
    p.set_defaults(func=reset_password)
    p = sub.add_parser("roles", help=_("admin: replace a staff member's roles (effective on "
                       "every service at once)"))
    staff_option(p, "id", help="employee number, name, id prefix or id")
    p.add_argument("roles", nargs="+", choices=role_names)
    p.set_defaults(func=roles)
    p = sub.add_parser("deactivate", help=_("admin: deactivate a staff member (their tokens "
                       "are refused at once)"))
    staff_option(p, "id", help="employee number, name, id prefix or id")
    p.set_defaults(func=deactivate)
    p = sub.add_parser("tier", help=_("make a client key or standard (supervisor)"))
    client_option(p, "id")
    p.add_argument("tier", choices=TIERS)
    p.add_argument("--reason", default="")
    p.set_defaults(func=tier)
    p = sub.add_parser(
        "import", help="import trades (" + ",".join(csvfile.TRADE_COLUMNS) + ") or corporate "
        "actions (" + ",".join(csvfile.ACTION_COLUMNS + csvfile.ACTION_VALUES) + ") from CSV; "
        "times without an offset are branch-local (BRANCH_TIMEZONE)")
    p.add_argument("file")
    p.add_argument("--encoding", help=_("the file's encoding (default: UTF-8 with or without BOM, "
                   "else GB18030/GBK)"))
    p.add_argument("--dry-run", action="store_true",
                   help=_("check every row and show what would be accepted, without writing"))
    p.set_defaults(func=import_csv)
