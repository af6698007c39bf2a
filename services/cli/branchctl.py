"""`branchctl`: the staff client. Each service adds its own command group from its cli.py.

Sign in once with `branchctl login` (employee number and password; scripts set
BRANCH_EMPLOYEE_NO and BRANCH_PASSWORD). The sign-in is kept per profile in
~/.config/branchctl/profiles/NAME.json (mode 0600) and refreshed as needed; `--profile NAME`
(or BRANCHCTL_PROFILE) keeps, say, an admin and a staff sign-in side by side.
`branchctl logout` ends it. Tokens travel in clear unless TLS is on: see deploy/README.md.
Wherever a client or staff member is asked for, type an account number, employee number,
name, pinyin initials, phone or the start or end of an id (services/cli/people.py).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

try:
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table
except ImportError:  # an install without the cli extra, e.g. the service image
    raise SystemExit("branchctl needs the cli extra: "
                     "pip install 'branch-client-service-suite[cli]'") from None

from services import registry
from services.cli import people
from services.common import channels
from services.common.settings import ConfigError, load_settings

CONFIG_DIR = Path(os.environ.get("BRANCHCTL_HOME", Path.home() / ".config" / "branchctl"))
DEFAULT_PROFILE = "default"
Command = Callable[[argparse.Namespace, "Ctl"], Awaitable[None]]


@dataclass
class Ctl:
    """What a command gets: channels to the services, the caller's token, a console."""

    token: str
    profile: str = DEFAULT_PROFILE
    # a pipe gets full ids rather than columns cut to 80
    console: Console = field(
        default_factory=lambda: Console(width=None if sys.stdout.isatty() else 200)
    )
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def channel(self, service: str) -> grpc.aio.Channel:
        """A channel to `service` at BRANCH_<SERVICE>_ADDR, plaintext or TLS per BRANCH_TLS_*
        (services/common/channels.py); commands send the token as call metadata."""
        if service not in self._channels:
            self._channels[service] = channels.aio_channel(load_settings(), service)
        return self._channels[service]

    @property
    def metadata(self) -> list[tuple[str, str]]:
        if not self.token:
            raise SystemExit(f"not signed in (profile {self.profile}): run `branchctl login`")
        return [("authorization", f"Bearer {self.token}")]

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        """Print a table. Ids are never cut: a column holding ids (a UUID anywhere in a cell,
        or every cell of an "id" column) is at least as wide as its longest id, so narrow
        terminals wrap names and free text instead ("…" only ends long free text, clip())."""
        table = Table(title=title)
        for i, col in enumerate(columns):
            cells = [str(row[i]) for row in rows if i < len(row)]
            table.add_column(col, min_width=_id_width(col, cells) or None)
        for row in rows:
            table.add_row(*[str(c) for c in row])
        # a table that cannot fit keeps its ids whole: the line grows past the terminal
        # (which wraps it) rather than rich cropping the columns on the right
        needed = Measurement.get(self.console, self.console.options, table).minimum
        self.console.print(table, width=max(needed, self.console.width), crop=False)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()


ID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _id_width(header: str, cells: list[str]) -> int:
    """The width of the longest id in a column (0: no ids)."""
    ids = [m.group(0) for c in cells for m in ID_PATTERN.finditer(c)]
    if header.strip().lower() in ("id", "ids") or header.strip().lower().endswith(" id"):
        ids += [c for c in cells if c and not any(ch.isspace() for ch in c)]
    return max((len(i) for i in ids), default=0)


def who(display_name: str, person_id: str) -> str:
    """A client or staff member in a table: the name beside the FULL id ("-" for none);
    the id alone while the service does not know the name yet."""
    if not person_id:
        return "-"
    return f"{display_name} {person_id}" if display_name else person_id


def clip(text: str, width: int = 40) -> str:
    """Free text cut to `width` characters, ending with "…" when it was longer."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


# refresh when the access token has less than this left (seconds)
REFRESH_MARGIN = 30


def profile_path(profile: str) -> Path:
    if not profile or not all(c.isalnum() or c in "-_." for c in profile) or profile[0] == ".":
        raise SystemExit(f"profile names are letters, digits, '-', '_' or '.': {profile!r}")
    return CONFIG_DIR / "profiles" / f"{profile}.json"


def load_profile(profile: str) -> dict[str, Any]:
    path = profile_path(profile)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def save_profile(profile: str, data: dict[str, Any]) -> None:
    path = profile_path(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    tmp.replace(path)


def delete_profile(profile: str) -> None:
    profile_path(profile).unlink(missing_ok=True)


def save_token(token: str, profile: str = DEFAULT_PROFILE) -> None:
    """Keep a bare access token (no refresh) as this profile's sign-in."""
    save_profile(profile, {"access_token": token})


