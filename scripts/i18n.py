"""branchctl's gettext catalogues (Babel): `./dev i18n` extracts branchctl's words from
services/cli and every service's cli.py / *_cli.py: _(), N_() and Label() arguments, plus the
literal title and column names of each `ctl.table(TITLE, COLUMNS, ...)` call (a name given for
COLUMNS is followed to the module's list) and the field names of the records branchctl shows
field by field (RECORDS); it updates services/cli/locale/<lang>/LC_MESSAGES/branchctl.po for
zh_CN and en (translations kept; new words left empty for a translator), and compiles each
.po to the .mo branchctl reads. Both are committed. `--check` (run by `./dev test`) fails when
a .mo is not what its .po compiles to, or when a marked word is missing from a .po.

The services' error messages are a second catalogue, domain `services`
(services/common/locale/zh_CN/LC_MESSAGES/services.po, read by services/common/messages.py):
the English templates of DomainError / Violations / InvalidArgument / Msg calls anywhere in the
services (not branchctl's or the console's modules), the services' request field names
(context "field") and the value names of the enums a message names through
Msg(enum_name(Enum, ...)). Only zh_CN: the English is the template itself. `--check` also
fails on a message without its Chinese, a translation whose {placeholders} differ from its
template's, and a message built with an f-string (which no catalogue can hold).
"""

from __future__ import annotations

import ast
import importlib
import io
import re
import sys
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_python
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "services" / "cli"
LOCALES = CLI / "locale"
LANGS = ("zh_CN", "en")
DOMAIN = "branchctl"
SERVICES = ROOT / "services"
KEYWORDS = {"_": None, "N_": None, "Label": None}
# messages branchctl prints field by field (output.record_rows(..., words=True))
RECORDS = ["branch.directory.v1.client_pb2:Client"]


def _table_words(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """The literal titles and column names of ctl.table() calls in one module."""
    lists = {t.id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)
             and isinstance(node.value, ast.List | ast.Tuple)}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "table" and len(node.args) >= 2):
            continue
        title, columns = node.args[0], node.args[1]
        if isinstance(title, ast.Constant) and isinstance(title.value, str) and title.value:
            yield title.lineno, title.value
        if isinstance(columns, ast.Name):
            columns = lists.get(columns.id, columns)
        for col in columns.elts if isinstance(columns, ast.List | ast.Tuple) else []:
            if isinstance(col, ast.Constant) and isinstance(col.value, str) and col.value:
                yield col.lineno, col.value


def extract_cli(fileobj: IO[bytes], keywords: Collection[str], comment_tags: Collection[str],
                options: dict[str, Any]) -> Iterator[tuple[int, str | None, str, list[str]]]:
    """Babel's Python extraction, plus the words of ctl.table() calls (see the docstring)."""
    source = fileobj.read()
    yield from extract_python(io.BytesIO(source), keywords, comment_tags, options)
    for lineno, word in _table_words(ast.parse(source)):
        yield lineno, None, word, []


def _record_words() -> Iterator[str]:
    sys.path.insert(0, str(ROOT / "gen"))
    for spec in RECORDS:
        module, name = spec.split(":")
        stack = [getattr(importlib.import_module(module), name).DESCRIPTOR]
        while stack:
            descriptor = stack.pop()
            for field in descriptor.fields:
                yield field.name.replace("_", " ")
                if field.message_type is not None:
                    stack.append(field.message_type)


def template() -> Catalog:
    pot = Catalog(project="branchctl", domain=DOMAIN)
    found = extract_from_dir(str(SERVICES), method_map=[
        ("cli/**.py", extract_cli), ("*/cli.py", extract_cli), ("*/*_cli.py", extract_cli),
        ("**.py", "ignore")], keywords=KEYWORDS)
    for filename, lineno, message, comments, context in found:
        pot.add(message, locations=[(f"services/{filename}", lineno)],
                auto_comments=comments, context=context)
    for word in _record_words():
        pot.add(word, locations=[("gen (record fields)", 0)])
    return pot


