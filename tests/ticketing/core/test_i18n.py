"""The language of a customer's message (ticketing.core.i18n.language_of_text): the language
of the sentence, whatever product names, brands, numbers and amounts it carries."""

from __future__ import annotations

import pytest

from ticketing.core.i18n import Text, language_of_text, normalize_language


@pytest.mark.parametrize(("text", "language"), [
    # one language
    ("你好", "zh"),
    ("where is my order", "en"),
    ("退款多久到账", "zh"),
    ("can I return this", "en"),
    ("hi", "en"),
    ("好的", "zh"),
    # mostly English with a Chinese word or a Chinese product name: English
    ("Is the 小米手环 in stock?", "en"),
    ("Where is my order 手机壳?", "en"),
    ("Do you have the 华为 Mate 60 Pro in black?", "en"),
    ("I want to return the 保温杯 I bought last week", "en"),
    ("my 快递 has not arrived yet", "en"),
    # mostly Chinese with English words, brands or models: Chinese
    ("我的order还没到", "zh"),
    ("iPhone 15 Pro Max 有货吗", "zh"),
    ("iphone13 case 有货吗", "zh"),
    ("我的iPhone13还没到", "zh"),
    ("退款 refund 多久到账", "zh"),
    ("AirPods Pro 的耳机套有卖吗", "zh"),
    ("hi客服", "zh"),
    ("请问 Nike Air Max 270 有42码吗", "zh"),
    # numbers, amounts and codes never decide
    ("2026 1125 0000 0123 4567", None),
    ("#6012345678901234567", None),
    ("¥59.9", None),
    ("SKU-A123", None),
    ("order #2026112500000123 到了吗", "zh"),
    ("where is 6012345678901234567", "en"),
    ("¥59.9的那个", "zh"),
    # nothing said about language
    ("👍👍", None),
    ("/affirm", None),
    ("", None),
    (None, None),
])
def test_language_of_mixed_messages(text: str | None, language: str | None) -> None:
    assert language_of_text(text) == language


def test_product_names_the_caller_knows_are_set_aside() -> None:
    # "Smart Watch Ultra 智能手表" is one product: without it the sentence is plain Chinese
    text = "Smart Watch Ultra 智能手表 还有吗"
    assert language_of_text(text, names=["Smart Watch Ultra 智能手表"]) == "zh"
    assert language_of_text("Is the 智能保温杯 back in stock", names=["智能保温杯"]) == "en"


def test_texts_follow_the_language() -> None:
    hello = Text("您好，{name}", "Hello, {name}")
    assert hello.get("zh-CN", name="王") == "您好，王"
    assert hello.get("en", name="Wang") == "Hello, Wang"
    assert normalize_language(None) == "zh"


def test_numbers_are_blanked_as_runs_with_a_digit() -> None:
    """The linear blanking says what the old ``[…]*\\d[…]*`` pattern said, on texts made to
    have runs with and without digits next to CJK, spaces and punctuation."""
    import random
    import re

    from ticketing.core.i18n import _blank_numbers

    backtracking = re.compile(r"[\w#¥$￥.,:/+-]*\d[\w#¥$￥.,:/+-]*", re.ASCII)
    pieces = list("ab1 9,.:/+-#¥$￥_中文Zé\n")
    rng = random.Random(2026)
    for _ in range(5_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert _blank_numbers(text) == backtracking.sub(" ", text), text


def test_a_huge_message_without_digits_does_not_hang_the_caller() -> None:
    """A hang guard, not a speed goal: 256 KiB of letters took the old pattern minutes (its
    time grew with the square of the length; the gateway reads frames up to 64 KiB on its
    event loop). An alarm ends the test if it runs for 20 s."""
    import signal

    def hung(*_: object) -> None:
        raise TimeoutError("language_of_text hangs on a long run without digits")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        assert language_of_text("a" * 262_144) == "en"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
