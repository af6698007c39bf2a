"""The console's words in Chinese (zh_CN) or English (en): gettext catalogues under
services/console/locale/<lang>/LC_MESSAGES/console.po (`./dev i18n` extracts from the Python
modules and the templates, updates and compiles them; both are committed).

The language is the `console_lang` cookie (the switch in the header), else the browser's
Accept-Language. Dates and times are shown in the branch's zone (BRANCH_TIMEZONE), numbers
and dates in the chosen language's conventions (Babel).
"""

from __future__ import annotations

import gettext
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal

from services.common.messages import ranked_languages

DOMAIN = "console"
LOCALE_DIR = Path(__file__).with_name("locale")
LANGUAGES = ("zh_CN", "en")
LANG_COOKIE = "console_lang"
_lang: ContextVar[str] = ContextVar("console_lang", default="zh_CN")
_catalogues = {lang: gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)
               for lang in LANGUAGES}


def N_(message: str) -> str:  # noqa: N802 - gettext's "extract, translate later"
    return message


def _(message: str) -> str:
    """`message` in the current request's language."""
    return _catalogues[_lang.get()].gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _catalogues[_lang.get()].ngettext(singular, plural, n)


def normalise(value: str) -> str | None:
    """zh, zh-CN, zh_Hans -> zh_CN; en, en-GB -> en; anything else None."""
    v = value.strip().lower().replace("-", "_")
    if v.startswith("zh"):
        return "zh_CN"
    if v.startswith("en"):
        return "en"
    return None


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's language if it names one, else the first Accept-Language entry we speak
    (by q), else zh_CN (the branch's language)."""
    if cookie and normalise(cookie):
        return normalise(cookie) or "zh_CN"
    for tag in ranked_languages(accept_language or ""):
        lang = normalise(tag)
        if lang:
            return lang
    return "zh_CN"


def activate(lang: str) -> None:
    _lang.set(lang if lang in LANGUAGES else "zh_CN")


def current() -> str:
    return _lang.get()


def html_lang() -> str:
    return "zh-CN" if _lang.get() == "zh_CN" else "en"


def when(value: datetime | None, zone: str, fmt: str = "medium") -> str:
    """A UTC time in the branch's zone, in the language's conventions; '' for None."""
    if value is None:
        return ""
    return format_datetime(value.astimezone(ZoneInfo(zone)), fmt, locale=_lang.get())


def number(value: str | int | float | Decimal, places: int | None = None) -> str:
    """A number (a decimal string from a service too) in the language's conventions."""
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    pattern = None if places is None else "#,##0." + "0" * places if places else "#,##0"
    return format_decimal(d, format=pattern, locale=_lang.get())
