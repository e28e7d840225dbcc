"""The shape of an order number as customers type it (no Rasa import: testable anywhere).

16–19 digits, half- or full-width, optionally grouped with spaces or dashes; the span runs
from the first digit to the last (a leading '#' or label is not part of it), matching the
annotation guide (docs/nlu-guide.md).
"""

from __future__ import annotations

import re
from typing import Any

ENTITY = "order_id"
DIGIT = "[0-9\uff10-\uff19]"
SEPARATOR = "[ \u3000\\-\uff0d]{0,2}"
PATTERN = re.compile(rf"(?<!{DIGIT}){DIGIT}(?:{SEPARATOR}{DIGIT}){{15,18}}(?!{DIGIT})")


def find_order_numbers(text: str) -> list[dict[str, Any]]:
    """``order_id`` entities for every order-number-shaped run in ``text``."""
    return [{"entity": ENTITY, "start": m.start(), "end": m.end(), "value": m.group(),
             "confidence_entity": 1.0} for m in PATTERN.finditer(text or "")]
