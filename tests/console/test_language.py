"""Chinese and English: every page rendered under zh-CN shows no word of the console's
catalogue in English (compared with the catalogue itself: a word marked but left
untranslated, or a template string not marked, both show here), and the switch works."""

from __future__ import annotations

import re
from typing import Any

import pytest
from babel.messages.pofile import read_po

from services.console import enums, i18n
from tests.console.conftest import Suite, sign_in
from tests.console.test_supervisor import _supervisor

CATALOGUE = i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "console.po"


def _english_words() -> list[str]:
    """The catalogue's msgids whose Chinese does not contain them (C3 -> C3（稳健型）does),
    placeholders cut out: each piece must not appear in a zh-CN page."""
    with CATALOGUE.open("rb") as f:
        catalogue = read_po(f, locale="zh_CN")
    words: set[str] = set()
    for m in catalogue:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, (tuple, list)) else (m.id,)
        strings = m.string if isinstance(m.string, (tuple, list)) else (m.string,)
        for msgid in ids:
            if any(msgid in s for s in strings if s):
                continue
            words.update(p.strip() for p in re.split(r"\{[^}]*\}", msgid) if len(p.strip()) > 1)
    return sorted(words)


# ids and request ids are data; their hex can spell a catalogue word ("…-bad3-…")
HEX_IDS = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
                     r"|\b[0-9a-f]*[0-9][0-9a-f]*\b")


def _english_on(text: str, words: list[str]) -> list[str]:
    text = HEX_IDS.sub(" ", text)
    return [w for w in words if re.search(r"(?<![A-Za-z])" + re.escape(w) + r"(?![A-Za-z])",
                                          text)]


async def _visible_words(page: Any) -> str:
    """What a person sees or hears: the text, and placeholders, labels, titles, values of
    buttons."""
    return str(await page.evaluate("""() => {
        const parts = [document.title, document.body.innerText];
        for (const el of document.querySelectorAll('[placeholder],[aria-label],[title],[alt]'))
            for (const a of ['placeholder', 'aria-label', 'title', 'alt'])
                if (el.getAttribute(a)) parts.push(el.getAttribute(a));
        return parts.join('\\n');
    }"""))


def test_every_enum_word_names_a_real_enum_value() -> None:
    import importlib
    import pkgutil

    import branch

    names: set[str] = set()
    for mod in pkgutil.walk_packages(branch.__path__, "branch."):
        if mod.name.endswith("_pb2"):
            fd = importlib.import_module(mod.name).DESCRIPTOR
            enums_ = list(fd.enum_types_by_name.values())
            for msg in fd.message_types_by_name.values():
                enums_ += list(msg.enum_types)
            names.update(v.name for e in enums_ for v in e.values)
    unknown = set(enums.WORDS) - names
    assert not unknown, sorted(unknown)[:5]


@pytest.mark.parametrize("who", ["broker_a", "admin_no", "supervisor"])
async def test_pages_under_zh_cn_show_no_english_word_of_the_catalogue(
        page: Any, suite: Suite, who: str) -> None:
    words = _english_words()
    assert "Sign in" in words and "Holdings" in words  # the comparison has teeth
    p = suite.people
    number = await _supervisor(suite) if who == "supervisor" else getattr(p, who)
    await sign_in(page, suite, number)
    await page.wait_for_selector("#lang-choice")
    await page.select_option("#lang-choice", "zh_CN")
    await page.click("form.lang button[type=submit]")
    await page.wait_for_selector("html[lang=zh-CN]")
    paths = ["/", "/search?q=zsf", "/password"]
    if who == "broker_a":
        paths += [f"/clients/{p.client_a.id}", f"/clients/{p.client_b.id}", "/admin/staff",
                  "/inbox"]
    elif who == "supervisor":
        paths += ["/supervisor", "/supervisor/audit?method=CreateStaff",
                  f"/clients/{p.client_a.id}", "/inspections"]
    else:
        paths += ["/admin/staff", f"/admin/staff/{p.ids['broker_a']}"]
    seen = {}
    for path in paths:
        await page.goto(suite.url + path)
        text = await _visible_words(page)
        assert "营业部工作台" in text, path
        # data, not the console's words: the directory's first account is named so
        text = text.replace("Administrator\t", "\t")
        seen[path] = _english_on(text, words)
    assert not any(seen.values()), {k: v for k, v in seen.items() if v}
    # signed out: the sign-in page and its notice in Chinese as well
    await page.click("form[action='/signout'] button")
    await page.wait_for_selector("text=您已退出登录。")
    assert not _english_on(await _visible_words(page), words)


async def test_switch_back_to_english(page: Any, suite: Suite) -> None:
    await page.goto(suite.url + "/signin")
    await page.select_option("#lang-choice", "zh_CN")
    await page.click("form.lang button[type=submit]")
    await page.wait_for_selector("h1:has-text('登录')")
    await page.select_option("#lang-choice", "en")
    await page.click("form.lang button[type=submit]")
    await page.wait_for_selector("h1:has-text('Sign in')")