def po_path(lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def compiled(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


# ---- the services' error messages (domain "services") ----------------------------------------

SERVICE_LOCALES = SERVICES / "common" / "locale"
SERVICE_DOMAIN = "services"
FIELD = "field"
ERRORS = {"DomainError", "NotFound", "AlreadyExists", "FailedPrecondition", "PermissionDenied",
          "Unauthenticated", "Unavailable", "DatabaseUnavailable"}
SERVICE_PROTOS = ("directory", "onsite", "remote", "vip", "research", "insight")


def _service_modules() -> Iterator[Path]:
    for path in sorted(SERVICES.rglob("*.py")):
        rel = path.relative_to(SERVICES)
        if rel.parts[0] in ("cli", "console") or "migrations" in rel.parts[1:-1] \
                or path.name == "cli.py" or path.name.endswith("_cli.py"):
            continue
        yield path


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr \
        if isinstance(func, ast.Attribute) else ""


def _texts(node: ast.expr) -> Iterator[ast.expr]:
    """The message expressions in node: both arms of `a if c else b`."""
    if isinstance(node, ast.IfExp):
        yield from _texts(node.body)
        yield from _texts(node.orelse)
    else:
        yield node


def _field_leaf(node: ast.expr) -> str | None:
    """The last name of a field path given as a literal or an f-string ending in one."""
    text = None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr) and node.values \
            and isinstance(node.values[-1], ast.Constant):
        text = str(node.values[-1].value)
    if not text:
        return None
    leaf = text.rsplit(".", 1)[-1].split("[", 1)[0]
    return leaf if leaf.isidentifier() else None


def service_messages() -> tuple[list[tuple[str, str | None, str]], set[str], list[str]]:
    """(message, context, location) for every template and field leaf in the services' code,
    the enums named through Msg(enum_name(...)), and the f-string messages found."""
    found: list[tuple[str, str | None, str]] = []
    enums: set[str] = set()
    problems: list[str] = []
    for path in _service_modules():
        rel = f"services/{path.relative_to(SERVICES)}"
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            method = isinstance(node.func, ast.Attribute)
            texts: list[ast.expr] = []
            fields: list[ast.expr] = []
            if name in ERRORS and node.args:
                texts = [node.args[0]]
            elif name == "Msg" and node.args:
                texts = [node.args[0]]
                inner = node.args[0]
                if isinstance(inner, ast.Call) and _call_name(inner) == "enum_name" \
                        and inner.args and isinstance(inner.args[0], ast.Attribute | ast.Name):
                    enum = inner.args[0]
                    enums.add(enum.attr if isinstance(enum, ast.Attribute) else enum.id)
                    texts = []
            elif name == "InvalidArgument" and node.args and isinstance(node.args[0], ast.Dict):
                texts = list(node.args[0].values)
                fields = [k for k in node.args[0].keys if k is not None]
            elif name == "add" and method and len(node.args) == 2:
                texts, fields = [node.args[1]], [node.args[0]]
            elif name == "check" and method and len(node.args) == 3:
                texts, fields = [node.args[2]], [node.args[1]]
            for arg in texts:
                for text in _texts(arg):
                    where = f"{rel}:{text.lineno}"
                    if isinstance(text, ast.Constant) and isinstance(text.value, str):
                        found.append((text.value, None, where))
                    elif isinstance(text, ast.JoinedStr):
                        problems.append(f"{where}: an f-string message; pass a template and "
                                        "its values (services/common/messages.py)")
            for arg in fields:
                leaf = _field_leaf(arg)
                if leaf:
                    found.append((leaf, FIELD, f"{rel}:{arg.lineno}"))
    return found, enums, problems


def _service_descriptors() -> Iterator[Any]:
    """Every message and enum descriptor of the services' protos."""
    sys.path.insert(0, str(ROOT / "gen"))
    for service in SERVICE_PROTOS:
        for path in sorted((ROOT / "gen" / "branch" / service / "v1").glob("*_pb2.py")):
            module = importlib.import_module(f"branch.{service}.v1.{path.stem}")
            stack = list(module.DESCRIPTOR.message_types_by_name.values())
            yield from module.DESCRIPTOR.enum_types_by_name.values()
            while stack:
                descriptor = stack.pop()
                yield descriptor
                yield from descriptor.enum_types
                stack.extend(descriptor.nested_types)


def _request_fields() -> Iterator[str]:
    """The field names of every request the services take (what a BadRequest can name)."""
    sys.path.insert(0, str(ROOT / "gen"))
    seen: set[str] = set()
    for service in SERVICE_PROTOS:
        for path in sorted((ROOT / "gen" / "branch" / service / "v1").glob("*_service_pb2.py")):
            module = importlib.import_module(f"branch.{service}.v1.{path.stem}")
            stack = [m.input_type for s in module.DESCRIPTOR.services_by_name.values()
                     for m in s.methods]
            while stack:
                descriptor = stack.pop()
                if descriptor.full_name in seen or descriptor.full_name.startswith("google."):
                    continue
                seen.add(descriptor.full_name)
                for field in descriptor.fields:
                    yield field.name
                    if field.message_type is not None:
                        stack.append(field.message_type)


def services_template() -> tuple[Catalog, list[str]]:
    pot = Catalog(project="branch services", domain=SERVICE_DOMAIN)
    found, enums, problems = service_messages()
    for message, context, where in found:
        file, line = where.rsplit(":", 1)
        pot.add(message, locations=[(file, int(line))], context=context)
    for name in _request_fields():
        pot.add(name, locations=[("gen (request fields)", 0)], context=FIELD)
    named = {d.name: d for d in _service_descriptors() if hasattr(d, "values_by_name")}
    # staff roles as the services name them in messages (Msg(role): "client_manager")
    for value in named["Role"].values if "Role" in named else []:
        if value.number:
            pot.add(value.name.removeprefix("ROLE_").lower(),
                    locations=[("gen (enum Role, as services name roles)", 0)])
    for enum in sorted(enums):
        if enum not in named:
            problems.append(f"Msg(enum_name({enum}, ...)): no enum {enum} in the services' protos")
            continue
        for value in named[enum].values:
            if value.number:
                pot.add(value.name, locations=[(f"gen (enum {enum})", 0)])
    return pot, problems


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}", text))


