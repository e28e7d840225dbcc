"""Money amounts and star ratings the NLU reads by pattern (bot/nlu/quantities.py)."""

from __future__ import annotations

import pytest

from bot.nlu.quantities import chinese_number, find_quantities


@pytest.mark.parametrize(("text", "entity", "span", "value"), [
    ("退50元", "amount", "50", "50"),
    ("¥199.5 退给我", "amount", "199.5", "199.5"),
    ("退我五十块就行", "amount", "五十", "50"),
    ("两百块的耳机", "amount", "两百", "200"),
    ("退我一百二十元", "amount", "一百二十", "120"),
    ("我要退 30 块钱", "amount", "30", "30"),
    ("I want 20 dollars back", "amount", "20", "20"),
    ("refund RMB 88", "amount", "88", "88"),
    ("五星好评", "csat_score", "五", "5"),
    ("它值五颗星", "csat_score", "五", "5"),
    ("打3分吧", "csat_score", "3", "3"),
    ("给你们5分", "csat_score", "5", "5"),
    ("4分", "csat_score", "4", "4"),
    ("4 stars", "csat_score", "4", "4"),
    ("one star, terrible", "csat_score", "one", "1"),
    ("I'd give you a four", "csat_score", "four", "4"),
    ("rate it 5", "csat_score", "5", "5"),
    ("a solid 4", "csat_score", "4", "4"),
    ("3/5 could be better", "csat_score", "3", "3"),
    ("4 out of 5", "csat_score", "4", "4"),
])
def test_found_with_the_number_as_span_and_plain_digits_as_value(text, entity, span, value) -> None:
    [found] = find_quantities(text)
    assert (found.entity, found.text, found.value) == (entity, span, value)
    assert text[found.start:found.end] == span


@pytest.mark.parametrize("text", [
    "5分钟就到", "订单 6021458830217745 退款", "5 days", "give me 2 items", "电话 13812345678",
    "第3个", "4", "iPhone 15 case", "买了5件", "6 stars", "打6分", "10块钱的 6021458830217745",
])
def test_other_numbers_are_neither(text) -> None:
    assert [f for f in find_quantities(text) if f.entity == "csat_score" or
            f.text not in ("10",)] == []


@pytest.mark.parametrize(("text", "value"), [
    ("五十", 50), ("十五", 15), ("一百二十", 120), ("两百", 200), ("三千五百", 3500),
    ("一万", 10000), ("十", 10), ("一二", None), ("元", None),
])
def test_chinese_numbers(text, value) -> None:
    assert chinese_number(text) == value
