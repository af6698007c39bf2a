"""The suite's gettext catalogues (Babel), one domain per program; `./dev i18n` extracts the
marked words, updates <locale>/<lang>/LC_MESSAGES/<domain>.po for zh_CN and en (translations
kept; new words left empty for a translator; words no longer used dropped), and compiles each
.po to the .mo the program reads. Both are committed.

- `branchctl` (services/cli/locale): branchctl's words from services/cli and every service's
  cli.py / *_cli.py: _(), N_() and Label() arguments, plus the literal title and column names
  of each `ctl.table(TITLE, COLUMNS, ...)` call (a name given for COLUMNS is followed to the
  module's list) and the field names of the records branchctl shows field by field (RECORDS).
- `console` (services/console/locale): the staff console's words: Python `_()`, `N_()`,
  `ngettext()` and the Jinja2 templates' `{{ _("...") }}` (jinja2.ext's Babel extractor). Its
  .po files carry no line numbers (fewer merge conflicts between pages built side by side).

- `services` (services/common/locale, zh_CN only: the English is the msgid): the services'
  error messages, read by services/common/messages.py: the English templates of DomainError /
  Violations / InvalidArgument / Msg calls in the services (not branchctl's or the console's
  modules), the services' request field names (context "field"), staff role names and the
  value names of the enums a message names through Msg(enum_name(Enum, ...)). Its --check
  also fails on a message built with an f-string (no catalogue can hold one) and on a
  translation whose {placeholders} differ from its template's.

`--check` (run by `./dev test`) fails when a .mo is not what its .po compiles to, when a
marked word is missing from a .po, or (the console) when a zh_CN word has no translation yet.
Adding console words: mark them, `./dev i18n`, fill the empty msgstr "" of the zh_CN .po
(the en .po stays empty: English is the msgid), `./dev i18n` again to compile. Translations
kept aside on a branch in services/console/locale/pending/zh_CN.*.po are taken into the
empty zh_CN entries by `./dev i18n` (fold_pending); delete that folder afterwards.
"""

from __future__ import annotations

import ast
import copy
import importlib
import io
import re
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
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


def branchctl_template() -> Catalog:
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


CONSOLE = SERVICES / "console"


