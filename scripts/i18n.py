"""branchctl's gettext catalogues (Babel): `./dev i18n` extracts the marked words from
services/cli (_() and N_()), updates services/cli/locale/<lang>/LC_MESSAGES/branchctl.po for
zh_CN and en (translations kept; new words left empty for a translator), and compiles each
.po to the .mo branchctl reads. Both are committed. `--check` (run by `./dev test`) fails when
a .mo is not what its .po compiles to, or when a marked word is missing from a .po.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
CLI = ROOT / "services" / "cli"
LOCALES = CLI / "locale"
LANGS = ("zh_CN", "en")
DOMAIN = "branchctl"


def template() -> Catalog:
    pot = Catalog(project="branchctl", domain=DOMAIN)
    for filename, lineno, message, comments, context in extract_from_dir(
            str(CLI), method_map=[("**.py", "python")],
            keywords={"_": None, "N_": None}):
        pot.add(message, locations=[(f"services/cli/{filename}", lineno)],
                auto_comments=comments, context=context)
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
