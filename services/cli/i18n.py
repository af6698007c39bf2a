"""branchctl's words in Chinese (zh_CN) or English (en): gettext catalogues under
services/cli/locale/<lang>/LC_MESSAGES/branchctl.po (.mo compiled from them by Babel:
`./dev i18n` extracts, updates and compiles; both are committed).

The language is --lang, else LANGUAGE / LC_ALL / LC_MESSAGES / LANG (zh_CN.UTF-8 -> zh_CN);
anything not Chinese is English. argparse's own words (usage, error, invalid choice) come
from the same catalogue. JSON and CSV output keep English keys, whatever the language.
"""

from __future__ import annotations

import argparse
import gettext
import os
from collections.abc import Sequence
from pathlib import Path

DOMAIN = "branchctl"
LOCALE_DIR = Path(__file__).with_name("locale")
LANGUAGES = ("zh_CN", "en")
_current: gettext.NullTranslations = gettext.NullTranslations()
_chosen = "en"


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "extract, not now"
    """Marks a string for the catalogue without translating it here."""
    return message


def _(message: str) -> str:
    """`message` in the chosen language (unchanged when the catalogue lacks it)."""
    return _current.gettext(message)


class Label(str):
    """A word in a table's cell that is shown translated (a row's name in a record view:
    "client", "answer due"); JSON and CSV keep it as written, like column names. scripts/i18n.py
    extracts Label("...") as it does _("...")."""

    def shown(self) -> str:
        return _(str.__str__(self))


def language(argv: Sequence[str] | None = None) -> str:
    """The language asked for: --lang X / --lang=X in argv, else the locale variables."""
    args = list(argv or [])
    for i, arg in enumerate(args):
        if arg == "--lang" and i + 1 < len(args):
            return normalise(args[i + 1])
        if arg.startswith("--lang="):
            return normalise(arg.split("=", 1)[1])
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return normalise(value.split(":")[0])
    return "en"


def normalise(value: str) -> str:
    """zh, zh_CN.UTF-8, zh-CN, zh_Hans -> zh_CN; anything else -> en."""
    return "zh_CN" if value.strip().lower().replace("-", "_").startswith("zh") else "en"


def install(lang: str) -> None:
    """Use `lang`'s catalogue for branchctl's words and argparse's."""
    global _current, _chosen
    _chosen = lang
    _current = gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)
    argparse._ = _current.gettext  # type: ignore[attr-defined]
    argparse.ngettext = _current.ngettext  # type: ignore[attr-defined]


def chosen() -> str:
    """The language install() was last given."""
    return _chosen


# argparse's own words (Python 3.11+), so usage errors read in the chosen language too.
ARGPARSE = [N_("usage: "), N_("%(prog)s: error: %(message)s\n"),
            N_("argument %(argument_name)s: %(message)s"),
            N_("invalid choice: %(value)r (choose from %(choices)s)"),
            N_("invalid %(type)s value: %(value)r"),
            N_("the following arguments are required: %s"),
            N_("unrecognized arguments: %s"), N_("expected one argument"),
            N_("one of the arguments %s is required"), N_("not allowed with argument %s"),
            N_("ambiguous option: %(option)s could match %(matches)s"),
            N_("options"), N_("positional arguments"), N_("show this help message and exit")]
