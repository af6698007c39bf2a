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


@dataclass(frozen=True)
class Domain:
    name: str
    locales: Path
    template: Callable[[], Catalog]
    complete: bool  # --check: every zh_CN word translated
    line_numbers: bool


DOMAINS = (
    Domain(DOMAIN, LOCALES, branchctl_template, complete=False, line_numbers=True),
    Domain("console", CONSOLE / "locale", console_template, complete=True, line_numbers=False),
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
    problems = []
    for lang in LANGS:
        path = po_path(lang, domain)
        catalog = read(lang, domain)
        missing = [m.id for m in pot if m.id and m.id not in catalog]
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
    for lang in LANGS:
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
