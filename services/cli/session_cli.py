"""branchctl login / logout / passwd / whoami / profiles."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

import grpc
from branch.directory.v1 import directory_service_pb2 as api
from branch.directory.v1 import directory_service_pb2_grpc as grpc_api
from branch.directory.v1 import identity_pb2, identity_pb2_grpc

from services.cli.branchctl import (
    CONFIG_DIR,
    Ctl,
    delete_profile,
    load_profile,
    save_sign_in,
    save_token,
    saved_token,
)
from services.cli.i18n import _
from services.cli.people import staff_option


def _ask(env: str, prompt: str, *, secret: bool = False) -> str:
    """From the environment (scripts), else asked on the terminal."""
    value = os.environ.get(env, "")
    if value:
        return value
    if not sys.stdin.isatty():
        raise SystemExit(_("{variable}: not set, and no terminal to ask on").format(variable=env))
    return getpass.getpass(prompt) if secret else input(prompt).strip()


def _identity(ctl: Ctl) -> identity_pb2_grpc.IdentityServiceAsyncStub:
    return identity_pb2_grpc.IdentityServiceStub(ctl.channel("directory"))


async def _change_password(ctl: Ctl, employee_no: str, password: str) -> str:
    new = os.environ.get("BRANCH_NEW_PASSWORD", "")
    if not new:
        new = _ask("BRANCH_NEW_PASSWORD", "new password (10 characters or more): ", secret=True)
        if sys.stdin.isatty() and getpass.getpass("again: ") != new:
            raise SystemExit(_("the two new passwords differ; nothing changed"))
    await _identity(ctl).ChangePassword(identity_pb2.ChangePasswordRequest(
        employee_no=employee_no, password=password, new_password=new), timeout=30)
    ctl.console.print(_("password changed"))
    return new


async def login(args: argparse.Namespace, ctl: Ctl) -> None:
    if args.token_file or args.token:
        token = (Path(args.token_file).read_text() if args.token_file else args.token).strip()
        save_token(token, ctl.profile)
    elif args.as_staff:
        # the admin's own sign-in stays in its profile; the short token goes to another
        ctl.token = await saved_token(ctl, ctl.profile)
        stub = grpc_api.DirectoryServiceStub(ctl.channel("directory"))
        issued = await stub.IssueToken(api.IssueTokenRequest(staff_id=args.as_staff),
                                       metadata=ctl.metadata)
        token = issued.token
        ctl.profile = args.into or f"as-{args.as_staff}"
        save_token(token, ctl.profile)
    else:
        employee_no = args.employee_no or _ask("BRANCH_EMPLOYEE_NO", "employee number: ")
        password = _ask("BRANCH_PASSWORD", "password: ", secret=True)
        request = identity_pb2.LoginRequest(employee_no=employee_no, password=password)
        try:
            reply = await _identity(ctl).Login(request, timeout=30)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            ctl.console.print(_("your password must be changed before you sign in"))
            request.password = await _change_password(ctl, employee_no, password)
            reply = await _identity(ctl).Login(request, timeout=30)
        save_sign_in(ctl.profile, reply, employee_no)
        token = reply.access_token
    ctl.token = token
    await whoami(args, ctl)


async def logout(args: argparse.Namespace, ctl: Ctl) -> None:
    refresh = load_profile(ctl.profile).get("refresh_token", "")
    if refresh:
        await _identity(ctl).Logout(identity_pb2.LogoutRequest(refresh_token=refresh),
                                    timeout=10)
    delete_profile(ctl.profile)
    ctl.console.print(_("signed out (profile {profile})").format(profile=ctl.profile))


async def passwd(args: argparse.Namespace, ctl: Ctl) -> None:
    employee_no = args.employee_no or load_profile(ctl.profile).get("employee_no") or \
        _ask("BRANCH_EMPLOYEE_NO", "employee number: ")
    password = _ask("BRANCH_PASSWORD", "current password: ", secret=True)
    await _change_password(ctl, employee_no, password)
    ctl.console.print(_("other sign-ins of yours have ended; run `branchctl login` again"))


async def whoami(args: argparse.Namespace, ctl: Ctl) -> None:
    import jwt

    claims = jwt.decode(ctl.metadata[0][1].split(" ", 1)[1],
                        options={"verify_signature": False})
    stub = grpc_api.DirectoryServiceStub(ctl.channel("directory"))
    staff = await stub.GetStaff(api.GetStaffRequest(id=claims["sub"]), metadata=ctl.metadata)
    ctl.console.print(_("signed in as {employee_no} ({id}), profile {profile}, roles: {roles}")
                      .format(employee_no=staff.employee_no, id=staff.id, profile=ctl.profile,
                              roles=", ".join(claims.get("roles", []))))


async def profiles(args: argparse.Namespace, ctl: Ctl) -> None:
    folder = CONFIG_DIR / "profiles"
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        data = load_profile(path.stem)
        rows.append([path.stem, data.get("employee_no", ""), ",".join(data.get("roles", [])),
                     "*" if path.stem == ctl.profile else ""])
    ctl.table("profiles", ["profile", "employee no", "roles", "in use"], rows)


def add_commands(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = groups.add_parser("login", help=_("sign in with employee number and password "
                          "(BRANCH_EMPLOYEE_NO / BRANCH_PASSWORD for scripts)"))
    p.add_argument("employee_no", nargs="?", help=_("asked for when not given"))
    p.add_argument("--token-file", help=_("keep a token given by other means instead"))
    p.add_argument("--token")
    staff_option(p, "--as", dest="as_staff",
                 help="admin support: a short token for this staff member (employee number, "
                      "name or id; audited), kept in profile --into (default as-STAFF_ID)")
    p.add_argument("--into", metavar="PROFILE", help=_("with --as: the profile to keep it in"))
    p.set_defaults(func=login, no_token=True)
    p = groups.add_parser("logout", help=_("end this profile's sign-in"))
    p.set_defaults(func=logout, no_token=True)
    p = groups.add_parser("passwd", help=_("change your password"))
    p.add_argument("employee_no", nargs="?")
    p.set_defaults(func=passwd, no_token=True)
    w = groups.add_parser("whoami", help=_("who this profile is signed in as"))
    w.set_defaults(func=whoami)
    p = groups.add_parser("profiles", help=_("list saved sign-ins"))
    p.set_defaults(func=profiles, no_token=True)
