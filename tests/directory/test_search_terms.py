"""The search columns' pure rules: phone normalisation, pinyin terms, masking."""

from __future__ import annotations

import pytest

from services.directory.search import Query, mask_phone, normalize_phone, search_text


@pytest.mark.parametrize("typed", ["+86 130 8938 4935", "0086 130-8938-4935", "13089384935",
                                   "130 8938 4935", "8613089384935", "+86-130-8938-4935"])
def test_phone_in_any_spacing_with_or_without_country_code(typed: str) -> None:
    assert normalize_phone(typed) == "13089384935"


def test_landlines_and_short_numbers_keep_their_digits() -> None:
    assert normalize_phone("021 5555 1234") == "02155551234"
    assert normalize_phone("86 1234") == "861234"  # not a mobile number with 86 in front


def test_pinyin_terms() -> None:
    assert search_text("张三") == "张三|zhangsan|zs"
    assert search_text("Li Ming") == "liming|liming|lm"
    assert search_text("欧阳娜娜") == "欧阳娜娜|ouyangnana|oynn"
    # a polyphonic surname keeps its readings: 曾 is zeng as a surname, ceng otherwise
    assert "zxx" in search_text("曾小贤") and "zengxiaoxian" in search_text("曾小贤")
    assert "|" not in search_text("a|b").split("|")[0]


def test_mask_and_query_reading() -> None:
    assert mask_phone("+86 130 8938 4935") == "130****4935"
    assert mask_phone("") == ""
    q = Query.parse("  Zhang San ")
    assert (q.key, q.phone, q.id_prefix) == ("zhangsan", "", "")
    q = Query.parse("+86 130 8938 4935")
    assert q.phone == "13089384935"
    assert Query.parse("01a22f8a").id_prefix == "01a22f8a"
    assert Query.parse("abc").id_prefix == ""  # too short for an id
    assert Query.parse("01234567").id_prefix == ""  # digits: a phone or account number
