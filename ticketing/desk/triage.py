"""Triage rules (rules §TIER-1…§TIER-3): classify a problem, weigh its severity, pick the starting tier.

Pure functions over text, so the bot, the desk and tests share one reading of a complaint.
Chinese keywords match as substrings (no word boundaries in Chinese); English keywords match
at a word start, case-insensitively, so "pay" finds "payment" but not "repay".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ticketing.core.models import Category, Priority, Segment, Tier

# Order matters: on equal scores the earlier category wins ("my order has not arrived" is
# logistics, not order).
CATEGORY_KEYWORDS: dict[Category, tuple[str, ...]] = {
    Category.REFUND: (
        "退款", "退钱", "退货", "退回", "退换", "换货", "退费",
        "refund", "money back", "return", "reimburse",
    ),
    Category.QUALITY: (
        "质量", "坏了", "破损", "损坏", "瑕疵", "次品", "假货", "故障", "不能用", "用不了",
        "漏水", "掉色", "开线", "划痕", "碎了", "摔碎", "压坏", "发错", "错发", "少发", "漏发",
        "缺件", "少了一件", "不是我买的",
        "broken", "damaged", "defect", "faulty", "fake", "counterfeit", "not working",
        "doesn't work", "does not work", "quality", "scratch", "leak", "cracked", "shattered",
        "smashed", "wrong item", "wrong product", "wrong size", "wrong colour", "wrong color",
        "sent me the wrong", "missing item", "item missing", "was missing", "is missing",
    ),
    Category.LOGISTICS: (
        "物流", "快递", "发货", "没收到", "未收到", "配送", "送货", "包裹", "运单", "到货",
        "签收", "派送", "运输", "丢件",
        "shipping", "shipment", "delivery", "deliver", "courier", "tracking", "package",
        "parcel", "not arrived", "hasn't arrived", "has not arrived", "not received",
    ),
    Category.PAYMENT: (
        "支付", "付款", "扣款", "扣了", "扣费", "付不了", "支付宝", "微信支付", "银行卡",
        "发票", "盗刷", "多扣",
        "payment", "pay", "charged", "charge", "card", "alipay", "wechat pay", "invoice",
        "billing",
    ),
    Category.ACCOUNT: (
        "账号", "帐号", "账户", "登录", "登陆", "密码", "注册", "绑定", "手机号", "会员",
        "积分", "盗号",
        "account", "login", "log in", "password", "sign in", "register", "membership",
        "points", "hacked",
    ),
    Category.ORDER: (
        "订单", "下单", "取消", "改地址", "修改地址", "修改订单", "拍错",
        "order", "cancel", "change address", "change my address",
    ),
    Category.PRODUCT: (
        "商品", "尺码", "尺寸", "颜色", "库存", "有货", "规格", "说明书", "怎么用", "材质",
        "size", "colour", "color", "stock", "spec", "how to use", "material",
    ),
}

URGENT_WORDS = (
    "急", "紧急", "尽快", "马上", "立刻", "赶紧",
    "urgent", "asap", "immediately", "right now", "emergency",
)
# Threats to go to authorities or the press: a supervisor must see these (rules §SEC-8, §TIER-3: "serious").
THREAT_WORDS = (
    "投诉", "12315", "消协", "消费者协会", "工商", "律师", "起诉", "法院", "媒体", "曝光", "记者",
    "complain", "lawyer", "attorney", "sue", "court", "legal action", "media", "journalist",
    "press", "consumer association",
)
# Anger and disappointment: the bot apologises and acknowledges before it explains the process.
UPSET_WORDS = (
    "太差", "很差", "差劲", "垃圾", "气死", "生气", "愤怒", "失望", "受不了", "离谱", "坑人", "无语",
    "骗子", "什么破", "搞什么", "怎么回事", "太过分", "过分", "恶心", "烦死",
    "terrible", "awful", "horrible", "worst", "angry", "furious", "annoyed", "upset",
    "ridiculous", "unacceptable", "disappointed", "disappointing", "fed up", "sick of",
    "useless", "rubbish", "disgrace", "outrageous", "wtf",
)
# Fraud and security incidents go straight to operations (L3).
FRAUD_WORDS = (
    "骗", "诈骗", "盗刷", "被盗", "盗号", "钓鱼", "冒充",
    "fraud", "scam", "stolen", "hacked", "phishing", "unauthorized", "unauthorised",
    "impersonat",
)

_PRIORITY_ORDER = [Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT]
_BASE_PRIORITY: dict[Category, Priority] = {
    Category.PRODUCT: Priority.LOW,  # pre-sales questions can wait a little
    Category.PAYMENT: Priority.HIGH,  # money taken without goods or twice
}


def _is_cjk(word: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in word)


def _pattern(words: Iterable[str]) -> re.Pattern[str]:
    parts = [re.escape(w) if _is_cjk(w) or w.isdigit() else r"\b" + re.escape(w) for w in words]
    return re.compile("|".join(parts), re.IGNORECASE)


_CATEGORY_PATTERNS = {
    cat: [_pattern([w]) for w in words] for cat, words in CATEGORY_KEYWORDS.items()
}
_URGENT = _pattern(URGENT_WORDS)
_THREAT = _pattern(THREAT_WORDS)
_FRAUD = _pattern(FRAUD_WORDS)
_UPSET = _pattern(UPSET_WORDS)


def classify(text: str | None) -> Category:
    """The category whose keywords appear most often in ``text``; OTHER when none do."""
    if not text:
        return Category.OTHER
    best, best_score = Category.OTHER, 0
    for category, patterns in _CATEGORY_PATTERNS.items():
        score = sum(1 for p in patterns if p.search(text))
        if score > best_score:
            best, best_score = category, score
    return best


def is_urgent(text: str | None) -> bool:
    return bool(text and _URGENT.search(text))


def is_threat(text: str | None) -> bool:
    """Complaint to authorities, lawyer or press threatened."""
    return bool(text and _THREAT.search(text))


def is_upset(text: str | None) -> bool:
    """Angry or disappointed words, or three exclamation marks in a row."""
    return bool(text) and (bool(_UPSET.search(text)) or "!!!" in text or "！！！" in text)


def is_fraud(text: str | None) -> bool:
    """Fraud or an account/payment security incident."""
    return bool(text and _FRAUD.search(text))


def raise_priority(priority: Priority, steps: int = 1) -> Priority:
    """One step (or ``steps``) more urgent, never above urgent."""
    index = min(_PRIORITY_ORDER.index(priority) + steps, len(_PRIORITY_ORDER) - 1)
    return _PRIORITY_ORDER[index]


def derive_priority(
    *, category: Category, text: str | None, segment: Segment | str | None
) -> Priority:
    """Base priority of the category, raised by urgency words, threats, fraud and VIP status."""
    priority = _BASE_PRIORITY.get(Category(category), Priority.NORMAL)
    if is_urgent(text):
        priority = raise_priority(priority)
    if is_threat(text):
        priority = max(raise_priority(priority), Priority.HIGH, key=_PRIORITY_ORDER.index)
    if is_fraud(text):
        priority = Priority.URGENT
    if segment is not None and Segment(segment) is Segment.VIP:
        priority = raise_priority(priority)
    return priority


def starting_tier(
    *,
    category: Category,
    priority: Priority,
    segment: Segment | str | None,
    text: str | None,
) -> int:
    """L1 by default; L2 (supervisor) for threats or urgent VIP cases; L3 for fraud/security."""
    if is_fraud(text):
        return Tier.L3.value
    vip = segment is not None and Segment(segment) is Segment.VIP
    if is_threat(text) or (vip and Priority(priority) is Priority.URGENT):
        return Tier.L2.value
    return Tier.L1.value
