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
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import jwt

try:
    from rich.console import Console
except ImportError:  # an install without the cli extra, e.g. the service image
    raise SystemExit("branchctl needs the cli extra: "
                     "pip install 'branch-client-service-suite[cli]'") from None

from services import registry
from services.cli import errors, i18n, output, people
from services.cli.i18n import _
from services.common import channels
from services.common.settings import ConfigError, load_settings

CONFIG_DIR = Path(os.environ.get("BRANCHCTL_HOME", Path.home() / ".config" / "branchctl"))
DEFAULT_PROFILE = "default"
Command = Callable[[argparse.Namespace, "Ctl"], Awaitable[None]]


@dataclass
class Ctl:
    """What a command gets: channels to the services, the caller's token, a console, and the
    output format (--output) its lists are printed in."""

    token: str
    profile: str = DEFAULT_PROFILE
    # a pipe gets full ids rather than columns cut to 80
    console: Console = field(
        default_factory=lambda: Console(width=None if sys.stdout.isatty() else 200)
    )
    output: str = "table"
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    last_service: str = ""

    def channel(self, service: str) -> grpc.aio.Channel:
        """A channel to `service` at BRANCH_<SERVICE>_ADDR, plaintext or TLS per BRANCH_TLS_*
        (services/common/channels.py); commands send the token as call metadata."""
        self.last_service = service
        if service not in self._channels:
            self._channels[service] = channels.aio_channel(load_settings(), service)
        return self._channels[service]

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata every command sends: the bearer token, as the tuple of pairs
        grpc.aio's stubs take."""
        if not self.token:
            raise SystemExit(_("not signed in (profile {profile}): run `branchctl login`")
                             .format(profile=self.profile))
        return (("authorization", f"Bearer {self.token}"),
                # the services' LocalizedMessage in branchctl's language
                ("accept-language", "zh-CN" if i18n.chosen() == "zh_CN" else "en"))

    def table(self, title: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A list: a table, or JSON/CSV per --output (services/cli/output.py)."""
        output.emit(self.output, self.console, title, columns, rows)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()


def who(display_name: str, person_id: str) -> str:
    """A client or staff member in a table: the name beside the FULL id ("-" for none);
    the id alone while the service does not know the name yet."""
    if not person_id:
        return "-"
    return f"{display_name} {person_id}" if display_name else person_id


def clip(text: str, width: int = 40) -> str:
    """Free text shown at most `width` characters in a table, ending with "…" when it was
    longer; JSON and CSV (--output) get it whole (output.Short)."""
    return output.Short(" ".join(text.split()), width)


# refresh when the access token has less than this left (seconds)
REFRESH_MARGIN = 30


def profile_path(profile: str) -> Path:
    if not profile or not all(c.isalnum() or c in "-_." for c in profile) or profile[0] == ".":
        raise SystemExit(_("profile names are letters, digits, '-', '_' or '.': {profile}")
                         .format(profile=repr(profile)))
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
            raise SystemExit(_("signed out ({reason}): run `branchctl login` again").format(
                reason=err.details())) from None
        raise
    save_sign_in(profile, reply)
    return reply.access_token


def version() -> str:
    """The installed package's version ('unknown' when run from a bare checkout)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("branch-client-service-suite")
    except PackageNotFoundError:
        return "unknown"


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """--output, --debug: accepted before the group and after the command alike."""
    parser.add_argument("--output", "-o", choices=output.FORMATS, default=default,
                        help=_("lists as a table (default), JSON or CSV"))
    parser.add_argument("--debug", action="store_true", default=default,
                        help=_("show the traceback of an unexpected failure"))
    parser.add_argument("--lang", type=i18n.normalise, default=default,
                        help=_("zh_CN (中文) or en (default: from LANG)"))


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
           ) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command as (("vip", "gaps"), its parser), walking the subcommand tree."""
    found: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = []
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    seen: set[int] = set()
    for action in subs:
        for name, child in action.choices.items():
            if id(child) not in seen:  # aliases share a parser
                seen.add(id(child))
                found += leaves(child, (*path, name))
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="branchctl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"branchctl {version()}")
    parser.add_argument("--profile", default=os.environ.get("BRANCHCTL_PROFILE",
                                                            DEFAULT_PROFILE),
                        help=_("which saved sign-in to use (default: %(default)s)"))
    _global_options(parser, None)
    groups = parser.add_subparsers(dest="group", required=True)
    for service in ("common", *registry.SERVICES):
        module = registry.cli_module(service) if service != "common" else None
        if service == "common":
            from services.cli import ops_cli, session_cli

            session_cli.add_commands(groups)
            ops_cli.add_commands(groups)
        elif module is not None:
            module.add_commands(groups)
    for path, leaf in leaves(parser):
        _global_options(leaf, argparse.SUPPRESS)
        leaf.set_defaults(_command=" ".join(path), _options={
            a.dest: (max(a.option_strings, key=len) if a.option_strings else a.dest.upper())
            for a in leaf._actions if a.dest not in ("help", "output", "debug", "lang")})
    try:  # shell completion: eval "$(register-python-argcomplete branchctl)"
        import argcomplete

        argcomplete.autocomplete(parser)
    except ImportError:
        pass
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run one command; exits with the status documented in services/cli/errors.py."""
    i18n.install(i18n.language(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command | None = getattr(args, "func", None)
    if command is None:
        parser.print_help()
        raise SystemExit(2)
    ctl = Ctl(token="", profile=args.profile, output=args.output or "table")
    if ctl.output != "table":  # stdout holds only the JSON/CSV; notes and titles go aside
        ctl.console = Console(stderr=True, width=200)

    async def run() -> None:
        try:
            try:
                ctl.token = await saved_token(ctl, args.profile)
            except SystemExit:
                if not getattr(args, "no_token", False):
                    raise
                ctl.token = ""  # login and logout work without a live sign-in
            await people.resolve_args(args, ctl)  # names, numbers -> ids
            await command(args, ctl)
        finally:
            await ctl.close()

    try:
        asyncio.run(run())
    except grpc.aio.AioRpcError as err:
        raise SystemExit(_report_rpc(err, args, ctl)) from None
    except errors.UsageError as err:
        print(f"branchctl {args._command}: " + _("error: {message}").format(message=err),
              file=sys.stderr)
        raise SystemExit(errors.USAGE) from None
    except ConfigError as err:  # e.g. an unreadable BRANCH_TLS_CA_FILE
        print(_("error: {message}").format(message=err), file=sys.stderr)
        raise SystemExit(errors.USAGE) from None
    except KeyboardInterrupt:
        print(_("interrupted"), file=sys.stderr)
        raise SystemExit(errors.INTERRUPTED) from None
    except SystemExit:
        raise
    except jwt.PyJWTError:  # a token read for its claims (whoami, --mine) is not one
        print(_("error: the stored token is not a valid token: run `branchctl login` again"),
              file=sys.stderr)
        raise SystemExit(errors.STOPPED) from None
    except OSError as err:  # a file named on the command line, a closed pipe
        print(_("error: {message}").format(
            message=f"{err.filename + ': ' if err.filename else ''}{err.strerror or err}"),
            file=sys.stderr)
        raise SystemExit(errors.STOPPED) from None
    except Exception as err:  # the last resort: a bug, told in one line
        if args.debug:
            raise
        print(_("error: branchctl {command} failed unexpectedly ({problem}); rerun with --debug "
                "and report it").format(command=args._command,
                                        problem=f"{type(err).__name__}: {err}"),
              file=sys.stderr)
        raise SystemExit(errors.BUG) from None


def _has_status(err: grpc.aio.AioRpcError) -> bool:
    """True when a service answered with a google.rpc.Status (its words, its reason)."""
    return any(key == "grpc-status-details-bin" for key, _value in err.trailing_metadata() or ())


def _report_rpc(err: grpc.aio.AioRpcError, args: argparse.Namespace, ctl: Ctl) -> int:
    """Print what the service said, in the command's words; returns the exit status."""
    code = err.code()
    details = err.details() or ""
    # UNAVAILABLE from the transport, not from a service (a service's comes with a status,
    # e.g. its database is down): refused, or the connection dropped mid-call
    if code == grpc.StatusCode.UNAVAILABLE and not _has_status(err):
        service = ctl.last_service or "directory"
        try:
            address = load_settings().address(service)
        except ConfigError:
            address = f"BRANCH_{service.upper()}_ADDR"
        print(_("error: {message}").format(message=errors.unreachable(service, address)),
              file=sys.stderr)
        return errors.exit_code(code)
    command, options = args._command, args._options
    localized = _localized(err) if i18n.chosen() == "zh_CN" else ""
    bad = _bad_fields(err)
    message = errors.with_flags(localized or details, command, options, [f for f, _d in bad])
    print(_("error: {message}").format(message=f"{code.name}: {message}"), file=sys.stderr)
    for field_name, description in bad:
        print(f"  {errors.flag_for(field_name, command, options)}: {description}",
              file=sys.stderr)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        print("  " + _("log in again: branchctl login"), file=sys.stderr)
    return errors.exit_code(code)


def _localized(err: grpc.aio.AioRpcError) -> str:
    """The service's zh-CN LocalizedMessage, '' when it sent none."""
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    try:
        status = rpc_status.from_call(_as_call(err))
    except ValueError:
        return ""
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.LocalizedMessage.DESCRIPTOR):
            msg = error_details_pb2.LocalizedMessage()
            detail.Unpack(msg)
            if msg.locale.lower().startswith("zh"):
                return str(msg.message)
    return ""


def _as_call(err: grpc.aio.AioRpcError) -> grpc.Call:
    """grpc_status's from_call is typed for a sync call; an AioRpcError has what it reads:
    code(), details(), trailing_metadata()."""
    return cast(grpc.Call, err)


def _bad_fields(err: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    try:
        status = rpc_status.from_call(_as_call(err))
    except ValueError:  # a status whose code does not match the call's
        return []
    found = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found += [(v.field, v.localized_message.message or v.description)
                      for v in bad.field_violations]
    return found


if __name__ == "__main__":
    main()
