"""branchctl login / whoami."""

from __future__ import annotations

import argparse
from pathlib import Path

from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1 import directory_service_pb2_grpc as grpc_api

from services.cli.branchctl import Ctl, save_token
from services.cli.people import staff_option
from services.common.auth import TokenSigner


async def login(args: argparse.Namespace, ctl: Ctl) -> None:
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    elif args.token:
        token = args.token.strip()
    elif args.as_staff:
        stub = grpc_api.DirectoryServiceStub(ctl.channel("directory"))
        issued = await stub.IssueToken(api.IssueTokenRequest(staff_id=args.as_staff),
                                       metadata=ctl.metadata)
        token = issued.token
    else:
        raise SystemExit("give --token-file, --token or --as STAFF (employee number, name or id)")
    save_token(token)
    ctl.token = token
    await whoami(args, ctl)


async def whoami(args: argparse.Namespace, ctl: Ctl) -> None:
    import jwt

    claims = jwt.decode(ctl.token, options={"verify_signature": False})
    stub = grpc_api.DirectoryServiceStub(ctl.channel("directory"))
    staff = await stub.GetStaff(api.GetStaffRequest(id=claims["sub"]), metadata=ctl.metadata)
    ctl.console.print(f"logged in as {staff.employee_no} ({staff.id}), roles: "
                      + ", ".join(claims.get("roles", [])))


def add_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = groups.add_parser("login", help="store a token for later commands")
    p.add_argument("--token-file")
    p.add_argument("--token")
    staff_option(p, "--as", dest="as_staff",
                 help="mint a token for this staff member: employee number, name or id "
                      "(needs an admin token)")
    p.set_defaults(func=login)
    w = groups.add_parser("whoami", help="who the stored token names")
    w.set_defaults(func=whoami)


__all__ = ["TokenSigner", "add_commands"]