def services_main(check: bool) -> int:
    pot, problems = services_template()
    path = SERVICE_LOCALES / "zh_CN" / "LC_MESSAGES" / f"{SERVICE_DOMAIN}.po"
    if path.exists():
        with path.open("rb") as f:
            catalog = read_po(f, locale="zh_CN", domain=SERVICE_DOMAIN)
    else:
        catalog = Catalog(locale="zh_CN", domain=SERVICE_DOMAIN, project="branch services")
    if check:
        untranslated = [m.id if not m.context else f"{m.context}: {m.id}" for m in pot
                        if m.id and not (catalog.get(m.id, m.context) is not None
                                         and catalog.get(m.id, m.context).string)]
        if untranslated:
            problems.append(f"{path}: {len(untranslated)} messages without Chinese, e.g. "
                            f"{untranslated[:3]} (run ./dev i18n, then translate them)")
        for m in catalog:
            if m.id and isinstance(m.id, str) and isinstance(m.string, str) and m.string \
                    and _placeholders(m.string) != _placeholders(m.id):
                problems.append(f"{path}: {m.id!r}: the translation's placeholders differ")
        mo = path.with_suffix(".mo")
        if not mo.exists() or mo.read_bytes() != compiled(catalog):
            problems.append(f"{mo}: not compiled from its .po (run ./dev i18n)")
    else:
        catalog.update(pot, no_fuzzy_matching=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_po(f, catalog, width=100, omit_header=False, ignore_obsolete=True)
        with path.open("rb") as f:
            catalog = read_po(f, locale="zh_CN", domain=SERVICE_DOMAIN)
        path.with_suffix(".mo").write_bytes(compiled(catalog))
        print(f"{path}: {len(catalog)} messages")
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


def main(check: bool) -> int:
    pot = template()
    problems = []
    for lang in LANGS:
        path = po_path(lang)
        if path.exists():
            with path.open("rb") as f:
                catalog = read_po(f, locale=lang, domain=DOMAIN)
        else:
            catalog = Catalog(locale=lang, domain=DOMAIN, project="branchctl")
        if check:
            missing = [m.id for m in pot if m.id and m.id not in catalog]
            if missing:
                problems.append(f"{path}: missing {missing[:3]} (run ./dev i18n)")
            mo = path.with_suffix(".mo")
            if not mo.exists() or mo.read_bytes() != compiled(catalog):
                problems.append(f"{mo}: not compiled from its .po (run ./dev i18n)")
            continue
        catalog.update(pot, no_fuzzy_matching=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_po(f, catalog, width=100, omit_header=False, ignore_obsolete=True)
        with path.open("rb") as f:  # compile what was written, as --check will
            catalog = read_po(f, locale=lang, domain=DOMAIN)
        path.with_suffix(".mo").write_bytes(compiled(catalog))
        print(f"{path}: {len(catalog)} messages")
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main("--check" in sys.argv) | services_main("--check" in sys.argv))
