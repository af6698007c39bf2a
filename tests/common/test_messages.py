"""The services' error messages catalogue (services/common/messages.py, scripts/i18n.py): every
message template, field name and state name in the code has its Chinese, a new message without
one fails, and the pieces (templates with values, field paths, Accept-Language) work."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from services.common.errors import FailedPrecondition, Field, InvalidArgument, Msg, NotFound
from services.common.messages import (
    EN,
    ZH,
    field_name,
    language,
    ranked_languages,
    say,
    translated,
)

ROOT = Path(__file__).resolve().parents[2]


def _i18n_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("i18n_script", ROOT / "scripts" / "i18n.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["i18n_script"] = module
    spec.loader.exec_module(module)
    return module


I18N = _i18n_script()


def test_every_message_in_the_code_has_its_chinese() -> None:
    found, enums, problems = I18N.service_messages()
    assert not problems, problems  # no f-string messages: a catalogue cannot hold them
    assert len(found) > 300 and {"NoteState", "RelayState", "AdvisoryState"} <= enums
    missing = sorted({f"{where}: {message!r}" for message, context, where in found
                      if translated(message, context) is None})
    assert not missing, f"no Chinese for (run ./dev i18n, then translate): {missing[:10]}"
    pot = I18N.services_template()
    assert not I18N.services_check(pot)
    untranslated = [m.id for m in pot if m.id and translated(m.id, m.context) is None]
    assert not untranslated, untranslated[:10]


def test_a_new_message_without_chinese_fails_the_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "onsite").mkdir()
    (tmp_path / "onsite" / "lockers.py").write_text(
        "def f(v, locker_id):\n"
        "    v.add('locker.size', 'too small for {size}', size=3)\n"
        "    raise NotFound('locker {locker_id} not found', locker_id=locker_id)\n"
        "def g(locker_id):\n"
        "    raise NotFound(f'locker {locker_id} not found')\n")
    monkeypatch.setattr(I18N, "SERVICES", tmp_path)
    found, _enums, problems = I18N.service_messages()
    messages = {(m, c) for m, c, _w in found}
    assert {("too small for {size}", None), ("locker {locker_id} not found", None),
            ("size", "field")} <= messages
    assert [m for m, c in messages if c is None and translated(m) is None]
    assert problems and "lockers.py:5: an f-string message" in problems[0]
    services = next(d for d in I18N.DOMAINS if d.name == "services")
    said = I18N.check(services, I18N.services_template())
    assert any("lockers.py:5: an f-string message" in p for p in said), said
    assert any("missing" in p and "locker {locker_id} not found" in p for p in said), said


def test_translations_keep_their_placeholders() -> None:
    from babel.messages.pofile import read_po

    path = ROOT / "services/common/locale/zh_CN/LC_MESSAGES/services.po"
    with path.open("rb") as f:
        catalogue = read_po(f, locale="zh_CN")
    wrong = [m.id for m in catalogue if m.id and m.string
             and I18N._placeholders(m.id) != I18N._placeholders(m.string)]
    assert not wrong, wrong


def test_a_template_is_said_with_its_values_in_either_language() -> None:
    err = NotFound("campaign {campaign_id} not found", campaign_id="c-7")
    assert err.message == str(err) == "campaign c-7 not found"
    assert err.localized() == "找不到回访活动 c-7" and err.localized(EN) == err.message
    # a value that is itself a message (a state, a rule) is translated too
    rule = FailedPrecondition("cannot {action} a {state} form", action=Msg("analyse"),
                              state=Msg("delivered"))
    assert rule.message == "cannot analyse a delivered form"
    assert rule.localized() == "已交付客户的咨询表不能分析"
    assert say(Msg("{field} cannot be changed", field=Field("meeting.start_time"))) \
        == "开始时间不能修改"
    assert say(Msg("staff member is not a {role}", role=Msg("client_manager"))) \
        == "该员工不是客户管理员"
    # a message outside the catalogue: the kind of error, then the English
    assert NotFound("a locker went missing").localized() == "未找到（a locker went missing）"


def test_field_paths_are_said_by_their_human_names() -> None:
    assert field_name("entry.backup_broker_id") == "备用经纪人"
    assert field_name("note.stances[2].ticker") == "观点第3项的股票代码"
    assert field_name("client_ids[0]") == "客户第1项"
    assert field_name("no_such_field") == "no_such_field"
    assert field_name("note.stances[2].ticker", EN) == "note.stances[2].ticker"
    bad = InvalidArgument({"settings.delivery_deadline": "between 30 minutes and 14 days",
                           "odd": "something new"})
    assert bad.localized() == ("请求参数有误：交付时限：须在 30 分钟至 14 天之间；"
                               "odd（odd）：something new")


def test_the_caller_chooses_the_language() -> None:
    assert language(None) == language([]) == ZH
    assert language([("accept-language", "en")]) == EN
    assert language([("accept-language", "en-US,en;q=0.9")]) == EN
    assert language([("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")]) == ZH
    assert language([("accept-language", "en;q=0.2, zh;q=0.8")]) == ZH
    assert language([("accept-language", "fr, en;q=0.5")]) == EN
    assert language([("accept-language", "fr")]) == ZH  # the branch's language
    assert ranked_languages("de;q=0, en;q=x, zh-TW;q=0.4, fr") == ["fr", "zh-tw"]
