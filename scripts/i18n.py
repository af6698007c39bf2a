"""branchctl's gettext catalogues (Babel): `./dev i18n` extracts branchctl's words from
services/cli and every service's cli.py / *_cli.py: _(), N_() and Label() arguments, plus the
literal title and column names of each `ctl.table(TITLE, COLUMNS, ...)` call (a name given for
COLUMNS is followed to the module's list) and the field names of the records branchctl shows
field by field (RECORDS); it updates services/cli/locale/<lang>/LC_MESSAGES/branchctl.po for
zh_CN and en (translations kept; new words left empty for a translator), and compiles each
.po to the .mo branchctl reads. Both are committed. `--check` (run by `./dev test`) fails when
a .mo is not what its .po compiles to, or when a marked word is missing from a .po.
"""

from __future__ import annotations

import ast
import importlib
import io
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
    raise SystemExit(main("--check" in sys.argv))
