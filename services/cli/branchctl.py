"""`branchctl`: the staff client. Each service adds its own command group from its cli.py.

Log in once (`branchctl login --token-file .branch/admin.token`, or `branchctl login --as
S0003` with an admin token to mint one); the token is kept in ~/.config/branchctl/token.
Wherever a client or staff member is asked for, type an account number, employee number,
name, pinyin initials, phone or the start or end of an id (services/cli/people.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

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
Command = Callable[[argparse.Namespace, "Ctl"], Awaitable[None]]


@dataclass
class Ctl:
    """What a command gets: channels to the services, the caller's token, a console."""

    token: str
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
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata every command sends: the bearer token, as the tuple of pairs
        grpc.aio's stubs take."""
        if not self.token:
            raise SystemExit("not logged in: run `branchctl login` first")
        return (("authorization", f"Bearer {self.token}"),)

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


def saved_token() -> str:
    env = os.environ.get("BRANCH_TOKEN")
    if env:
        return env.strip()
    path = CONFIG_DIR / "token"
    return path.read_text().strip() if path.exists() else ""


def save_token(token: str) -> None:
    CONFIG_DIR.mkdir(parents=True, exist_ok=True)
    path = CONFIG_DIR / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="branchctl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
        ctl = Ctl(token=saved_token())
        try:
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

    # an AioRpcError has what from_call reads: code(), details(), trailing_metadata()
    status = rpc_status.from_call(cast(grpc.Call, err))
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                print(f"  {v.field}: {v.description}", file=sys.stderr)


if __name__ == "__main__":
    main()
