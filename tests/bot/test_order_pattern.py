"""The order-number pattern the NLU trusts for order_id (bot/nlu/order_number.py)."""

from __future__ import annotations

import pytest

from bot.nlu.order_pattern import find_order_numbers
from ticketing.shop.orders import parse_order_number


@pytest.mark.parametrize(("text", "expected"), [
    ("订单号 5123 4567 8901 2345 到哪了", ["5123 4567 8901 2345"]),
    ("order #6012345678901234567 pls", ["6012345678901234567"]),
    ("89261507-03542990062 where", ["89261507-03542990062"]),
    ("单号１２３４５６７８９０１２３４５６怎么还没发", ["１２３４５６７８９０１２３４５６"]),
    ("first 1234567890123456 then 9876543210987654", ["1234567890123456", "9876543210987654"]),
])
def test_order_numbers_are_found_with_exact_spans(text: str, expected: list[str]) -> None:
    found = find_order_numbers(text)
    assert [e["value"] for e in found] == expected
    for entity in found:
        assert text[entity["start"]:entity["end"]] == entity["value"]
        assert parse_order_number(entity["value"]).isdigit()


@pytest.mark.parametrize("text", [
    "电话 13812345678", "工单 T20261120000123", "退 299 块", "12345678901234567890123 too long",
    "1234 5678", "",
])
def test_other_numbers_are_not_order_numbers(text: str) -> None:
    assert find_order_numbers(text) == []
