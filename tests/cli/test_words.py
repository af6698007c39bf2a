"""branchctl's words in Chinese: every list command, run under LANG=zh_CN.UTF-8 against the
real services, shows only titles and column headers that are translations in the zh_CN
catalogue (services/cli/locale), never the English words it was written with.

The check is against the catalogue itself (each shown title or header must be one of its
msgstr, a "{name}" in one matching anything), so a word that never went through it fails,
whoever adds the command. A static check beside it: no ctl.table() call builds its title in
a way the catalogue cannot see (an f-string, a concatenation).
"""

from __future__ import annotations

import ast
import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from branch.directory.v1 import client_pb2, staff_pb2
from branch.directory.v1 import directory_service_pb2 as dapi
from branch.directory.v1.directory_service_pb2_grpc import DirectoryServiceStub

from services.cli import branchctl, output
from services.common.server import ServiceRunner
from tests.cli.suite import point_at, run_main, six_services
from tests.harness import ADMIN, channel, token

ROOT = Path(__file__).resolve().parents[2]
# commands with no required argument that change something, or sign in or out
CHANGING = {"login", "logout", "passwd", "remote duty", "remote absent", "remote next",
            "onsite plan", "insight rebuild"}
# commands that print a line or two, no table
NO_TABLE = {"whoami", "insight settings", "insight status", "onsite settings"}
ROLES = sorted({"client_manager", "consultant", "service_agent", "broker", "analyst",
                "compliance", "supervisor", "admin", "quality_inspector"})


def _required(parser: object) -> bool:
    return any((a.required or (not a.option_strings and a.nargs not in ("?", "*")))
               for a in parser._actions if a.dest != "help")  # type: ignore[attr-defined]


LIST_COMMANDS = sorted(
    " ".join(path) for path, leaf in branchctl.leaves(branchctl.build_parser())
    if not _required(leaf) and " ".join(path) not in CHANGING)


def _catalogue_patterns() -> list[re.Pattern[str]]:
    path = ROOT / "services/cli/locale/zh_CN/LC_MESSAGES/branchctl.po"
    with path.open("rb") as f:
        catalogue = read_po(f, locale="zh_CN")
    patterns = []
    for message in catalogue:
        if message.id and isinstance(message.string, str) and message.string:
            parts = re.split(r"\{[a-z_]*\}", message.string)
            patterns.append(re.compile(".*?".join(re.escape(p) for p in parts) + r"\Z",
                                       re.DOTALL))
    return patterns


PATTERNS = _catalogue_patterns()


def translated(word: str) -> bool:
    return not word or any(p.match(word) for p in PATTERNS)


@pytest.fixture(scope="module")
async def suite(tmp_path_factory: pytest.TempPathFactory, nats_server: object
                ) -> AsyncIterator[tuple[dict[str, ServiceRunner], str]]:
    """All six services, one staff member (supervisor, broker), one client of theirs."""
    nats_url = nats_server.url  # type: ignore[attr-defined]
    async with six_services(tmp_path_factory.mktemp("words"), nats_url) as runners, \
            channel(runners["directory"]) as ch:
        directory = DirectoryServiceStub(ch)
        everyone = await directory.CreateStaff(dapi.CreateStaffRequest(staff=staff_pb2.Staff(
            employee_no="S0001", display_name="王芳", roles=[
                staff_pb2.ROLE_SUPERVISOR, staff_pb2.ROLE_BROKER])), metadata=ADMIN)
        await directory.CreateClient(dapi.CreateClientRequest(client=client_pb2.Client(
            account_no="310000123456", display_name="张三", phone="13089384935",
            channel=client_pb2.CHANNEL_ONSITE, tier=client_pb2.TIER_KEY,
            risk_tolerance=client_pb2.RISK_TOLERANCE_C3, risk_assessed_on="2025-06-01",
            commission_rate="0.00025", broker_id=everyone.id)), metadata=ADMIN)
        yield runners, everyone.id


@pytest.mark.parametrize("command", LIST_COMMANDS)
async def test_list_commands_show_chinese_titles_and_headers(
        command: str, suite: tuple[dict[str, ServiceRunner], str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    runners, staff_id = suite
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    monkeypatch.setenv("BRANCH_TOKEN", token(staff_id, *ROLES))
    point_at(monkeypatch, runners, tmp_path)
    shown: list[str] = []
    real = output.headings

    def spy(title: str, columns: Sequence[str]) -> tuple[str, list[str]]:
        made = real(title, columns)
        shown.extend([made[0], *made[1]])
        return made

    monkeypatch.setattr(output, "headings", spy)
    code, text = await asyncio.to_thread(run_main, command.split())
    assert code == 0, text
    if command in NO_TABLE:
        return
    assert shown, f"branchctl {command} printed no table:\n{text}"
    english = [w for w in shown if not translated(w)]
    assert not english, f"branchctl {command}: not through the zh_CN catalogue: {english}"


CLI_MODULES = sorted([*ROOT.glob("services/*/cli.py"), *ROOT.glob("services/*/*_cli.py"),
                      *ROOT.glob("services/cli/*.py")])


def _through_catalogue(node: ast.expr) -> bool:
    """A literal (extracted by scripts/i18n.py), a name, or _("...") / _("...").format()."""
    if isinstance(node, ast.Constant) or isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.IfExp):
        return _through_catalogue(node.body) and _through_catalogue(node.orelse)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "_":
            return True
        if isinstance(func, ast.Attribute) and func.attr == "format":
            return _through_catalogue(func.value)
    return False


@pytest.mark.parametrize("path", CLI_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_table_title_can_be_translated(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bad = [f"{path.name}:{node.lineno}" for node in ast.walk(tree)
           if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
           and node.func.attr == "table" and node.args
           and not _through_catalogue(node.args[0])]
    assert not bad, f"table titles the catalogue cannot see: {bad}"


@pytest.mark.parametrize("path", CLI_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_rebinds_the_gettext_function(path: Path) -> None:
    """`ticker, _, stance = ...` in a function that also prints _("...") makes `_` a local
    string there, and the print fails ("'str' object is not callable") on the path that
    reaches it. Comprehensions have their own scope, so `for _, x in ...` inside one is fine."""
    tree = ast.parse(path.read_text())
    comprehension_targets = {id(n) for c in ast.walk(tree)
                             if isinstance(c, ast.comprehension) for n in ast.walk(c.target)}
    bad = [f"{path.name}:{node.lineno}" for node in ast.walk(tree)
           if (isinstance(node, ast.Name) and node.id == "_" and isinstance(node.ctx, ast.Store)
               and id(node) not in comprehension_targets)
           or (isinstance(node, ast.arg) and node.arg == "_")]
    assert not bad, f"`_` rebound (use another name): {bad}"
