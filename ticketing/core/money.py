"""Money is integer cents (fen); this module parses and formats it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ticketing.core.errors import InvalidAmount


def parse_amount(value: str | int | float | Decimal) -> int:
    """'¥12.30', '12.3元', 12.3 → 1230 cents. Negative, non-numeric or sub-cent amounts fail."""
    if isinstance(value, bool):
        raise InvalidAmount("not an amount")
    text = str(value).strip().replace("¥", "").replace("￥", "").replace("元", "")
    text = text.replace("RMB", "").replace("CNY", "").replace(",", "").strip()
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise InvalidAmount(f"not an amount: {value!r}") from exc
    if not amount.is_finite() or amount <= 0:
        raise InvalidAmount("amount must be positive")
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise InvalidAmount("amount has more than two decimals")
    return int(cents)


def format_amount(cents: int) -> str:
    """1230 → '¥12.30'."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}¥{cents // 100}.{cents % 100:02d}"
