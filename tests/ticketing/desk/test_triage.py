"""Triage rules: category from bilingual keywords, priority and starting tier (rules §TIER-1…§TIER-3)."""

from __future__ import annotations

import pytest

from ticketing.desk import tickets, triage
from ticketing.core.models import Category, Priority, Segment, Tier


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("我的快递三天了还没收到", Category.LOGISTICS),
        ("Where is my parcel? Tracking has not moved", Category.LOGISTICS),
        ("my order has not arrived", Category.LOGISTICS),  # logistics beats "order" on a tie
        ("耳机收到就坏了，质量太差", Category.QUALITY),
        ("The screen is broken and the case is damaged", Category.QUALITY),
        ("我要退款", Category.REFUND),
        ("I want a refund", Category.REFUND),
        ("支付宝付款重复扣款了", Category.PAYMENT),
        ("I was charged twice on my card", Category.PAYMENT),
        ("我想取消订单，拍错了", Category.ORDER),
        ("Please cancel my order", Category.ORDER),
        ("这款有L码吗？还有库存吗", Category.PRODUCT),
        ("Is the blue colour in stock in size M?", Category.PRODUCT),
        ("登录不了，忘记密码", Category.ACCOUNT),
        ("I cannot log in, reset my password", Category.ACCOUNT),
        ("你好", Category.OTHER),
        ("", Category.OTHER),
        (None, Category.OTHER),
    ],
)
def test_classify_by_bilingual_keywords(text, category) -> None:
    assert triage.classify(text) is category


def test_english_keywords_match_at_word_start_only() -> None:
    assert triage.classify("I will repay you later") is Category.OTHER
    assert triage.classify("PAYMENT failed") is Category.PAYMENT


def test_tickets_module_reexports_the_rules() -> None:
    assert tickets.classify is triage.classify
    assert tickets.derive_priority is triage.derive_priority
    assert tickets.starting_tier is triage.starting_tier


@pytest.mark.parametrize(
    ("category", "text", "segment", "priority"),
    [
        (Category.LOGISTICS, "快递没到", Segment.REGULAR, Priority.NORMAL),
        (Category.PRODUCT, "有货吗", Segment.REGULAR, Priority.LOW),
        (Category.PAYMENT, "扣款两次", Segment.REGULAR, Priority.HIGH),
        (Category.LOGISTICS, "快递没到，很急！", Segment.REGULAR, Priority.HIGH),
        (Category.LOGISTICS, "need it asap", Segment.REGULAR, Priority.HIGH),
        (Category.PRODUCT, "急", Segment.REGULAR, Priority.NORMAL),
        (Category.QUALITY, "再不处理我就打12315投诉", Segment.REGULAR, Priority.HIGH),
        (Category.PRODUCT, "I will call my lawyer", Segment.REGULAR, Priority.HIGH),
        (Category.PAYMENT, "紧急！我要找媒体曝光", Segment.REGULAR, Priority.URGENT),
        (Category.ACCOUNT, "我被骗了", Segment.REGULAR, Priority.URGENT),
        (Category.OTHER, "this is a scam", Segment.POTENTIAL, Priority.URGENT),
        (Category.LOGISTICS, "快递没到", Segment.VIP, Priority.HIGH),
        (Category.LOGISTICS, "urgent please", Segment.VIP, Priority.URGENT),
        (Category.PAYMENT, "urgent", Segment.VIP, Priority.URGENT),  # capped
        (Category.LOGISTICS, "快递没到", None, Priority.NORMAL),
    ],
)
def test_derive_priority(category, text, segment, priority) -> None:
    assert triage.derive_priority(category=category, text=text, segment=segment) is priority


@pytest.mark.parametrize(
    ("priority", "segment", "text", "tier"),
    [
        (Priority.NORMAL, Segment.REGULAR, "快递没到", Tier.L1),
        (Priority.URGENT, Segment.REGULAR, "急急急", Tier.L1),
        (Priority.HIGH, Segment.VIP, "快递没到", Tier.L1),
        (Priority.URGENT, Segment.VIP, "urgent", Tier.L2),
        (Priority.HIGH, Segment.REGULAR, "我要去消协投诉", Tier.L2),
        (Priority.HIGH, Segment.REGULAR, "journalists will hear about this", Tier.L2),
        (Priority.URGENT, Segment.REGULAR, "账号被盗，有人盗刷", Tier.L3),
        (Priority.URGENT, Segment.REGULAR, "phishing message pretending to be you", Tier.L3),
    ],
)
def test_starting_tier(priority, segment, text, tier) -> None:
    got = triage.starting_tier(category=Category.OTHER, priority=priority, segment=segment,
                               text=text)
    assert got == tier.value


@pytest.mark.parametrize(("text", "upset"), [
    ("太差劲了，什么破快递", True),
    ("我很失望", True),
    ("This is unacceptable", True),
    ("worst service ever", True),
    ("where is my parcel!!!", True),
    ("我的快递到哪了", False),
    ("can I change my address", False),
    ("", False),
    (None, False),
])
def test_upset_customers_are_recognised(text, upset) -> None:
    assert triage.is_upset(text) is upset