def console_template() -> Catalog:
    pot = Catalog(project="console", domain="console")
    found = extract_from_dir(
        str(CONSOLE), method_map=[("**.py", "python"),
                                  ("templates/**.html", "jinja2.ext:babel_extract")],
        options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords={"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)})
    for filename, lineno, message, comments, context in found:
        pot.add(message, locations=[(f"services/console/{filename}", lineno)],
                auto_comments=comments, context=context)
    return pot


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


def services_template() -> Catalog:
    pot = Catalog(project="branch services", domain=SERVICE_DOMAIN)
    found, enums, _problems = service_messages()
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
    for enum in sorted(enums & set(named)):
        for value in named[enum].values:
            if value.number:
                pot.add(value.name, locations=[(f"gen (enum {enum})", 0)])
    return pot


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}", text))


def services_check(pot: Catalog) -> list[str]:
    """Beyond every domain's checks: no f-string message, every enum a message names exists,
    and each zh_CN translation keeps its template's {placeholders}."""
    _found, enums, problems = service_messages()
    named = {d.name for d in _service_descriptors() if hasattr(d, "values_by_name")}
    problems += [f"Msg(enum_name({e}, ...)): no enum {e} in the services' protos"
                 for e in sorted(enums - named)]
    domain = next(d for d in DOMAINS if d.name == SERVICE_DOMAIN)
    for m in read("zh_CN", domain):
        if m.id and isinstance(m.id, str) and isinstance(m.string, str) and m.string \
                and _placeholders(m.string) != _placeholders(m.id):
            problems.append(f"{po_path('zh_CN', domain)}: {m.id!r}: the translation's "
                            "placeholders differ")
    return problems


@dataclass(frozen=True)
class Domain:
    name: str
    locales: Path
    template: Callable[[], Catalog]
    complete: bool  # --check: every zh_CN word translated
    line_numbers: bool
    langs: tuple[str, ...] = LANGS  # the services' English is the msgid itself: zh_CN only
    extra_check: Callable[[Catalog], list[str]] | None = None


DOMAINS = (
    Domain(DOMAIN, LOCALES, branchctl_template, complete=False, line_numbers=True),
    Domain("console", CONSOLE / "locale", console_template, complete=True, line_numbers=False),
    Domain(SERVICE_DOMAIN, SERVICE_LOCALES, services_template, complete=True,
           line_numbers=False, langs=("zh_CN",), extra_check=services_check),
)


def po_path(lang: str, domain: Domain = DOMAINS[0]) -> Path:
    return domain.locales / lang / "LC_MESSAGES" / f"{domain.name}.po"


def read(lang: str, domain: Domain) -> Catalog:
    path = po_path(lang, domain)
    if not path.exists():
        return Catalog(locale=lang, domain=domain.name, project=domain.name)
    with path.open("rb") as f:
        return read_po(f, locale=lang, domain=domain.name)


def compiled(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def untranslated(catalog: Catalog) -> list[str]:
    """The msgids (singular) of `catalog` with an empty translation."""
    found = []
    for m in catalog:
        if not m.id:
            continue
        strings = m.string if isinstance(m.string, (tuple, list)) else (m.string,)
        if not all(strings):
            found.append(m.id[0] if isinstance(m.id, (tuple, list)) else m.id)
    return found


def check(domain: Domain, pot: Catalog) -> list[str]:
    problems = domain.extra_check(pot) if domain.extra_check else []
    for lang in domain.langs:
        path = po_path(lang, domain)
        catalog = read(lang, domain)
        missing = [m.id for m in pot if m.id and catalog.get(m.id, m.context) is None]
        if missing:
            problems.append(f"{path}: missing {missing[:3]} (run ./dev i18n)")
        if domain.complete and lang == "zh_CN" and untranslated(catalog):
            problems.append(f"{path}: no translation yet for {untranslated(catalog)[:3]} "
                            "(fill their msgstr, then ./dev i18n)")
        mo = path.with_suffix(".mo")
        if not mo.exists() or mo.read_bytes() != compiled(catalog):
            problems.append(f"{mo}: not compiled from its .po (run ./dev i18n)")
    return problems


def fold_pending(domain: Domain, catalog: Catalog) -> None:
    """Translations written on a branch before its words reached the catalogue, in
    <locale>/pending/zh_CN.*.po, fill the zh_CN entries still empty (never one already
    translated); the folder can go once `./dev i18n` has run after the merge."""
    for pending in sorted((domain.locales / "pending").glob("zh_CN.*.po")):
        with pending.open("rb") as f:
            source = read_po(f, locale="zh_CN")
        filled = 0
        for m in catalog:
            if m.id and m.id in source and not (
                    all(m.string) if isinstance(m.string, (tuple, list)) else m.string):
                found = source[m.id].string
                if found and (all(found) if isinstance(found, (tuple, list)) else True):
                    m.string = found
                    filled += 1
        print(f"{pending.relative_to(ROOT)}: {filled} translations taken")


def update(domain: Domain, pot: Catalog) -> None:
    for lang in domain.langs:
        path = po_path(lang, domain)
        catalog = read(lang, domain)
        if path.exists():  # the header stays as it was: no change without a changed word
            pot.creation_date = catalog.creation_date
        # a copy: update() adopts the template's new Message objects, so folding pending
        # zh_CN words into them would write Chinese into the next language's catalogue
        catalog.update(copy.deepcopy(pot), no_fuzzy_matching=True)
        if lang == "zh_CN":
            fold_pending(domain, catalog)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_po(f, catalog, width=100, omit_header=False, ignore_obsolete=True,
                     include_lineno=domain.line_numbers)
        catalog = read(lang, domain)  # compile what was written, as --check will
        path.with_suffix(".mo").write_bytes(compiled(catalog))
        todo = len(untranslated(catalog)) if lang != "en" else 0
        print(f"{path.relative_to(ROOT)}: {len(catalog)} messages"
              + (f", {todo} to translate" if todo and domain.complete else ""))


def main(argv: list[str]) -> int:
    problems = []
    for domain in DOMAINS:
        pot = domain.template()
        if "--check" in argv:
            problems += check(domain, pot)
        else:
            update(domain, pot)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
