"""The services' error messages in Chinese (zh-CN, the branch's default) or English (en).

One gettext catalogue for every service, domain `services`:
services/common/locale/zh_CN/LC_MESSAGES/services.po (msgid: the English template, msgstr: the
Chinese), compiled to the .mo read here; both committed. `./dev i18n` (scripts/i18n.py)
extracts the templates from the code: the first argument of NotFound / FailedPrecondition /
PermissionDenied / AlreadyExists / Unauthenticated / Unavailable (any DomainError), each
violation description given to Violations.add / .check or InvalidArgument({...}), and every
Msg("..."); plus, with context "field", every field name of the services' requests and, with
no context, the value names of the enums listed in scripts/i18n.py (state names).

A message built from values is a template with named placeholders and the values beside it:

    raise NotFound("campaign {campaign_id} not found", campaign_id=campaign_id)
    v.add("quota", "at most {limit}", limit=MAX_QUOTA)

The English (`str()` of the error, the Status `message`) is the template filled in, exactly as
before; the Chinese fills the translated template with the same values. A value that is itself
a Msg (a state name, a reason built elsewhere) is translated too; a Field value is said by the
field's human name ("entry.backup_broker_id" -> 备用经纪人).

The caller chooses the language with gRPC metadata `accept-language` (branchctl sends its
--lang, the console its page language); zh-CN when absent or not English.
"""

from __future__ import annotations

import functools
import gettext
import re
from collections.abc import Iterable
from pathlib import Path

from babel.support import Translations

DOMAIN = "services"
LOCALE_DIR = Path(__file__).with_name("locale")
ZH = "zh-CN"
EN = "en"
FIELD = "field"  # the catalogue context of field names


class Msg(str):
    """An English message made from `template` and named values; str() is the English text,
    say(msg, language) says it again in another language."""

    template: str
    values: dict[str, object]

    def __new__(cls, template: str, /, **values: object) -> Msg:
        made = super().__new__(cls, template.format(**values) if values else template)
        made.template = template
        made.values = values
        return made


class Field(str):
    """A request field's path (`note.stances[2].ticker`) used as a value in a message: said by
    its human name in Chinese."""


def language(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """EN when the call's `accept-language` puts an English tag before any Chinese one, else
    ZH (the branch's language). Quality values are honoured: "zh;q=0.5, en" is English."""
    for key, value in metadata or ():
        if key.lower() == "accept-language" and isinstance(value, str):
            return _negotiate(value)
    return ZH


def _negotiate(header: str) -> str:
    for tag in ranked_languages(header):
        if tag.startswith("en"):
            return EN
        if tag.startswith("zh"):
            return ZH
    return ZH


def ranked_languages(header: str) -> list[str]:
    """The language tags of an Accept-Language value, lower case, most wanted first (by
    quality, then order); q=0 and malformed entries left out."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        match = re.search(r"(?:^|;)\s*q\s*=\s*([^;\s]*)", params)
        try:
            quality = float(match.group(1)) if match else 1.0
        except ValueError:
            continue
        tag = tag.strip().lower()
        if tag and quality > 0:
            ranked.append((-quality, i, tag))
    return [tag for _q, _i, tag in sorted(ranked)]


@functools.cache
def _catalogue() -> gettext.NullTranslations:
    return Translations.load(str(LOCALE_DIR), ["zh_CN"], DOMAIN)


def translated(template: str, context: str | None = None) -> str | None:
    """The zh-CN translation of `template`, None when the catalogue lacks it."""
    cat = _catalogue()
    said = cat.pgettext(context, template) if context else cat.gettext(template)
    return None if said == template else said


def say(text: str, lang: str = ZH) -> str:
    """`text` (a Msg, a Field, or a plain English message) in `lang`; a message the catalogue
    lacks stays in English."""
    if lang == EN:
        return str.__str__(text)
    if isinstance(text, Field):
        return field_name(text)
    template, values = (text.template, text.values) if isinstance(text, Msg) else (text, {})
    said = translated(template)
    if said is None:
        return str.__str__(text)
    if not values:
        return said
    try:
        return said.format(**{k: _value(v) for k, v in values.items()})
    except (KeyError, IndexError, ValueError):  # a bad translation: the English is right
        return str.__str__(text)


def is_translated(text: str) -> bool:
    """Whether the catalogue has `text`'s template (a Field always has a name)."""
    if isinstance(text, Field):
        return True
    return translated(text.template if isinstance(text, Msg) else text) is not None


def _value(value: object) -> str:
    if isinstance(value, Msg | Field):
        return say(value)
    return str(value)


_PART = re.compile(r"([A-Za-z0-9_]+)((?:\[\d+\])*)")


def field_name(path: str, lang: str = ZH) -> str:
    """A field path for people: in Chinese the field's name, its list positions counted from
    1 ("note.stances[2].ticker" -> 观点第3项的股票代码); wrapping messages
    (entry., note.) are left out. An unknown field keeps its API name."""
    if lang == EN:
        return path
    parts = path.split(".")
    said = []
    for n, part in enumerate(parts):
        match = _PART.fullmatch(part)
        if not match:
            return path
        name, indexes = match.groups()
        if not indexes and n < len(parts) - 1:
            continue
        human = translated(name, FIELD) or name
        for index in re.findall(r"\d+", indexes):
            human += f"第{int(index) + 1}项"
        said.append(human)
    return "的".join(said)
