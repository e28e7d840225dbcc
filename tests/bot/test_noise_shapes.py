"""Held-down keys and shuffled letters/digits are noise; repeats that mean something are not."""

from __future__ import annotations

import pytest

from bot.nlu.noise_shapes import is_noise_shape


@pytest.mark.parametrize("text", [
    "kkkkkkkkk", "哦哦哦哦哦哦哦哦哦", "啦啦啦啦啦啦啦", "zzzzzz", "123abc456", "x9x9x9", "a1b2c3",
    "q1w2e3 r4t5",
])
def test_noise(text: str) -> None:
    assert is_noise_shape(text)


@pytest.mark.parametrize("text", [
    "好好好好好", "嗯嗯嗯嗯嗯", "哈哈哈哈哈", "8888888", "kk", "ok", "iphone13promax", "SF1234567890",
    "6021458830217745", "X200", "hi 5", "我的订单 a1b2c3", "？？？？？", "", "AirPods Pro 2",
    "65W charger", "A4 paper",
])
def test_not_noise(text: str) -> None:
    assert not is_noise_shape(text)
