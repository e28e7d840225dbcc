"""What the customer clicks or types in the refund form, read into reason codes, amounts and
order numbers, and the buttons that let them click instead of type (recent orders: ``actions.order_choice``).

Buttons carry their value as an entity of an existing intent (there is no ``inform`` intent):
``/request_refund{"refund_reason": "quality"}``, ``/request_refund{"amount": "199.00"}``,
``/request_refund{"order_id": "…"}``. Typed answers are read here, so "耳机左边没声音" is a
quality problem and the customer's own words go to the agent as the reason text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from ticketing.core.i18n import Text
from ticketing.core.money import format_amount
from ticketing.shop.refunds.rules import REASON_LABELS, RefundReason

# Typed words → reason, most specific first ("摔坏" is damage before "坏" is quality).
_REASON_WORDS: list[tuple[RefundReason, tuple[str, ...]]] = [
    (RefundReason.DAMAGED, ("破损", "碎了", "压坏", "摔坏", "压扁", "裂了", "破了", "damaged",
                            "crushed", "cracked", "smashed", "arrived broken")),
    (RefundReason.WRONG_ITEM, ("发错", "错发", "不是我买的", "不是我要的", "wrong item",
                               "wrong product", "not what i ordered", "sent the wrong")),
    (RefundReason.NOT_AS_DESCRIBED, ("不符", "色差", "假货", "和图片不", "跟图片不",
                                     "not as described", "different from", "fake",
                                     "doesn't match", "does not match")),
    (RefundReason.WRONG_SIZE, ("尺码", "尺寸", "大了", "小了", "不合身", "规格", "码数",
                               "size", "too big", "too small", "doesn't fit", "does not fit")),
    (RefundReason.QUALITY, ("质量", "坏了", "故障", "不能用", "用不了", "没声音", "不亮", "失灵",
                            "次品", "瑕疵", "quality", "broken", "defective", "faulty",
                            "stopped working", "doesn't work", "does not work", "not working")),
    (RefundReason.LATE_DELIVERY, ("太慢", "迟迟", "还没到", "一直没到", "不发货", "等太久",
                                  "late", "slow", "too long", "never arrived",
                                  "hasn't arrived", "not arrived")),
    (RefundReason.CHANGED_MIND, ("不想要", "不要了", "不喜欢", "拍错", "买错", "下错", "后悔",
                                 "用不上", "不需要", "买重复", "重复下单", "changed my mind",
                                 "change of mind", "don't want", "dont want", "no longer need",
                                 "don't need", "dont need", "by mistake", "ordered twice")),
]

# Intents whose words can stand as "another reason" when no keyword matched (the request
# intents only when they say more than the request). Anything else (a question, "no",
# "agent") is not an answer, so the form lets the rules handle it.
FREE_TEXT_INTENTS = frozenset({"shipping_problem", "nlu_fallback"})
REQUEST_INTENTS = frozenset({"request_refund", "cancel_order"})

# Words that only repeat the request ("我要退款", "refund please"): not a reason by themselves.
_ZH_FILLER = re.compile(r"我要|我想|想要|申请|仅退款|退款|退货|退钱|退了|取消|订单|这个|这单|帮我|给我|"
                        r"麻烦|一下|怎么|办理|吧|了|的|呢|啊|呀|亲|要|想|能|吗|请|嗯")
_EN_FILLER = frozenset([
    "refund", "return", "cancel", "order", "money", "back", "please", "pls", "want", "would",
    "like", "need", "get", "just", "can", "you", "the", "my", "this", "it", "me", "a", "an",
    "for", "to", "i", "i'd", "id",
])

FULL_WORDS = ("全额", "全部", "全款", "都退", "退全部", "full", "all of it", "everything",
              "entire", "whole")
FULL = "full"  # the refund_amount candidate meaning "everything still refundable"

_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d{1,2})?(?![\d.])")
_DIGIT_RUN = re.compile(r"[0-9][0-9\s\-#]*[0-9]")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").strip().lower()


def reason_from_text(text: str) -> tuple[str | None, bool]:
    """(reason code, whether the words describe it) for what the customer typed.

    A typed button label ("质量问题", "Other reason") is the reason itself (False: nothing
    more to tell the agent); keywords give the reason and the words are kept (True).
    """
    folded = _fold(text)
    if not folded:
        return None, False
    for reason, label in REASON_LABELS.items():
        if folded in (_fold(label.zh), _fold(label.en), reason.value):
            return reason.value, False
    for reason, words in _REASON_WORDS:
        if any(word in folded for word in words):
            return reason.value, True
    return None, False


def says_something(text: str) -> bool:
    """Whether the words say more than the request itself, so they can stand as a reason."""
    folded = _fold(text)
    words = [w for w in re.findall(r"[a-z']+", folded) if w not in _EN_FILLER]
    chinese = _ZH_FILLER.sub("", "".join(re.findall(r"[\u4e00-\u9fff]+", folded)))
    return len(chinese) >= 2 or len(words) >= 2


def wants_full_amount(text: str) -> bool:
    folded = _fold(text)
    return any(word in folded for word in FULL_WORDS)


def amount_in_text(text: str) -> str | None:
    """The one amount in what was typed ("50", "¥12.5", "just refund me 30 please"), when the
    NLU did not mark it (or misread it as another entity). Several numbers: none is guessed."""
    numbers = _NUMBER.findall(_fold(text).replace(",", ""))
    if len(numbers) != 1 or len(numbers[0].split(".")[0]) > 8:
        return None
    return numbers[0]


def order_number_in_text(text: str) -> str | None:
    """Digits that look like a (possibly mistyped) order number, for the validator to judge."""
    if not text or text.startswith("/"):
        return None
    for run in _DIGIT_RUN.findall(_fold(text)):
        if sum(ch.isdigit() for ch in run) >= 8:
            return run
    return None


# --- buttons ---------------------------------------------------------------------------------
def payload(intent: str, **entities: Any) -> str:
    """A button payload that triggers ``intent`` with entities: ``/intent{"k": "v"}``."""
    if not entities:
        return f"/{intent}"
    return f"/{intent}{json.dumps(entities, ensure_ascii=False)}"


def reason_buttons(language: str, *, intent: str = "request_refund") -> list[dict[str, str]]:
    from ticketing.shop.refunds.rules import reason_options

    return [{"title": label, "payload": payload(intent, refund_reason=code)}
            for code, label in reason_options(language)]


def full_amount_button(refundable_cents: int, language: str) -> dict[str, str]:
    title = Text("全额退款 {amount}", "Full amount {amount}").get(
        language, amount=format_amount(refundable_cents))
    return {"title": title,
            "payload": payload("request_refund",
                               amount=f"{refundable_cents // 100}.{refundable_cents % 100:02d}")}


def confirm_buttons(language: str) -> list[dict[str, str]]:
    yes = Text("确认提交", "Yes, submit").get(language)
    no = Text("先不了", "No, not now").get(language)
    return [{"title": yes, "payload": "/affirm"}, {"title": no, "payload": "/deny"}]