def save_sign_in(profile: str, reply: Any, employee_no: str = "") -> None:
    """Keep a SignInResponse (access and refresh token) as this profile's sign-in."""
    save_profile(profile, {
        "staff_id": reply.staff_id,
        "employee_no": employee_no or load_profile(profile).get("employee_no", ""),
        "roles": list(reply.roles),
        "access_token": reply.access_token,
        "access_expires": reply.access_expire_time.seconds,
        "refresh_token": reply.refresh_token,
        "refresh_expires": reply.refresh_expire_time.seconds,
    })


async def saved_token(ctl: Ctl | None = None, profile: str = DEFAULT_PROFILE) -> str:
    """BRANCH_TOKEN if set; else the profile's access token, refreshed through the directory
    when it is about to expire (the new refresh token is saved at once: it is single use)."""
    env = os.environ.get("BRANCH_TOKEN")
    if env:
        return env.strip()
    data = load_profile(profile)
    if not _needs_refresh(data) or ctl is None:
        return str(data.get("access_token", ""))
    path = profile_path(profile)
    with open(path.with_suffix(".lock"), "a") as lock:
        # two branchctl at once must not both spend the single-use refresh token (the
        # second would look like a thief and end the sign-in): one refreshes, one waits
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = load_profile(profile)
        if not _needs_refresh(data):
            return str(data.get("access_token", ""))
        return await _refresh(ctl, profile, str(data["refresh_token"]))


def _needs_refresh(data: dict[str, Any]) -> bool:
    return bool(data.get("refresh_token")) and \
        time.time() >= float(data.get("access_expires", 0)) - REFRESH_MARGIN


async def _refresh(ctl: Ctl, profile: str, refresh: str) -> str:
    from branch.directory.v1 import identity_pb2, identity_pb2_grpc

    stub = identity_pb2_grpc.IdentityServiceStub(ctl.channel("directory"))
    try:
        reply = await stub.RefreshToken(identity_pb2.RefreshTokenRequest(refresh_token=refresh),
                                        timeout=10)
    except grpc.aio.AioRpcError as err:
        if err.code() == grpc.StatusCode.UNAUTHENTICATED:
            delete_profile(profile)
            raise SystemExit(f"signed out ({err.details()}): run `branchctl login` again") from None
        raise
    save_sign_in(profile, reply)
    return reply.access_token


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="branchctl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=os.environ.get("BRANCHCTL_PROFILE",
                                                            DEFAULT_PROFILE),
                        help="which saved sign-in to use (default: %(default)s)")
    groups = parser.add_subparsers(dest="group", required=True)
    for service in ("common", *registry.SERVICES):
        module = registry.cli_module(service) if service != "common" else None
        if service == "common":
            from services.cli import session_cli

            session_cli.add_commands(groups)
        elif module is not None:
            module.add_commands(groups)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command | None = getattr(args, "func", None)
    if command is None:
        parser.print_help()
        raise SystemExit(2)

    async def run() -> None:
        ctl = Ctl(token="", profile=args.profile)
        try:
            try:
                ctl.token = await saved_token(ctl, args.profile)
            except SystemExit:
                if not getattr(args, "no_token", False):
                    raise
                ctl.token = ""  # login and logout work without a live sign-in
            await people.resolve_args(args, ctl)  # names, numbers -> ids
            await command(args, ctl)
        except grpc.aio.AioRpcError as err:
            print(f"error: {err.code().name}: {err.details()}", file=sys.stderr)
            _print_bad_fields(err)
            raise SystemExit(1) from None
        except ConfigError as err:  # e.g. an unreadable BRANCH_TLS_CA_FILE
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        finally:
            await ctl.close()

    asyncio.run(run())


def _print_bad_fields(err: grpc.aio.AioRpcError) -> None:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    status = rpc_status.from_call(err)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                print(f"  {v.field}: {v.description}", file=sys.stderr)


if __name__ == "__main__":
    main()
