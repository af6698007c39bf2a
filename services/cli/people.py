"""One way to name someone in branchctl.

Wherever a command asks for a client or a staff member, it accepts an account number (资金账号),
employee number, name, pinyin initials, phone, the start or end of an id, or the id itself;
the directory's SearchClients / SearchStaff answer. One exact match (or one match at all) is
taken; several are listed and the command stops (exit 1); none says so (exit 1).

A cli.py marks such options with `staff_option(p, "--agent")` / `client_option(p, "--client")`
(same arguments as add_argument); branchctl resolves them once, before the command runs.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from branch.directory.v1 import search_pb2 as spb
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

from services.cli.i18n import _

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
PEOPLE = "_people"
CANDIDATES = 10
STAFF, CLIENT, STAFF_LIST = "staff", "client", "staff_list"


class Ambiguous(SystemExit):
    """Several people answer to what was typed; the message lists them."""


def _mark(parser: argparse.ArgumentParser, kind: str, *names: str, **kw: Any) -> None:
    action = parser.add_argument(*names, **kw)
    marks = dict(parser.get_default(PEOPLE) or {})
    marks[action.dest] = kind
    parser.set_defaults(**{PEOPLE: marks})


def staff_option(parser: argparse.ArgumentParser, *names: str, **kw: Any) -> None:
    """add_argument for a staff member: employee number, name, id prefix/suffix or id."""
    kw.setdefault("metavar", "STAFF")
    _mark(parser, STAFF, *names, **kw)


def staff_list_option(parser: argparse.ArgumentParser, *names: str, **kw: Any) -> None:
    """add_argument for comma-separated staff members, each named as staff_option."""
    kw.setdefault("metavar", "STAFF,STAFF")
    _mark(parser, STAFF_LIST, *names, **kw)


def client_option(parser: argparse.ArgumentParser, *names: str, **kw: Any) -> None:
    """add_argument for a client: account number, name, pinyin, phone, id prefix/suffix or id."""
    kw.setdefault("metavar", "CLIENT")
    _mark(parser, CLIENT, *names, **kw)


async def resolve_args(args: argparse.Namespace, ctl: Any) -> None:
    """Replace every marked option's value by the id it names (in place)."""
    for dest, kind in (getattr(args, PEOPLE, None) or {}).items():
        value = getattr(args, dest, None)
        if not value:
            continue
        if isinstance(value, list):  # nargs: each one names someone
            one = resolve_staff if kind == STAFF else resolve_client
            setattr(args, dest, [await one(ctl, v) for v in value])
        elif kind == STAFF_LIST:
            ids = [await resolve_staff(ctl, part) for part in value.split(",") if part.strip()]
            setattr(args, dest, ",".join(ids))
        elif kind == STAFF:
            setattr(args, dest, await resolve_staff(ctl, value))
        else:
            setattr(args, dest, await resolve_client(ctl, value))


async def resolve_staff(ctl: Any, typed: str) -> str:
    """The staff id `typed` names; SystemExit with the candidates or 'no match' otherwise."""
    typed = typed.strip()
    if UUID.match(typed):
        return typed
    stub = DirectoryServiceStub(ctl.channel("directory"))
    resp = await stub.SearchStaff(spb.SearchStaffRequest(
        query=typed, page_size=CANDIDATES, include_inactive=True), metadata=ctl.metadata)
    return pick("staff member", typed, resp.results, bool(resp.next_page_token),
                lambda r: f"{r.employee_no:<10} {r.display_name}"
                          + ("" if r.active else " (deactivated)") + f"  {r.id}")


async def resolve_client(ctl: Any, typed: str) -> str:
    """The client id `typed` names, among the clients the caller may see."""
    typed = typed.strip()
    if UUID.match(typed):
        return typed
    stub = DirectoryServiceStub(ctl.channel("directory"))
    resp = await stub.SearchClients(spb.SearchClientsRequest(
        query=typed, page_size=CANDIDATES), metadata=ctl.metadata)
    return pick("client", typed, resp.results, bool(resp.next_page_token),
                lambda r: f"{r.account_no:<14} {r.display_name}  {r.phone}  {r.id}")


def pick(kind: str, typed: str, results: Sequence[Any], more: bool, line: Any) -> str:
    """One exact result, else the only result; otherwise stop with what was found."""
    exact = [r for r in results if r.exact]
    if len(exact) == 1:
        return str(exact[0].id)
    if len(results) == 1:
        return str(results[0].id)
    if not results:
        raise SystemExit((_("no client matches {typed}") if kind == "client"
                          else _("no staff member matches {typed}")).format(typed=repr(typed)))
    shown = exact or list(results)
    lines = "\n".join("  " + line(r) for r in shown)
    tail = ("\n  " + _("... and more: type more of the name or number")
            if more and not exact else "")
    several = (_("{typed} names several clients; give one of:") if kind == "client"
               else _("{typed} names several staff members; give one of:"))
    raise Ambiguous(several.format(typed=repr(typed)) + f"\n{lines}{tail}")
