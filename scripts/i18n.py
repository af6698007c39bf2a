"""The suite's gettext catalogues (Babel), one domain per program:

- `branchctl`: services/cli (Python `_()` and `N_()`), in services/cli/locale;
- `console`: services/console (Python `_()`, `N_()`, `ngettext()` and the Jinja2 templates'
  `{{ _("...") }}` / `{% trans %}`, through jinja2.ext's Babel extractor), in
  services/console/locale.

`./dev i18n` extracts the marked words, updates <locale>/<lang>/LC_MESSAGES/<domain>.po for
zh_CN and en (translations kept; new words left empty for a translator; words no longer used
dropped), and compiles each .po to the .mo the program reads. Both are committed.

`--check` (run by `./dev test`) fails when a .mo is not what its .po compiles to, when a
marked word is missing from a .po, or (domains with `complete`) when a zh_CN word has no
translation yet. Adding words: mark them, run `./dev i18n`, fill the empty msgstr "" of the
zh_CN .po (the en .po stays empty: English is the msgid), run `./dev i18n` again to compile.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LANGS = ("zh_CN", "en")


@dataclass(frozen=True)
class Domain:
    name: str
    source: Path  # extracted from here
    method_map: list[tuple[str, str]]
    options_map: dict[str, dict[str, str]] = field(default_factory=dict)
    keywords: dict[str, object] = field(default_factory=lambda: {"_": None, "N_": None})
    complete: bool = False  # --check: every zh_CN word translated

    @property
    def locales(self) -> Path:
        return self.source / "locale"


DOMAINS = (
    Domain("branchctl", ROOT / "services" / "cli", [("**.py", "python")]),
    Domain("console", ROOT / "services" / "console",
           [("**.py", "python"), ("templates/**.html", "jinja2.ext:babel_extract")],
           {"templates/**.html": {"extensions": "jinja2.ext.i18n"}},
           {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}, complete=True),
)


def template(domain: Domain) -> Catalog:
    pot = Catalog(project=domain.name, domain=domain.name)
    where = domain.source.relative_to(ROOT).as_posix()
    for filename, lineno, message, comments, context in extract_from_dir(
            str(domain.source), method_map=domain.method_map, options_map=domain.options_map,
            keywords=domain.keywords):
        pot.add(message, locations=[(f"{where}/{filename}", lineno)],
                auto_comments=comments, context=context)
    return pot


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


def update(domain: Domain, pot: Catalog) -> None:
    for lang in LANGS:
        path = po_path(lang, domain)
        catalog = read(lang, domain)
        if path.exists():  # the header stays as it was: no change without a changed word
            pot.creation_date = catalog.creation_date
        catalog.update(pot, no_fuzzy_matching=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:  # files without line numbers: fewer merge conflicts
            write_po(f, catalog, width=100, omit_header=False, ignore_obsolete=True,
                     include_lineno=False)
        catalog = read(lang, domain)  # compile what was written, as --check will
        path.with_suffix(".mo").write_bytes(compiled(catalog))
        todo = len(untranslated(catalog)) if lang != "en" else 0
        print(f"{path.relative_to(ROOT)}: {len(catalog)} messages"
              + (f", {todo} to translate" if todo else ""))


def main(argv: list[str]) -> int:
    problems = []
    for domain in DOMAINS:
        pot = template(domain)
        if "--check" in argv:
            problems += check(domain, pot)
        else:
            update(domain, pot)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
