"""Money amounts and star ratings in a message, found by pattern (stdlib only).

Like order numbers, these are structured: "退50元", "¥199.5", "五十块", "give it a 4", "五星",
"打3分". A neural tagger needs context to tell the 5 of "5星" from the 5 of "5天" and learns it
only from many examples and many epochs; a pattern reads the unit next to the number and is
right every time. ``bot/nlu/quantity_extractor.py`` runs these after DIET and makes them
authoritative for ``amount`` and ``csat_score``. Spans cover the number only (the guide's
convention); values are plain digits ("50", "199.5", "4").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
             "七": 7, "八": 8, "九": 9}
CN_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
EN_SCORES = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
CN_SCORES = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}

_CN = "零〇一二三四五六七八九十两百千万"
_NUM = r"\d+(?:\.\d{1,2})?"
_CN_NUM = f"[{_CN}]+"
_SCORE = r"[1-5]|[一二两三四五]|one|two|three|four|five"
# a number standing alone: not glued to other digits (an order number, a phone, a date)
_ALONE_L = r"(?<![\d.])"
_ALONE_R = r"(?![\d.]*\d)"

_AMOUNT_PATTERNS = [
    # ¥199 / $20 / RMB 50 / CNY50
    re.compile(rf"(?:[¥￥$]|\b(?:RMB|CNY|USD)\b)\s*{_ALONE_L}(?P<n>{_NUM}){_ALONE_R}", re.I),
    # 50元 / 50块(钱) / 199.5 yuan / 20 bucks / 30 dollars
    re.compile(rf"{_ALONE_L}(?P<n>{_NUM})\s*(?:元|块|塊|圆|刀|(?:rmb|yuan|bucks|dollars?|usd)\b)",
               re.I),
    # 五十块 / 两百元 / 一百二十元
    re.compile(rf"(?P<n>{_CN_NUM})\s*(?:元|块|塊|圆)"),
]
_SCORE_PATTERNS = [
    # 5星 / 五星 / 4 stars / five stars / 3颗星 / 4 points
    re.compile(rf"{_ALONE_L}(?P<n>{_SCORE})\s*(?:颗|个)?\s*(?:星|⭐|stars?\b|points?\b)", re.I),
    # 4/5, 4 out of 5
    re.compile(rf"{_ALONE_L}(?P<n>[1-5])\s*(?:/\s*5|out\s+of\s+(?:5|five))\b", re.I),
    # 给5分 / 打3分 / 评4分 / 评分5 / 给个五分
    re.compile(rf"(?:打|给|评|评分|评个|打个|给个)\s*(?:你们?|您)?\s*(?:个)?\s*{_ALONE_L}"
               rf"(?P<n>[1-5]|[一二两三四五])(?:\s*分(?![钟钱期之])|{_ALONE_R}(?![\d元块天个号]))"),
    # 5分 alone (not 5分钟 / 5分钱)
    re.compile(rf"^\s*(?P<n>[1-5]|[一二两三四五])\s*分(?![钟钱期之])"),
    # rate 4 / rate it 4 / give it a 4 / I'd give you a four / score 5 / a solid 4
    re.compile(rf"\b(?:rate[ds]?|rating|give|gave|score|solid)(?:\s+(?:it|you|u|this|them|"
               rf"the\s+service|of|an?|my))*\s+(?P<n>[1-5]|one|two|three|four|five)\b"
               rf"(?!\s*(?:days?|hours?|weeks?|items?|orders?|times?|pcs|pieces|%))", re.I),
]


@dataclass(frozen=True)
class Found:
    entity: str
    start: int
    end: int
    text: str
    value: str


def chinese_number(text: str) -> int | None:
    """五十 → 50, 一百二十 → 120, 两百 → 200, 十五 → 15, 三千五百 → 3500; None if not one."""
    if not text or any(ch not in CN_DIGITS and ch not in CN_UNITS for ch in text):
        return None
    total, section, digit = 0, 0, None
    for ch in text:
        if ch in CN_DIGITS:
            if digit is not None:  # 一二 is not a number
                return None
            digit = CN_DIGITS[ch]
        else:
            unit = CN_UNITS[ch]
            if unit == 10000:
                total += (section + (digit or 0)) * unit
                section, digit = 0, None
            else:
                section += (1 if digit is None else digit) * unit
                digit = None
    return total + section + (digit or 0)


def _amount_value(raw: str) -> str | None:
    if raw[0].isdigit():
        return raw
    number = chinese_number(raw)
    return None if number is None else str(number)


def score_value(raw: str) -> str | None:
    """"4", "four", "四" → "4"; None outside 1–5."""
    word = raw.lower()
    if word.isdigit():
        return word if 1 <= int(word) <= 5 else None
    score = EN_SCORES.get(word) or CN_SCORES.get(word)
    return None if score is None else str(score)


def find_quantities(text: str) -> list[Found]:
    """Every money amount and star rating in ``text``, left to right, never overlapping."""
    found: list[Found] = []
    taken: list[tuple[int, int]] = []
    for entity, patterns, value_of in (("amount", _AMOUNT_PATTERNS, _amount_value),
                                       ("csat_score", _SCORE_PATTERNS, score_value)):
        for pattern in patterns:
            for match in pattern.finditer(text):
                start, end = match.span("n")
                if any(start < b and a < end for a, b in taken):
                    continue
                value = value_of(match.group("n"))
                if value is None:
                    continue
                taken.append((start, end))
                found.append(Found(entity, start, end, text[start:end], value))
    return sorted(found, key=lambda f: f.start)
