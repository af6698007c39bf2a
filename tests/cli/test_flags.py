"""A refusal names the flag a person typed, never the API's field (issue 13: --override, not
suitability_override_reason), for every command of every service.

Walked statically, without a running suite: for each branchctl command, the request messages
its function builds (api.XRequest(...)) and the fields it sets in them (keywords, attribute
assignments, CopyFrom); of those, every field a service can name in a BadRequest (a field
given to Violations.add/check in the service's code or in services/common, or any Timestamp,
which services/common/request_checks.py refuses when it is not a real instant; a whole
nested message is left out, branchctl always sends one) must map,
through services/cli/errors.flag_for, to one of that command's own flags or arguments.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from services.cli import branchctl, errors

ROOT = Path(__file__).resolve().parents[2]


@cache
def refused_fields(service: str) -> tuple[re.Pattern[str], ...]:
    """Patterns of the field names the code under services/<service> gives Violations
    ({} for a part made at run time; an [index] dropped)."""
    found: set[str] = set()
    for path in (ROOT / "services" / service).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr == "add" and node.args:
                arg = node.args[0]
            elif node.func.attr == "check" and len(node.args) >= 2:
                arg = node.args[1]
            else:
                continue
            found |= _field_names(arg)
        for node in ast.walk(ast.parse(path.read_text())):
            # helpers that add to the violations they are given: check_text(v, "field", ...)
            if isinstance(node, ast.Call) and len(node.args) >= 2 \
                    and isinstance(node.args[0], ast.Name) \
                    and node.args[0].id in ("v", "violations"):
                found |= _field_names(node.args[1])
    return tuple(re.compile(".*?".join(re.escape(p) for p in
                                       re.sub(r"\[\{\}\]|\[\d+\]", "", f).split("{}")) + r"\Z")
                 for f in found if re.sub(r"\{\}|\[\{\}\]|[.\[\]]", "", f))


def _field_names(arg: ast.expr) -> set[str]:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value}
    if isinstance(arg, ast.JoinedStr):
        return {"".join(str(v.value) if isinstance(v, ast.Constant) else "{}"
                        for v in arg.values)}
    return set()


def paths(descriptor: Descriptor, prefix: str = "", depth: int = 0
          ) -> list[tuple[str, FieldDescriptor]]:
    found = []
    for field in descriptor.fields:
        name = prefix + field.name
        found.append((name, field))
        if field.message_type is not None and depth < 3 and \
                field.message_type.full_name != "google.protobuf.Timestamp":
            found += paths(field.message_type, name + ".", depth + 1)
    return found


def _typed(node: ast.AST, typed: set[str]) -> bool:
    """Does `node` use what the person typed (args.X, or a local made from it)?"""
    return any(isinstance(n, ast.Name) and (n.id == "args" or n.id in typed)
               for n in ast.walk(node))


def built(func: Callable[..., Any]) -> tuple[set[Any], set[str]]:
    """The request classes `func` builds and the field names it sets from the command line
    (a keyword or assignment whose value uses args, or a local variable made from args)."""
    module = importlib.import_module(func.__module__)
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    typed: set[str] = set()
    for _ in range(3):  # locals made from locals made from args
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and _typed(node.value, typed):
                typed |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.For) and _typed(node.iter, typed) \
                    and isinstance(node.target, ast.Name):
                typed.add(node.target.id)
    requests: set[Any] = set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr.endswith("Request") \
                    and isinstance(f.value, ast.Name):
                cls = getattr(getattr(module, f.value.id, None), f.attr, None)
                if cls is not None:
                    requests.add(cls)
            if not (isinstance(f, ast.Attribute) and f.attr == "format"):  # words, not a request
                names |= {k.arg for k in node.keywords if k.arg and _typed(k.value, typed)}
            if isinstance(f, ast.Attribute) and f.attr in ("CopyFrom", "extend", "append") \
                    and isinstance(f.value, ast.Attribute) and _typed(node, typed):
                names.add(f.value.attr)
        elif isinstance(node, ast.Assign | ast.AugAssign) and _typed(node.value, typed):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.attr for t in targets if isinstance(t, ast.Attribute)}
    return requests, names


COMMANDS = [(" ".join(path), leaf) for path, leaf in branchctl.leaves(branchctl.build_parser())
            if leaf.get_default("func") is not None]


def unmapped(command: str, leaf: Any) -> list[str]:
    func = leaf.get_default("func")
    service = func.__module__.split(".")[1]
    patterns = refused_fields("common") + (refused_fields(service) if service != "cli" else ())
    options: dict[str, str] = leaf.get_default("_options")
    requests, names = built(func)
    # commands sharing one function (remote respond/resolve/...) build every request of it:
    # a field is the command's when one of its own options takes it
    sharing = [o for c, o in COMMANDS if o.get_default("func") is func and c != command]
    bad = []
    for request in requests:
        for name, field in paths(request.DESCRIPTOR):
            if name.rsplit(".", 1)[-1] not in names:
                continue  # the command never sets it
            timestamp = field.message_type is not None and \
                field.message_type.full_name == "google.protobuf.Timestamp"
            if field.message_type is not None and not timestamp:
                continue  # a whole message (visit, meeting): branchctl always sends it
            if not timestamp and not any(p.match(name) for p in patterns):
                continue
            if errors.flag_for(name, command, options) in options.values():
                continue
            if any(errors.flag_for(name, command, o.get_default("_options"))
                   in o.get_default("_options").values() for o in sharing):
                continue
            bad.append(f"{request.DESCRIPTOR.name}.{name}")
    return bad


@pytest.mark.parametrize(("command", "leaf"), COMMANDS, ids=[c for c, _ in COMMANDS])
def test_every_refused_field_names_a_flag_of_the_command(command: str, leaf: Any) -> None:
    assert not unmapped(command, leaf), (
        f"branchctl {command}: fields a service can refuse with no flag of the command "
        f"(add them to services/cli/errors.FIELDS): {unmapped(command, leaf)}")


def test_the_walk_finds_what_the_issue_saw() -> None:
    """The walk itself: onsite analyse's suitability_override_reason is a field it sees."""
    leaf = dict(COMMANDS)["onsite analyse"]
    saved = errors.FIELDS.pop("onsite analyse")
    try:
        assert "AnalyseConsultationFormRequest.suitability_override_reason" in \
            unmapped("onsite analyse", leaf)
    finally:
        errors.FIELDS["onsite analyse"] = saved
